package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/signedlink"
	"github.com/peekshot/peekshot/store/storetest"
)

// createSigningSecret gives the key a signing secret through its page, as
// htmx does, and returns it as the page shows it once.
func createSigningSecret(t *testing.T, b *browser, keyID int64) string {
	t.Helper()
	r := b.htmx(http.MethodPost, keyPath(keyID)+"/signing-secret", url.Values{})
	expectStatus(t, r, http.StatusOK)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("the secret's page has Cache-Control %q, want no-store", cc)
	}
	secret, _ := r.doc(t).Find(`[data-testid="new-signing-secret"]`).Attr("value")
	if !apikey.ValidSigningSecret(secret) {
		t.Fatalf("no signing secret shown: %q\n%.3000s", secret, r.body)
	}
	return secret
}

// signedPath is a signed link's path for a key, valid for life.
func (e *testEnv) signedPath(secret string, keyID int64, life time.Duration, params url.Values) string {
	return "/api/v1/screenshots?" + signedlink.Sign(secret, keyID, e.clock.Now().Add(life), params)
}

func (e *testEnv) get(path string, headers ...string) response {
	e.t.Helper()
	return e.apiCall(http.MethodGet, path, "", "", headers...)
}

func credits(t *testing.T, e *testEnv, email string) int64 {
	t.Helper()
	u, err := e.store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.Credits
}

