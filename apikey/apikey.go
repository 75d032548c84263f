// Package apikey owns the PeekShot API key format (SPEC §3): generation,
// checksum, parsing, hashing and masking. A key is "psk_" followed by 32
// random base62 characters and a 6-character base62 CRC-32 checksum, so a
// malformed or mistyped key is rejected without touching the database.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
)

const (
	// Prefix starts every key; secret scanners match on it.
	Prefix = "psk_"
	// RandomLen is the number of random base62 characters (≈190 bits).
	RandomLen = 32
	// ChecksumLen is the number of base62 characters of the CRC-32 checksum.
	ChecksumLen = 6
	// Len is the length of a whole key.
	Len = len(Prefix) + RandomLen + ChecksumLen
	// Pattern is the regular expression secret scanners find keys with
	// (docs/secret-scanning.md). A regular expression can't check the
	// checksum: Valid does.
	Pattern = `psk_[0-9A-Za-z]{38}`

	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ErrMalformed is returned for anything that is not a well-formed key:
// wrong prefix, length, alphabet or checksum.
var ErrMalformed = errors.New("malformed API key")

// Hash is the SHA-256 of a whole key, the only form a key is stored in.
type Hash [sha256.Size]byte

// Generate returns a new random key. Characters are drawn from crypto/rand
// by rejection sampling, so every base62 character is equally likely.
func Generate() (string, error) { return generate(Prefix) }

// generate is a new random token of the key format under prefix (four
// characters): the format keys and signing secrets share.
func generate(prefix string) (string, error) {
	var b [Len]byte
	copy(b[:], prefix)
	random := b[len(prefix) : len(prefix)+RandomLen]
	var buf [64]byte
	for n := 0; n < RandomLen; {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", err
		}
		for _, c := range buf {
			// 248 = 4×62: bytes at or above it would bias the result.
			if c >= 248 {
				continue
			}
			random[n] = alphabet[c%62]
			n++
			if n == RandomLen {
				break
			}
		}
	}
	putChecksum(b[len(prefix)+RandomLen:], string(random))
	return string(b[:]), nil
}

// Checksum returns the 6-character checksum of the random part of a key:
// CRC-32 (IEEE) of its ASCII bytes in base62, most significant digit first,
// left-padded with '0'.
func Checksum(random string) string {
	var out [ChecksumLen]byte
	putChecksum(out[:], random)
	return string(out[:])
}

func putChecksum(dst []byte, random string) {
	sum := crcString(random)
	for i := ChecksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[sum%62]
		sum /= 62
	}
}

// Valid reports whether s is a well-formed key with a correct checksum.
// It allocates nothing, so the API can reject garbage for almost free.
func Valid(s string) bool { return valid(s, Prefix) }

// valid reports whether s is a well-formed token of the key format under
// prefix, checksum included.
func valid(s, prefix string) bool {
	if len(s) != Len || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < Len; i++ {
		if !isBase62(s[i]) {
			return false
		}
	}
	sum := crcString(s[len(prefix) : len(prefix)+RandomLen])
	for i := Len - 1; i >= Len-ChecksumLen; i-- {
		if s[i] != alphabet[sum%62] {
			return false
		}
		sum /= 62
	}
	return true
}

// Parse checks s and returns its hash, or ErrMalformed.
func Parse(s string) (Hash, error) {
	if !Valid(s) {
		return Hash{}, ErrMalformed
	}
	return HashOf(s), nil
}

// HashOf returns the SHA-256 of the whole key.
func HashOf(key string) Hash {
	// A key's bytes are copied to the stack: converting the string to a
	// slice would allocate once per request.
	var buf [64]byte
	if len(key) <= len(buf) {
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}

// DisplayPrefix is what is stored to recognise a key: "psk_" and the first
// four characters after it.
func DisplayPrefix(key string) string {
	if len(key) < len(Prefix)+4 {
		return key
	}
	return key[:len(Prefix)+4]
}

// Last4 returns the last four characters of a key.
func Last4(key string) string {
	if len(key) < 4 {
		return key
	}
	return key[len(key)-4:]
}

// Mask builds the masked form shown in lists, e.g. "psk_7Gq2…x9Lb", from
// the stored display prefix and last four characters.
func Mask(displayPrefix, last4 string) string {
	return displayPrefix + "…" + last4
}

// MaskKey masks a whole key.
func MaskKey(key string) string {
	return Mask(DisplayPrefix(key), Last4(key))
}

// crcString is CRC-32 (IEEE) over a string without converting it to a
// byte slice, which would escape to the heap through the hash package.
func crcString(s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

func isBase62(c byte) bool { return base62[c] }

// base62 marks the bytes of the alphabet: one load per character.
var base62 = func() (t [256]bool) {
	for i := range len(alphabet) {
		t[alphabet[i]] = true
	}
	return t
}()
