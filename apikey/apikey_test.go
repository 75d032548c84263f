package apikey

import (
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
)

var keyFormat = regexp.MustCompile(`^psk_[0-9A-Za-z]{38}$`)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !keyFormat.MatchString(k) {
			t.Fatalf("key %q does not match %s", k, keyFormat)
		}
		if !Valid(k) {
			t.Fatalf("generated key %q does not validate", k)
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
	}
}

func TestGenerateUsesWholeAlphabet(t *testing.T) {
	counts := map[byte]int{}
	for range 500 {
		k, _ := Generate()
		for i := len(Prefix); i < len(Prefix)+RandomLen; i++ {
			counts[k[i]]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("random part used %d distinct characters, want all 62", len(counts))
	}
}

func TestChecksumKnownValues(t *testing.T) {
	// Expected values computed independently (Python's zlib.crc32 and a
	// hand-written base62 conversion).
	tests := []struct {
		random string
		want   string
	}{
		{strings.Repeat("0", 32), "2wjyrI"},            // crc32 = 2700251856
		{"7Gq2abcdefghijklmnopqrstuvwxyzAB", "09aBep"}, // crc32 = 141611647, padded
		{strings.Repeat("0", 32), base62Of(2700251856)},
		// crc32 of "" is 0, left padded.
		{"", "000000"},
	}
	for _, tt := range tests {
		if got := Checksum(tt.random); got != tt.want {
			t.Errorf("Checksum(%q) = %q, want %q", tt.random, got, tt.want)
		}
	}
}

// base62Of is an independent, obviously-correct conversion for the test.
func base62Of(n uint64) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	s := ""
	for n > 0 {
		s = string(digits[n%62]) + s
		n /= 62
	}
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

func TestChecksumCatchesEverySingleCharacterChange(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(Prefix); i < Len; i++ {
		for c := range 128 {
			ch := byte(c)
			if ch == k[i] {
				continue
			}
			mutated := k[:i] + string(ch) + k[i+1:]
			if Valid(mutated) {
				t.Fatalf("changing position %d from %q to %q still validates: %q", i, k[i], ch, mutated)
			}
		}
	}
}

func TestValidRejects(t *testing.T) {
	k, _ := Generate()
	tests := map[string]string{
		"empty":          "",
		"prefix only":    "psk_",
		"wrong prefix":   "pk_" + k[3:],
		"upper prefix":   "PSK_" + k[4:],
		"too short":      k[:Len-1],
		"too long":       k + "0",
		"space":          " " + k[1:],
		"non-ascii":      k[:10] + "é" + k[12:],
		"bad checksum":   k[:Len-6] + "000000",
		"nul byte":       k[:20] + "\x00" + k[21:],
		"trailing space": k[:Len-1] + " ",
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if Valid(s) {
				t.Fatalf("Valid(%q) = true", s)
			}
			if _, err := Parse(s); err != ErrMalformed {
				t.Fatalf("Parse(%q) error = %v, want ErrMalformed", s, err)
			}
		})
	}
}

func TestParseHashesWholeKey(t *testing.T) {
	k, _ := Generate()
	h, err := Parse(k)
	if err != nil {
		t.Fatal(err)
	}
	if h != sha256.Sum256([]byte(k)) {
		t.Fatal("Parse hash differs from SHA-256 of the key")
	}
	other, _ := Generate()
	if HashOf(other) == h {
		t.Fatal("two keys hash alike")
	}
}

func TestMask(t *testing.T) {
	k := "psk_7Gq2" + strings.Repeat("a", 30) + "x9Lb"
	if got, want := MaskKey(k), "psk_7Gq2…x9Lb"; got != want {
		t.Fatalf("MaskKey = %q, want %q", got, want)
	}
	if got := Mask(DisplayPrefix(k), Last4(k)); got != "psk_7Gq2…x9Lb" {
		t.Fatalf("Mask = %q", got)
	}
	if strings.Contains(MaskKey(k), k[8:Len-4]) {
		t.Fatal("mask reveals the middle of the key")
	}
}

func FuzzParse(f *testing.F) {
	k, _ := Generate()
	f.Add(k)
	f.Add("psk_")
	f.Add("")
	f.Add(k[:Len-1] + "!")
	f.Add(strings.Repeat("z", Len))
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Parse(s)
		ok := err == nil
		if ok != Valid(s) {
			t.Fatalf("Parse and Valid disagree on %q", s)
		}
		if !ok {
			return
		}
		if !keyFormat.MatchString(s) {
			t.Fatalf("accepted %q which does not match the format", s)
		}
		if Checksum(s[4:36]) != s[36:] {
			t.Fatalf("accepted %q with a wrong checksum", s)
		}
		if h != HashOf(s) {
			t.Fatal("hash mismatch")
		}
	})
}

func BenchmarkValidMalformed(b *testing.B) {
	k, _ := Generate()
	bad := k[:Len-1] + "0"
	if bad == k {
		bad = k[:Len-1] + "1"
	}
	b.ReportAllocs()
	for b.Loop() {
		if Valid(bad) {
			b.Fatal("valid")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	k, _ := Generate()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(k); err != nil {
			b.Fatal(err)
		}
	}
}
