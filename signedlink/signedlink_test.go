package signedlink

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The vector was computed apart from this package, with Python's hmac
// module over the canonical string written out by hand.
const (
	vectorSecret    = "pss_0123456789abcdefghijABCDEFGHIJ000000"
	vectorCanonical = "expires=1767225600&height=720&key_id=42&url=https%3A%2F%2Fexample.com%2Fa%20b%3Fq%3D1&width=1280"
	vectorSignature = "df7217b3da0da3bd709b760c0c6a2040f25fc28460f4b6c39d0ee2432160ffe5"
)

func vectorQuery() url.Values {
	return url.Values{"url": {"https://example.com/a b?q=1"}, "width": {"1280"}, "height": {"720"}, "key_id": {"42"}, "expires": {"1767225600"}}
}

func TestCanonicalAndSignature(t *testing.T) {
	q := vectorQuery()
	if got := Canonical(q); got != vectorCanonical {
		t.Fatalf("canonical\n%s\nwant\n%s", got, vectorCanonical)
	}
	if got := Signature(vectorSecret, q); got != vectorSignature {
		t.Fatalf("signature %s", got)
	}
	q.Set(ParamSignature, "ignored")
	if got := Canonical(q); got != vectorCanonical {
		t.Fatalf("the signature is signed: %s", got)
	}
}

func TestValid(t *testing.T) {
	q := vectorQuery()
	if !Valid(vectorSecret, q, vectorSignature) || !Valid(vectorSecret, q, strings.ToUpper(vectorSignature)) {
		t.Fatal("the right signature is refused")
	}
	for name, sig := range map[string]string{
		"Empty": "", "NotHex": strings.Repeat("z", 64), "Short": vectorSignature[:62], "Long": vectorSignature + "00",
		"OneBitOff": "cf" + vectorSignature[2:],
	} {
		if Valid(vectorSecret, q, sig) {
			t.Errorf("%s: accepted", name)
		}
	}
	if Valid(vectorSecret[:len(vectorSecret)-1]+"1", q, vectorSignature) {
		t.Error("another secret verifies")
	}
	for _, change := range []func(url.Values){
		func(q url.Values) { q.Set("width", "1281") },
		func(q url.Values) { q.Set("expires", "1767225601") },
		func(q url.Values) { q.Set("key_id", "43") },
		func(q url.Values) { q.Set("full_page", "true") },
		func(q url.Values) { q.Del("height") },
		func(q url.Values) { q.Add("width", "1280") },
	} {
		c := vectorQuery()
		change(c)
		if Valid(vectorSecret, c, vectorSignature) {
			t.Errorf("a changed query %v verifies", c)
		}
	}
}

func TestSignRoundTrip(t *testing.T) {
	raw := Sign(vectorSecret, 42, time.Unix(1767225600, 0), url.Values{"url": {"https://example.com/a b?q=1"}, "width": {"1280"}, "height": {"720"}})
	if raw != vectorCanonical+"&signature="+vectorSignature {
		t.Fatalf("signed query %s", raw)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !Valid(vectorSecret, q, q.Get(ParamSignature)) {
		t.Fatal("a signed query parsed back does not verify")
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"AZaz09-._~": "AZaz09-._~", " ": "%20", "+": "%2B", "/?#&=%": "%2F%3F%23%26%3D%25", "é": "%C3%A9", "*'()!": "%2A%27%28%29%21",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
