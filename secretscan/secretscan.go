// Package secretscan owns GitHub's secret-scanning partner protocol, which
// other scanners speak too (SPEC §8): the public keys alerts are signed
// with, in the JSON format GitHub publishes them in, the check of an
// alert's ECDSA P-256 / SHA-256 signature over its raw body, and the alert
// and answer formats.
package secretscan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The headers a signed alert carries.
const (
	HeaderKeyIdentifier = "GITHUB-PUBLIC-KEY-IDENTIFIER"
	HeaderSignature     = "GITHUB-PUBLIC-KEY-SIGNATURE"
)

// Errors of Verify.
var (
	ErrUnsigned     = errors.New("the alert is not signed")
	ErrUnknownKey   = errors.New("the alert names a public key that is not configured")
	ErrBadSignature = errors.New("the alert's signature does not match its body")
)

// Keys are the public keys alerts may be signed with, by identifier.
type Keys struct {
	byID map[string]*ecdsa.PublicKey
}

// keyFile is GitHub's published format:
// {"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…", "is_current": true}]}.
type keyFile struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// LoadKeys reads the key file at path (PEEKSHOT_SECRET_SCANNING_KEYS).
func LoadKeys(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret-scanning keys: %w", err)
	}
	k, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("secret-scanning keys in %s: %w", path, err)
	}
	return k, nil
}

// ParseKeys reads a key file. Every key counts, current or not: an alert
// signed just before GitHub moved to a new key must still be accepted.
func ParseKeys(data []byte) (*Keys, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf(`not the JSON GitHub publishes ({"public_keys": [{"key_identifier": …, "key": …}]}): %w`, err)
	}
	if len(f.PublicKeys) == 0 {
		return nil, errors.New(`no keys: "public_keys" is missing or empty`)
	}
	k := &Keys{byID: make(map[string]*ecdsa.PublicKey, len(f.PublicKeys))}
	for i, pk := range f.PublicKeys {
		id := strings.TrimSpace(pk.KeyIdentifier)
		if id == "" {
			return nil, fmt.Errorf("key %d has no key_identifier", i+1)
		}
		if _, dup := k.byID[id]; dup {
			return nil, fmt.Errorf("key_identifier %q appears twice", id)
		}
		pub, err := parsePublicKey(pk.Key)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		k.byID[id] = pub
	}
	return k, nil
}

func parsePublicKey(text string) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM block of type PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a public key: %w", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return ec, nil
}

// Len is how many keys there are.
func (k *Keys) Len() int { return len(k.byID) }

// Verify checks that signature (base64 ASN.1 DER) is identifier's ECDSA
// P-256 signature of the SHA-256 of body, the raw bytes received.
func (k *Keys) Verify(identifier, signature string, body []byte) error {
	if identifier == "" || signature == "" {
		return ErrUnsigned
	}
	pub, ok := k.byID[identifier]
	if !ok {
		return ErrUnknownKey
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrBadSignature
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return ErrBadSignature
	}
	return nil
}

// Alert is one token a scanner found.
type Alert struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// MaxAlerts bounds the tokens of one alert.
const MaxAlerts = 1000

// ParseAlerts reads an alert's body: a JSON array of tokens found.
func ParseAlerts(body []byte) ([]Alert, error) {
	var alerts []Alert
	if err := json.Unmarshal(body, &alerts); err != nil {
		return nil, errors.New(`the body must be a JSON array of {"token", "type", "url", "source"}`)
	}
	if len(alerts) > MaxAlerts {
		return nil, fmt.Errorf("at most %d tokens per alert", MaxAlerts)
	}
	for i, a := range alerts {
		if a.Token == "" {
			return nil, fmt.Errorf("token %d is empty", i+1)
		}
	}
	return alerts, nil
}

// Labels of an answer.
const (
	TruePositive  = "true_positive"
	FalsePositive = "false_positive"
)

// Result is the answer about one token: its SHA-256 in hex, its type as
// the alert said, and whether it was one of ours.
type Result struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}
