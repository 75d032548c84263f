// Package signedlink owns the format of PeekShot's signed links (SPEC §8):
// a GET /api/v1/screenshots URL whose query carries key_id, expires and
// signature, the hex HMAC-SHA256, under the key's signing secret, of the
// query without signature in its canonical form: parameters sorted by
// name (and values of one name sorted), names and values percent-encoded
// as RFC 3986 says (every byte but A–Z a–z 0–9 - . _ ~ as %XX, upper
// case), joined by & and =. The canonical form is itself a valid query
// string, so a client builds the link as canonical + "&signature=" + hex.
package signedlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The parameters every signed link has.
const (
	ParamKeyID     = "key_id"
	ParamExpires   = "expires"
	ParamSignature = "signature"
)

// Canonical is q, without signature, in the form that is signed.
func Canonical(q url.Values) string {
	names := make([]string, 0, len(q))
	for name := range q {
		if name != ParamSignature {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		values := slices.Clone(q[name])
		slices.Sort(values)
		for _, v := range values {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(Escape(name))
			b.WriteByte('=')
			b.WriteString(Escape(v))
		}
	}
	return b.String()
}

// Escape percent-encodes s as RFC 3986 says for a query component: every
// byte but the unreserved characters.
func Escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// Signature is the hex HMAC-SHA256 of q's canonical form under secret.
func Signature(secret string, q url.Values) string {
	return hex.EncodeToString(mac(secret, Canonical(q)))
}

func mac(secret, canonical string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(canonical))
	return m.Sum(nil)
}

// Valid reports whether signature (hex, either case) is q's signature
// under secret, comparing in constant time.
func Valid(secret string, q url.Values, signature string) bool {
	got, err := hex.DecodeString(signature)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, mac(secret, Canonical(q)))
}

// Sign returns the query string of a signed link: params with key_id and
// expires, canonical, then the signature.
func Sign(secret string, keyID int64, expires time.Time, params url.Values) string {
	q := url.Values{}
	for name, values := range params {
		q[name] = slices.Clone(values)
	}
	q.Set(ParamKeyID, strconv.FormatInt(keyID, 10))
	q.Set(ParamExpires, strconv.FormatInt(expires.Unix(), 10))
	q.Del(ParamSignature)
	return Canonical(q) + "&" + ParamSignature + "=" + Signature(secret, q)
}
