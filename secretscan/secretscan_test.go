package secretscan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func file(t *testing.T, entries ...[2]string) []byte {
	t.Helper()
	var f keyFile
	for _, e := range entries {
		f.PublicKeys = append(f.PublicKeys, struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		}{e[0], e[1], true})
	}
	b, _ := json.Marshal(f)
	return b
}

func TestParseKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := pemOf(t, &p256.PublicKey)
	if k, err := ParseKeys(file(t, [2]string{"a", good}, [2]string{"b", good})); err != nil || k.Len() != 2 {
		t.Fatalf("%v %v", k, err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"NotJSON":      {[]byte("public_keys: []"), "not the JSON"},
		"NoKeys":       {[]byte(`{"public_keys": []}`), "no keys"},
		"NoIdentifier": {file(t, [2]string{"", good}), "no key_identifier"},
		"Duplicate":    {file(t, [2]string{"a", good}, [2]string{"a", good}), "twice"},
		"NotPEM":       {file(t, [2]string{"a", "MFkwEwYH"}), "PEM"},
		"OtherCurve":   {file(t, [2]string{"a", pemOf(t, &p384.PublicKey)}), "P-256"},
		"RSA":          {file(t, [2]string{"a", pemOf(t, &rsaKey.PublicKey)}), "P-256"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseKeys(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := ParseKeys(file(t, [2]string{"id1", pemOf(t, &priv.PublicKey)}))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"token":"psk_x","type":"t","url":"u","source":"s"}]`)
	digest := sha256.Sum256(body)
	raw, _ := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	sig := base64.StdEncoding.EncodeToString(raw)
	if err := k.Verify("id1", sig, body); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		id, sig string
		body    []byte
		want    error
	}{
		"Unsigned":    {"id1", "", body, ErrUnsigned},
		"NoKey":       {"", sig, body, ErrUnsigned},
		"UnknownKey":  {"id2", sig, body, ErrUnknownKey},
		"ChangedBody": {"id1", sig, append([]byte(" "), body...), ErrBadSignature},
		"NotBase64":   {"id1", "***", body, ErrBadSignature},
		"Garbage":     {"id1", base64.StdEncoding.EncodeToString([]byte("nope")), body, ErrBadSignature},
	} {
		t.Run(name, func(t *testing.T) {
			if err := k.Verify(tc.id, tc.sig, tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseAlerts(t *testing.T) {
	a, err := ParseAlerts([]byte(`[{"token":"psk_1","type":"peekshot_api_key","url":"https://github.com/x","source":"commit","extra":1}]`))
	if err != nil || len(a) != 1 || a[0].Token != "psk_1" || a[0].Source != "commit" {
		t.Fatalf("%+v %v", a, err)
	}
	for _, bad := range []string{`{}`, `[{"type":"x"}]`, `nope`, "[" + strings.Repeat(`{"token":"x"},`, MaxAlerts) + `{"token":"x"}]`} {
		if _, err := ParseAlerts([]byte(bad)); err == nil {
			t.Errorf("%.40s…: accepted", bad)
		}
	}
}