func TestSignedLinkRenders(t *testing.T) {
	e := newTestEnv(t, withRenderer(sharedChromium(t)), withConfig(func(c *Config) { c.RateLimit = 1000 }))
	b, email := e.signUp()
	createKeyHTMX(t, b, "images")
	k := userKeys(t, e, email)[0]
	secret := createSigningSecret(t, b, k.ID)
	page := url.Values{"url": {chrome.pages.URL + "/red"}, "width": {"320"}, "height": {"200"}}

	link := e.signedPath(secret, k.ID, time.Hour, page)
	first := e.get(link)
	expectStatus(t, first, http.StatusOK)
	if ct := first.Header.Get("Content-Type"); ct != "image/png" {
		t.Fatalf("Content-Type %q", ct)
	}
	img := decodeImage(t, "png", []byte(first.body))
	if bd := img.Bounds(); bd.Dx() != 320 || bd.Dy() != 200 {
		t.Fatalf("size %v", bd)
	}
	if c := pixel(t, img, 50, 50); !near(c, blue, 0) {
		t.Fatalf("pixel in the blue square %v", c)
	}
	if cc := first.Header.Get("Cache-Control"); cc != "public, max-age=3600, immutable" {
		t.Fatalf("Cache-Control %q, want public until the link expires", cc)
	}
	etag := first.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}
	if got := credits(t, e, email); got != account.SignupCredits-1 {
		t.Fatalf("%d credits after one render", got)
	}

	t.Run("SecondFetchIsFree", func(t *testing.T) {
		again := e.get(link)
		expectStatus(t, again, http.StatusOK)
		if again.body != first.body || again.Header.Get("ETag") != etag {
			t.Fatal("the same link answered another image")
		}
		if again.Header.Get("Cache-Control") == "" {
			t.Fatal("no Cache-Control on the second answer")
		}
		if got := credits(t, e, email); got != account.SignupCredits-1 {
			t.Fatalf("%d credits: the second fetch was charged", got)
		}
	})
	t.Run("AnotherInstancePaysNothing", func(t *testing.T) {
		// A second server on the same database: its own store and its
		// own memory of images, so it renders the link again, for free.
		again, err := NewServer(e.srv.cfg, e.db.Again(), e.srv.renderer, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(again)
		t.Cleanup(func() {
			hs.Close()
			again.Close(context.Background())
		})
		res, err := http.Get(hs.URL + link)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		if bd := decodeImage(t, "png", body).Bounds(); bd.Dx() != 320 || bd.Dy() != 200 {
			t.Fatalf("size %v", bd)
		}
		if got := res.Header.Get("X-Credits-Remaining"); got != strconv.FormatInt(account.SignupCredits-1, 10) {
			t.Fatalf("X-Credits-Remaining %q", got)
		}
		if got := credits(t, e, email); got != account.SignupCredits-1 {
			t.Fatalf("%d credits: the other instance charged the link again", got)
		}
	})
	t.Run("IfNoneMatchIs304AndFree", func(t *testing.T) {
		r := e.get(link, "If-None-Match", etag)
		expectStatus(t, r, http.StatusNotModified)
		if r.body != "" || r.Header.Get("ETag") != etag {
			t.Fatalf("304 with body %q, ETag %q", r.body, r.Header.Get("ETag"))
		}
		// Another link's tag is not this one's.
		other := e.get(e.signedPath(secret, k.ID, 2*time.Hour, page), "If-None-Match", etag)
		expectStatus(t, other, http.StatusOK)
		if got := credits(t, e, email); got != account.SignupCredits-2 {
			t.Fatalf("%d credits after a 304 and another link's render", got)
		}
	})
	t.Run("AnEmbeddingPagePaysOnce", func(t *testing.T) {
		// The same image three times on a page: fetched at once.
		fresh := e.signedPath(secret, k.ID, time.Hour, url.Values{"url": {chrome.pages.URL + "/red"}, "width": {"300"}, "height": {"200"}})
		before := credits(t, e, email)
		var wg sync.WaitGroup
		bodies := make([]string, 3)
		for i := range bodies {
			wg.Go(func() {
				r := e.get(fresh)
				if r.StatusCode != http.StatusOK {
					t.Errorf("fetch %d: %d %s", i, r.StatusCode, r.body)
				}
				bodies[i] = r.body
			})
		}
		wg.Wait()
		if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
			t.Fatal("one link, several images")
		}
		if got := credits(t, e, email); got != before-1 {
			t.Fatalf("three fetches at once cost %d credits, want 1", before-got)
		}
	})
	t.Run("CreditsAndRateLimitAsForPOST", func(t *testing.T) {
		storetest.SetBalance(t, e.db, k.UserID, 0)
		fresh := e.signedPath(secret, k.ID, time.Hour, url.Values{"url": {chrome.pages.URL + "/red"}, "width": {"200"}, "height": {"200"}})
		expectAPIError(t, e.get(fresh), http.StatusPaymentRequired, "insufficient_credits")
		// What was paid for is still shown: it costs nothing.
		expectStatus(t, e.get(link), http.StatusOK)
		storetest.SetBalance(t, e.db, k.UserID, 10)
		if _, err := e.store.UpdateAPIKeySettings(context.Background(), k.UserID, k.ID, account.KeySettings{Label: k.Label,
			Policy: account.Policy{Scopes: account.DefaultScopes, RateLimit: 1}}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(2 * time.Minute) // the renders so far fall out of the limit's minute
		expectStatus(t, e.get(fresh), http.StatusOK)
		r := e.get(e.signedPath(secret, k.ID, 2*time.Hour, url.Values{"url": {chrome.pages.URL + "/red"}}))
		expectAPIError(t, r, http.StatusTooManyRequests, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		if _, err := e.store.UpdateAPIKeySettings(context.Background(), k.UserID, k.ID, account.KeySettings{Label: k.Label, Policy: account.DefaultPolicy()}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CountedAsTheKeysRequests", func(t *testing.T) {
		if err := e.srv.flushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := userKeys(t, e, email)[0]
		if got.RequestCount < 7 || got.LastUsedAt.IsZero() {
			t.Fatalf("request count %d, last used %v: signed links aren't the key's requests", got.RequestCount, got.LastUsedAt)
		}
		days, err := e.store.KeyUsageDays(context.Background(), got.UserID, got.ID, e.clock.Now().AddDate(0, 0, -1))
		if err != nil || len(days) != 1 || days[0].Renders != 5 || days[0].Credits != 4 || days[0].ErrorsByCode["insufficient_credits"] != 1 {
			t.Fatalf("days %+v %v: want 5 renders (one on the other instance, free) for 4 credits, and a refusal", days, err)
		}
	})
}

// signedEnv is a server without a renderer (a link that checks out gets
// 503 renderer_unavailable: it went past every check), a user with a key
// and its signing secret.
func signedEnv(t *testing.T) (e *testEnv, b *browser, k account.APIKey, secret string) {
	t.Helper()
	e = newTestEnv(t)
	b, email := e.signUp()
	createKeyHTMX(t, b, "images")
	k = userKeys(t, e, email)[0]
	return e, b, k, createSigningSecret(t, b, k.ID)
}

var linkParams = url.Values{"url": {"https://example.com/page"}, "width": {"640"}, "height": {"480"}, "format": {"jpeg"}, "quality": {"70"}}

func TestSignedLinkRefusals(t *testing.T) {
	e, b, k, secret := signedEnv(t)
	good := e.signedPath(secret, k.ID, time.Hour, linkParams)
	t.Run("GoodLinkPassesEveryCheck", func(t *testing.T) {
		expectAPIError(t, e.get(good), http.StatusServiceUnavailable, "renderer_unavailable")
	})
	t.Run("AnyChangeOfAParameter", func(t *testing.T) {
		q, _ := url.ParseQuery(strings.TrimPrefix(good, "/api/v1/screenshots?"))
		for name := range q {
			if name == signedlink.ParamSignature {
				continue
			}
			changed := cloneValues(q)
			changed.Set(name, q.Get(name)+"1")
			t.Run(name, func(t *testing.T) {
				r := expectAPIError(t, e.get("/api/v1/screenshots?"+changed.Encode()), http.StatusUnauthorized, "invalid_signature")
				if strings.Contains(r.Error.Message, secret) {
					t.Fatal("the secret in an error")
				}
			})
		}
		for name, change := range map[string]func(url.Values){
			"Added":            func(q url.Values) { q.Set("full_page", "true") },
			"Removed":          func(q url.Values) { q.Del("quality") },
			"Repeated":         func(q url.Values) { q.Add("width", "640") },
			"SignatureChanged": func(q url.Values) { s := q.Get("signature"); q.Set("signature", flipHex(s)) },
			"SignatureMissing": func(q url.Values) { q.Del("signature") },
			"KeyIDMissing":     func(q url.Values) { q.Del("key_id") },
			"ExpiresMissing":   func(q url.Values) { q.Del("expires") },
		} {
			t.Run(name, func(t *testing.T) {
				changed := cloneValues(q)
				change(changed)
				expectAPIError(t, e.get("/api/v1/screenshots?"+changed.Encode()), http.StatusUnauthorized, "invalid_signature")
			})
		}
	})
	t.Run("NoSignatureAtAll", func(t *testing.T) {
		expectAPIError(t, e.get("/api/v1/screenshots?url=https%3A%2F%2Fexample.com"), http.StatusUnauthorized, "invalid_signature")
	})
	t.Run("UnknownKeyAndKeyWithoutSecret", func(t *testing.T) {
		expectAPIError(t, e.get(e.signedPath(secret, k.ID+1000, time.Hour, linkParams)), http.StatusUnauthorized, "invalid_signature")
		other, _ := createKeyHTMX(t, b, "no secret")
		otherKey, _ := e.store.APIKeyByHash(context.Background(), apikey.HashOf(other))
		expectAPIError(t, e.get(e.signedPath(secret, otherKey.ID, time.Hour, linkParams)), http.StatusUnauthorized, "invalid_signature")
	})
	t.Run("AnotherAccountsKey", func(t *testing.T) {
		mallory, email := e.signUp()
		createKeyHTMX(t, mallory, "mallory")
		mk := userKeys(t, e, email)[0]
		createSigningSecret(t, mallory, mk.ID)
		// Mallory's secret can't sign for alice's key, nor alice's for mallory's.
		expectAPIError(t, e.get(e.signedPath(secret, mk.ID, time.Hour, linkParams)), http.StatusUnauthorized, "invalid_signature")
	})
	t.Run("Expired", func(t *testing.T) {
		short := e.signedPath(secret, k.ID, time.Minute, linkParams)
		expectAPIError(t, e.get(short), http.StatusServiceUnavailable, "renderer_unavailable")
		e.clock.Add(time.Minute)
		expectAPIError(t, e.get(short), http.StatusUnauthorized, "signature_expired")
		// An expired link whose expiry was pushed back is a changed link.
		q, _ := url.ParseQuery(strings.TrimPrefix(short, "/api/v1/screenshots?"))
		q.Set("expires", strconv.FormatInt(e.clock.Now().Add(time.Hour).Unix(), 10))
		expectAPIError(t, e.get("/api/v1/screenshots?"+q.Encode()), http.StatusUnauthorized, "invalid_signature")
	})
	t.Run("APIKeyInTheURL", func(t *testing.T) {
		plain, _ := createKeyHTMX(t, b, "in a URL")
		expectAPIError(t, e.get(good+"&key="+plain), http.StatusUnauthorized, "missing_api_key")
	})
	t.Run("UnknownParameterSigned", func(t *testing.T) {
		p := cloneValues(linkParams)
		p.Set("colour", "red")
		r := expectAPIError(t, e.get(e.signedPath(secret, k.ID, time.Hour, p)), http.StatusBadRequest, "invalid_request")
		if !strings.Contains(r.Error.Message, "colour") {
			t.Fatalf("message %q", r.Error.Message)
		}
		p = cloneValues(linkParams)
		p.Set("width", "99999")
		expectAPIError(t, e.get(e.signedPath(secret, k.ID, time.Hour, p)), http.StatusBadRequest, "invalid_request")
		p = cloneValues(linkParams)
		p.Set("url", "ftp://example.com/")
		expectAPIError(t, e.get(e.signedPath(secret, k.ID, time.Hour, p)), http.StatusBadRequest, "invalid_request")
	})
	t.Run("TheKeysPolicyApplies", func(t *testing.T) {
		ctx := context.Background()
		if _, err := e.store.SetAPIKeyActive(ctx, k.UserID, k.ID, false); err != nil {
			t.Fatal(err)
		}
		expectAPIError(t, e.get(good), http.StatusForbidden, "api_key_inactive")
		if _, err := e.store.SetAPIKeyActive(ctx, k.UserID, k.ID, true); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			policy account.Policy
			status int
			code   string
		}{
			{"Scope", account.Policy{Scopes: []account.Scope{account.ScopeHTMLToImage}}, http.StatusForbidden, "scope_not_allowed"},
			{"AllowedSites", account.Policy{Scopes: account.DefaultScopes, AllowedTargets: []string{"example.org"}}, http.StatusForbidden, "target_not_allowed"},
			{"AllowedIPs", account.Policy{Scopes: account.DefaultScopes, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, http.StatusForbidden, "ip_not_allowed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := e.store.UpdateAPIKeySettings(ctx, k.UserID, k.ID, account.KeySettings{Label: k.Label, Policy: tc.policy}); err != nil {
					t.Fatal(err)
				}
				expectAPIError(t, e.get(good), tc.status, tc.code)
			})
		}
		if _, err := e.store.UpdateAPIKeySettings(ctx, k.UserID, k.ID, account.KeySettings{Label: k.Label, Policy: account.DefaultPolicy()}); err != nil {
			t.Fatal(err)
		}
		expectAPIError(t, e.get(good), http.StatusServiceUnavailable, "renderer_unavailable")
	})
	t.Run("RotatedSecretStopsAtOnce", func(t *testing.T) {
		next := createSigningSecret(t, b, k.ID)
		if next == secret {
			t.Fatal("rotation kept the secret")
		}
		expectAPIError(t, e.get(good), http.StatusUnauthorized, "invalid_signature")
		expectAPIError(t, e.get(e.signedPath(next, k.ID, time.Hour, linkParams)), http.StatusServiceUnavailable, "renderer_unavailable")
	})
	if strings.Contains(e.logs.String(), secret) || strings.Contains(e.logs.String(), "signature=") {
		t.Fatal("a secret or a signature in the logs")
	}
}

