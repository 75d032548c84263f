package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/secretscan"
)

// scanner is a secret scanner the test plays: its key pair, published
// under an identifier in GitHub's format.
type scanner struct {
	id   string
	priv *ecdsa.PrivateKey
}

func newScanner(t *testing.T, id string) scanner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return scanner{id: id, priv: priv}
}

// keyFile is the scanners' public keys as GitHub publishes them.
func keyFile(t *testing.T, scanners ...scanner) []byte {
	t.Helper()
	type entry struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	}
	var f struct {
		PublicKeys []entry `json:"public_keys"`
	}
	for i, s := range scanners {
		der, err := x509.MarshalPKIXPublicKey(&s.priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		f.PublicKeys = append(f.PublicKeys, entry{s.id, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), i == 0})
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s scanner) sign(t *testing.T, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, s.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// alert posts body to the endpoint with the given identifier and signature.
func (e *testEnv) alert(body []byte, id, sig string) response {
	e.t.Helper()
	var headers []string
	if id != "" {
		headers = append(headers, secretscan.HeaderKeyIdentifier, id)
	}
	if sig != "" {
		headers = append(headers, secretscan.HeaderSignature, sig)
	}
	return e.apiCall(http.MethodPost, "/api/v1/secret-scanning/github", "", string(body), headers...)
}

func alertBody(t *testing.T, alerts ...secretscan.Alert) []byte {
	t.Helper()
	b, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// badChecksum is a string shaped like a key whose checksum is wrong.
func badChecksum(t *testing.T) string {
	t.Helper()
	k := storetestKey(t)
	last := k[len(k)-1]
	swap := byte('0')
	if last == '0' {
		swap = '1'
	}
	bad := k[:len(k)-1] + string(swap)
	if apikey.Valid(bad) {
		t.Fatal("the changed key still checks out")
	}
	return bad
}

func scanningEnv(t *testing.T, scanners ...scanner) *testEnv {
	t.Helper()
	keys, err := secretscan.ParseKeys(keyFile(t, scanners...))
	if err != nil {
		t.Fatal(err)
	}
	return newTestEnv(t, withConfig(func(c *Config) { c.SecretScanningKeys = keys }))
}

func TestSecretScanningAlert(t *testing.T) {
	github := newScanner(t, "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a")
	old := newScanner(t, "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c")
	e := scanningEnv(t, github, old)
	b, email := e.signUp()
	leaked, _ := createKeyHTMX(t, b, "Zapier integration")
	safe, _ := createKeyHTMX(t, b, "Server-side app")
	keys := userKeys(t, e, email)
	var leakedKey account.APIKey
	for _, k := range keys {
		if k.Label == "Zapier integration" {
			leakedKey = k
		}
	}
	where := "https://github.com/acme/site/blob/3f2a/.env"
	unknown, garbage := storetestKey(t), badChecksum(t)
	body := alertBody(t,
		secretscan.Alert{Token: unknown, Type: "peekshot_api_key", URL: "https://gist.github.com/x", Source: "gist"},
		secretscan.Alert{Token: leaked, Type: "peekshot_api_key", URL: where, Source: "commit"},
		secretscan.Alert{Token: garbage, Type: "peekshot_api_key", URL: "https://github.com/x/y", Source: "commit"},
	)

	t.Run("RefusedUnlessSignedByAKnownKey", func(t *testing.T) {
		other := newScanner(t, github.id) // the right identifier, another key pair
		changed := []byte(strings.Replace(string(body), "3f2a", "3f2b", 1))
		for _, tc := range []struct {
			name    string
			body    []byte
			id, sig string
		}{
			{"Unsigned", body, "", ""},
			{"NoIdentifier", body, "", github.sign(t, body)},
			{"NoSignature", body, github.id, ""},
			{"WronglySigned", body, github.id, other.sign(t, body)},
			{"UnknownKeyIdentifier", body, "0000", github.sign(t, body)},
			{"SignedByAnotherListedKey", body, old.id, github.sign(t, body)},
			{"BodyChangedAfterSigning", changed, github.id, github.sign(t, body)},
			{"NotBase64", body, github.id, "%%%"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectAPIError(t, e.alert(tc.body, tc.id, tc.sig), http.StatusUnauthorized, "invalid_signature")
			})
		}
		if got, _ := e.store.APIKeyByHash(context.Background(), apikey.HashOf(leaked)); !got.Active {
			t.Fatal("a refused alert deactivated the key")
		}
		if reports, _ := e.store.LeakReports(context.Background(), leakedKey.UserID); len(reports) != 0 {
			t.Fatalf("a refused alert was recorded: %+v", reports)
		}
		entries, _ := e.store.Activity(context.Background(), leakedKey.UserID, account.ActivityFilter{Event: account.EventKeyLeakReported})
		if len(entries) != 0 {
			t.Fatalf("a refused alert was logged: %+v", entries)
		}
		expectStatus(t, e.apiCall("GET", "/api/v1/me", leaked, ""), http.StatusOK)
	})

	t.Run("SignedAlertDeactivatesAndAnswers", func(t *testing.T) {
		r := e.alert(body, github.id, github.sign(t, body))
		expectStatus(t, r, http.StatusOK)
		var got []map[string]any
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
		want := []map[string]any{
			{"token_hash": tokenHash(unknown), "token_type": "peekshot_api_key", "label": "false_positive"},
			{"token_hash": tokenHash(leaked), "token_type": "peekshot_api_key", "label": "true_positive"},
			{"token_hash": tokenHash(garbage), "token_type": "peekshot_api_key", "label": "false_positive"},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("answer\n%v\nwant\n%v", got, want)
		}
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", leaked, ""), http.StatusForbidden, "api_key_inactive")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", safe, ""), http.StatusOK)
		entries, _ := e.store.Activity(context.Background(), leakedKey.UserID, account.ActivityFilter{Event: account.EventKeyLeakReported})
		if len(entries) != 1 || entries[0].KeyID != leakedKey.ID || entries[0].Actor.Kind != account.ActorScanner || !strings.Contains(entries[0].Detail, where) {
			t.Fatalf("activity %+v", entries)
		}
		if strings.Contains(e.logs.String(), leaked) || e.dbContains(leaked) {
			t.Fatal("the leaked key is in the logs or the database")
		}
	})
	t.Run("AnotherListedKeySigns", func(t *testing.T) {
		again := alertBody(t, secretscan.Alert{Token: leaked, Type: "peekshot_api_key", URL: where, Source: "commit"})
		r := e.alert(again, old.id, old.sign(t, again))
		expectStatus(t, r, http.StatusOK)
		if !strings.Contains(r.body, `"true_positive"`) {
			t.Fatal(r.body)
		}
	})
	t.Run("BannerOnEveryAccountPage", func(t *testing.T) {
		for _, path := range []string{"/account/profile", "/account/api-keys", "/account/coupons", "/account/activity", keyPath(leakedKey.ID)} {
			d := b.get(path).doc(t)
			banner := d.Find(`[data-testid="leak-banner"]`)
			if banner.Length() != 1 {
				t.Fatalf("%s: no leak banner", path)
			}
			text := banner.Text()
			if !strings.Contains(text, "Zapier integration") || !strings.Contains(text, where) || !strings.Contains(text, "deactivated it at") ||
				strings.Contains(text, "Server-side app") {
				t.Fatalf("%s: banner says %q", path, text)
			}
			if href, _ := banner.Find(`[data-testid="leak-url"]`).Attr("href"); href != where {
				t.Fatalf("%s: link %q", path, href)
			}
		}
		// A tab switch with htmx brings the banner along, out of band.
		r := b.htmx(http.MethodGet, "/account/coupons", nil)
		if !strings.Contains(r.body, `id="leak-banner" hx-swap-oob="true"`) || !strings.Contains(r.body, where) {
			t.Fatalf("the tab partial lacks the banner:\n%.1500s", r.body)
		}
	})
	t.Run("HealthFinding", func(t *testing.T) {
		d := b.get("/account/api-keys").doc(t)
		finding := d.Find(`[data-testid="finding-leaked"]`)
		if finding.Length() != 1 {
			t.Fatal("no reported-leaked finding")
		}
		if id, _ := finding.Find(`[data-testid="finding-key"]`).Attr("data-key-id"); id != fmt.Sprint(leakedKey.ID) {
			t.Fatalf("the finding names key %q", id)
		}
		if finding.Find(`[data-testid="fix-rotate"]`).Length() != 1 {
			t.Fatal("no one-click rotation")
		}
	})
	t.Run("RotatingEndsIt", func(t *testing.T) {
		r := b.post(keyPath(leakedKey.ID)+"/rotate", url.Values{"grace": {"now"}})
		expectStatus(t, r, http.StatusSeeOther)
		page := b.get("/account/api-keys")
		d := page.doc(t)
		if d.Find(`[data-testid="leak-banner"]`).Length() != 0 || d.Find(`[data-testid="finding-leaked"]`).Length() != 0 {
			t.Fatal("the banner or the finding stays after the rotation")
		}
		replacement, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", replacement, ""), http.StatusOK)
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", leaked, ""), http.StatusUnauthorized, "api_key_expired")
	})
	t.Run("DismissEndsIt", func(t *testing.T) {
		one := alertBody(t, secretscan.Alert{Token: safe, Type: "peekshot_api_key", URL: "https://github.com/acme/other"})
		expectStatus(t, e.alert(one, github.id, github.sign(t, one)), http.StatusOK)
		d := b.get("/account/profile").doc(t)
		if d.Find(`[data-testid="leak"]`).Length() != 1 {
			t.Fatal("no banner for the second leak")
		}
		var safeID int64
		for _, k := range userKeys(t, e, email) {
			if k.Label == "Server-side app" {
				safeID = k.ID
			}
		}
		other, _ := e.signUp()
		expectStatus(t, other.post(keyPath(safeID)+"/dismiss-leak", nil), http.StatusNotFound)
		r := b.post(keyPath(safeID)+"/dismiss-leak", nil)
		expectStatus(t, r, http.StatusSeeOther)
		if b.get("/account/profile").doc(t).Find(`[data-testid="leak-banner"]`).Length() != 0 {
			t.Fatal("the banner stays after dismissing")
		}
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", safe, ""), http.StatusForbidden, "api_key_inactive")
	})
	t.Run("Bounds", func(t *testing.T) {
		notJSON := []byte(`{"token": "x"}`)
		expectAPIError(t, e.alert(notJSON, github.id, github.sign(t, notJSON)), http.StatusBadRequest, "invalid_request")
		huge := []byte("[" + strings.Repeat(`{"token":"x"},`, 80_000) + `{"token":"x"}]`)
		expectAPIError(t, e.alert(huge, github.id, github.sign(t, huge)), http.StatusRequestEntityTooLarge, "payload_too_large")
		empty := []byte(`[]`)
		r := e.alert(empty, github.id, github.sign(t, empty))
		expectStatus(t, r, http.StatusOK)
		if strings.TrimSpace(r.body) != "[]" {
			t.Fatalf("answer %q", r.body)
		}
	})
}

func TestSecretScanningOff(t *testing.T) {
	e := newTestEnv(t)
	body := []byte(`[]`)
	r := expectAPIError(t, e.alert(body, "k", "c2ln"), http.StatusNotFound, "not_found")
	if !strings.Contains(r.Error.Message, "PEEKSHOT_SECRET_SCANNING_KEYS") {
		t.Fatalf("message %q", r.Error.Message)
	}
}