func TestSigningSecretShownOnce(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	createKeyHTMX(t, b, "images")
	k := userKeys(t, e, email)[0]

	page := b.get(keyPath(k.ID))
	if page.doc(t).Find(`[data-testid="signing-create"]`).Length() != 1 {
		t.Fatal("no way to create a signing secret on the key's page")
	}
	// Without JavaScript: a plain post, then the redirect's page shows it.
	r := b.post(keyPath(k.ID)+"/signing-secret", nil)
	expectStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != keyPath(k.ID) {
		t.Fatalf("redirect to %q", r.Header.Get("Location"))
	}
	shown := b.get(keyPath(k.ID))
	expectStatus(t, shown, http.StatusOK)
	if cc := shown.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q on the page that shows the secret", cc)
	}
	d := shown.doc(t)
	secret, _ := d.Find(`[data-testid="new-signing-secret"]`).Attr("value")
	if !apikey.ValidSigningSecret(secret) {
		t.Fatalf("secret %q", secret)
	}
	if got := d.Find(`[data-testid="signing-secret-masked"]`).Text(); got != apikey.MaskKey(secret) {
		t.Fatalf("masked %q", got)
	}
	if d.Find(`[data-testid="signing-rotate"]`).Length() != 1 {
		t.Fatal("no rotate button once a secret exists")
	}
	example := d.Find(`[data-testid="signed-example"]`).Text()
	if !strings.HasPrefix(example, e.http.URL+"/api/v1/screenshots?") || !strings.Contains(example, "key_id="+strconv.FormatInt(k.ID, 10)) {
		t.Fatalf("example link %q", example)
	}
	// The example link is signed for this key, and works.
	expectAPIError(t, e.get(strings.TrimPrefix(example, e.http.URL)), http.StatusServiceUnavailable, "renderer_unavailable")

	again := b.get(keyPath(k.ID))
	if strings.Contains(again.body, secret) {
		t.Fatal("the secret is shown a second time")
	}
	if e.dbContains(secret) || e.dbContains(secret[4:]) {
		t.Fatal("the signing secret is stored in clear")
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Fatal("the signing secret is in the logs")
	}
	entries, _ := e.store.Activity(context.Background(), k.UserID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeySettingsChanged})
	if len(entries) != 1 || !strings.Contains(entries[0].Detail, "signing secret") || strings.Contains(entries[0].Detail, secret) {
		t.Fatalf("activity %+v", entries)
	}

	t.Run("HowToOnThePageSignsALink", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Fatal("openssl is needed to run the page's how-to: apt-get install openssl")
		}
		howto := again.doc(t).Find(`[data-testid="signed-link-howto"]`).Text()
		script := strings.Replace(howto, "SECRET=pss_…", "SECRET="+secret, 1)
		out, err := exec.Command("bash", "-c", script).Output()
		if err != nil {
			t.Fatalf("%v\n%s", err, script)
		}
		link := strings.TrimPrefix(strings.TrimSpace(string(out)), e.http.URL)
		expectAPIError(t, e.get(link), http.StatusServiceUnavailable, "renderer_unavailable")
	})
	t.Run("ExpiredKeyCantHaveOne", func(t *testing.T) {
		if _, _, err := e.store.RotateAPIKey(context.Background(), k.UserID, k.ID, storetestKey(t), account.Grace{}); err != nil {
			t.Fatal(err)
		}
		r := b.post(keyPath(k.ID)+"/signing-secret", nil)
		expectStatus(t, r, http.StatusConflict)
		if !strings.Contains(r.doc(t).Text(), "can't sign links") {
			t.Fatalf("%.2000s", r.body)
		}
	})
	t.Run("AnotherUsersKey", func(t *testing.T) {
		other, _ := e.signUp()
		expectStatus(t, other.post(keyPath(k.ID)+"/signing-secret", nil), http.StatusNotFound)
	})
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// flipHex changes the first hex digit of s.
func flipHex(s string) string {
	if s == "" {
		return "0"
	}
	c := byte('0')
	if s[0] == '0' {
		c = '1'
	}
	return string(c) + s[1:]
}

func storetestKey(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
