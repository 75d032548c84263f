package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

var keyPattern = regexp.MustCompile(`psk_[0-9A-Za-z]{38}`)

// createKeyHTMX creates a key through the htmx form and returns the full
// key shown once, and its id.
func createKeyHTMX(t *testing.T, b *browser, label string) (string, int64) {
	t.Helper()
	r := b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {label}})
	expectStatus(t, r, http.StatusOK)
	if isFullPage(r.body) {
		t.Fatal("htmx create answered with a full page")
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("reveal response Cache-Control = %q, want no-store", cc)
	}
	d := r.doc(t)
	key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
	if !apikey.Valid(key) {
		t.Fatalf("no valid key revealed: %q", key)
	}
	idAttr, _ := d.Find(`tr.row-new`).Attr("data-key-id")
	id, err := parseID(idAttr)
	if err != nil {
		t.Fatalf("new row id %q: %v", idAttr, err)
	}
	return key, id
}

func parseID(s string) (int64, error) {
	var id int64
	_, err := fmtSscan(s, &id)
	return id, err
}

func userKeys(t *testing.T, e *testEnv, email string) []account.APIKey {
	t.Helper()
	u, err := e.store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.store.APIKeys(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestAPIKeysPage(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	t.Run("FullPage", func(t *testing.T) {
		r := b.get("/account/api-keys")
		expectStatus(t, r, http.StatusOK)
		d := r.doc(t)
		if !isFullPage(r.body) {
			t.Fatal("direct load is not a full page")
		}
		if d.Find(`[data-testid="keys-empty"]`).Text() == "" || !strings.Contains(r.body, "No API keys yet") {
			t.Fatal("no empty state")
		}
		active := d.Find(`#account-tabs a[aria-current="page"]`)
		if active.Length() != 1 || strings.TrimSpace(active.Text()) != "API Keys" || active.Find("svg").Length() != 1 {
			t.Fatalf("active tab %q", active.Text())
		}
		if d.Find(`nav.nav a:contains("Account")`).Length() != 1 {
			t.Fatal("no Account entry in the sidebar")
		}
		for _, tab := range []string{"Profile", "API Keys", "Redeem Coupon"} {
			if d.Find(`#account-tabs a:contains("`+tab+`")`).Length() != 1 {
				t.Fatalf("tab %q missing", tab)
			}
		}
		if d.Find(`button:contains("Create API Key")`).Length() != 1 {
			t.Fatal("no Create API Key button")
		}
		if !strings.Contains(r.Header.Get("Vary"), "HX-Request") {
			t.Fatal("no Vary: HX-Request")
		}
	})
	t.Run("HTMXTabIsPartial", func(t *testing.T) {
		for _, tab := range []string{"/account/api-keys", "/account/profile", "/account/coupons"} {
			r := b.get(tab, "HX-Request", "true")
			expectStatus(t, r, http.StatusOK)
			if isFullPage(r.body) || strings.Contains(r.body, `class="sidebar"`) {
				t.Fatalf("%s: htmx request got a full page", tab)
			}
			d := r.doc(t)
			if d.Find(`#account-tabs[hx-swap-oob]`).Length() != 1 {
				t.Fatalf("%s: tab row not sent out of band", tab)
			}
			if cur, _ := d.Find(`#account-tabs a[aria-current="page"]`).Attr("href"); cur != tab {
				t.Fatalf("%s: active tab %q", tab, cur)
			}
		}
		// A history restore or boosted request gets the whole page.
		for _, h := range []string{"HX-History-Restore-Request", "HX-Boosted"} {
			r := b.get("/account/api-keys", "HX-Request", "true", h, "true")
			if !isFullPage(r.body) {
				t.Fatalf("%s: got a fragment", h)
			}
		}
	})
}

func TestCreateAPIKey(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()

	t.Run("HTMX", func(t *testing.T) {
		key, id := createKeyHTMX(t, b, "  Server-side app  ")
		keys := userKeys(t, e, email)
		if len(keys) != 1 || keys[0].ID != id || keys[0].Label != "Server-side app" {
			t.Fatalf("stored %+v", keys)
		}
		if keys[0].Masked() != apikey.MaskKey(key) {
			t.Fatal("stored mask differs")
		}
	})
	t.Run("PlainPostRedirectsAndRevealsOnce", func(t *testing.T) {
		r := b.post("/account/api-keys", url.Values{"label": {"Zapier integration"}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/api-keys" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		page := b.get("/account/api-keys")
		expectStatus(t, page, http.StatusOK)
		if page.Header.Get("Cache-Control") != "no-store" {
			t.Fatal("page with the key is cacheable")
		}
		key, _ := page.doc(t).Find(`[data-testid="new-key"]`).Attr("value")
		if !apikey.Valid(key) {
			t.Fatal("key not shown after the redirect")
		}
		again := b.get("/account/api-keys")
		if strings.Contains(again.body, key) || keyPattern.MatchString(again.body) {
			t.Fatal("full key shown again after reload")
		}
		keys := userKeys(t, e, email)
		if keys[0].Label != "Zapier integration" {
			t.Fatalf("newest first: %q", keys[0].Label)
		}
	})
	t.Run("NeverAgainAnywhere", func(t *testing.T) {
		key, _ := createKeyHTMX(t, b, "secret-check")
		for _, path := range []string{"/account/api-keys", "/account/profile", "/account/coupons"} {
			for _, hx := range []string{"", "true"} {
				r := b.get(path, "HX-Request", hx)
				if strings.Contains(r.body, key) || strings.Contains(r.body, key[4:36]) {
					t.Fatalf("full key in %s (htmx=%q)", path, hx)
				}
			}
		}
		if strings.Contains(e.logs.String(), key[4:36]) {
			t.Fatal("key in the logs")
		}
		if e.dbContains(key[4:36]) {
			t.Fatal("key found in the database")
		}
	})
	t.Run("LabelEscaped", func(t *testing.T) {
		label := `<script>alert("x")</script>`
		createKeyHTMX(t, b, label)
		r := b.get("/account/api-keys")
		if strings.Contains(r.body, label) {
			t.Fatal("label rendered unescaped")
		}
		if r.doc(t).Find(`[data-testid="key-label-text"]:contains("<script>alert")`).Length() != 1 {
			t.Fatal("escaped label not shown as text")
		}
	})
	t.Run("UntitledWhenEmpty", func(t *testing.T) {
		createKeyHTMX(t, b, "   ")
		r := b.get("/account/api-keys")
		if r.doc(t).Find(`[data-testid="key-label-text"]:contains("Untitled key")`).Length() == 0 {
			t.Fatal("empty label not shown as Untitled key")
		}
	})
	t.Run("BadLabels", func(t *testing.T) {
		for name, label := range map[string]string{
			"TooLong":     strings.Repeat("é", 65),
			"Control":     "tab\there",
			"Newline":     "two\nlines",
			"NUL":         "nul\x00",
			"InvalidUTF8": "bad\xffbyte",
			// Text-direction controls: "‮evil‬ label" would show reversed.
			"RightToLeftOverride":  "\u202eevil\u202c label",
			"LeftToRightEmbedding": "a\u202ab",
			"Isolate":              "a\u2066b\u2069",
			"RightToLeftMark":      "a\u200fb",
			"ArabicLetterMark":     "a\u061cb",
		} {
			t.Run(name, func(t *testing.T) {
				before := len(userKeys(t, e, email))
				r := b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {label}})
				expectStatus(t, r, http.StatusUnprocessableEntity)
				msg := r.doc(t).Find(`[data-testid="create-key-error"]`).Text()
				if msg == "" {
					t.Fatal("no error message")
				}
				if strings.ContainsFunc(label, bidiControl) && !strings.Contains(msg, "text-direction") {
					t.Fatalf("message %q doesn't say why", msg)
				}
				if keyPattern.MatchString(r.body) {
					t.Fatal("a key was revealed")
				}
				plain := b.post("/account/api-keys", url.Values{"label": {label}})
				expectStatus(t, plain, http.StatusUnprocessableEntity)
				if !isFullPage(plain.body) {
					t.Fatal("plain post error is not a page")
				}
				if after := len(userKeys(t, e, email)); after != before {
					t.Fatalf("keys %d → %d", before, after)
				}
			})
		}
	})
	t.Run("LabelOf64IsFine", func(t *testing.T) {
		createKeyHTMX(t, b, strings.Repeat("ß", 64))
	})
}

func TestAPIKeyLimit(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	u, _ := e.store.UserByEmail(context.Background(), email)
	for range account.MaxAPIKeys {
		k, _ := apikey.Generate()
		if _, err := e.store.CreateAPIKey(context.Background(), account.NewAPIKey{UserID: u.ID, Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	page := b.get("/account/api-keys")
	if page.doc(t).Find(`[data-testid="key-limit"]`).Length() != 1 {
		t.Fatal("no limit notice")
	}
	r := b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {"51st"}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.doc(t).Find(`[data-testid="create-key-error"]`).Text(); !strings.Contains(msg, "limit of 50") {
		t.Fatalf("message %q", msg)
	}
	r = b.post("/account/api-keys", url.Values{"label": {"51st"}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if n := len(userKeys(t, e, email)); n != account.MaxAPIKeys {
		t.Fatalf("%d keys", n)
	}
}

func TestAPIKeyActions(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	_, id := createKeyHTMX(t, b, "Zapier integration")
	path := "/account/api-keys/" + strconv.Itoa(int(id))
	status := func() account.APIKey {
		for _, k := range userKeys(t, e, email) {
			if k.ID == id {
				return k
			}
		}
		t.Fatal("key gone")
		return account.APIKey{}
	}

	t.Run("DeactivateHTMX", func(t *testing.T) {
		r := b.htmx(http.MethodPost, path+"/deactivate", url.Values{})
		expectStatus(t, r, http.StatusOK)
		d := r.rowDoc(t)
		if isFullPage(r.body) || d.Find(`tr#key-`+strconv.Itoa(int(id))).Length() != 1 {
			t.Fatal("expected the row fragment")
		}
		if got := d.Find(`[data-testid="key-status"]`).Text(); got != "Inactive" {
			t.Fatalf("status badge %q", got)
		}
		if !strings.Contains(d.Find(`[hx-swap-oob] .toast`).Text(), "deactivated") {
			t.Fatal("no toast")
		}
		if status().Active {
			t.Fatal("still active")
		}
	})
	t.Run("ActivatePlain", func(t *testing.T) {
		r := b.post(path+"/activate", nil)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/api-keys" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		if !status().Active {
			t.Fatal("not active")
		}
		page := b.get("/account/api-keys")
		if !strings.Contains(page.doc(t).Find(`[data-testid="toast"]`).Text(), "activated") {
			t.Fatal("no flash after redirect")
		}
	})
	t.Run("DeactivatePlain", func(t *testing.T) {
		expectStatus(t, b.post(path+"/deactivate", nil), http.StatusSeeOther)
		if status().Active {
			t.Fatal("still active")
		}
		expectStatus(t, b.htmx(http.MethodPost, path+"/activate", url.Values{}), http.StatusOK)
		if !status().Active {
			t.Fatal("not reactivated")
		}
	})
	t.Run("RotateBadGrace", func(t *testing.T) {
		for _, g := range []string{"", "2h", "forever", "now "} {
			r := b.htmx(http.MethodPost, path+"/rotate", url.Values{"grace": {g}})
			expectStatus(t, r, http.StatusUnprocessableEntity)
			if !strings.Contains(r.body, "Choose how long") {
				t.Fatal("no message")
			}
		}
		if n := len(userKeys(t, e, email)); n != 1 {
			t.Fatalf("%d keys after refused rotations", n)
		}
	})
	t.Run("RotateHTMX", func(t *testing.T) {
		r := b.htmx(http.MethodPost, path+"/rotate", url.Values{"grace": {"24h"}})
		expectStatus(t, r, http.StatusOK)
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Fatal("rotation reveal cacheable")
		}
		d := r.doc(t)
		key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
		if !apikey.Valid(key) {
			t.Fatal("new key not revealed")
		}
		if got := d.Find(`tr#key-` + strconv.Itoa(int(id)) + ` [data-testid="key-status"]`).Text(); !strings.HasPrefix(got, "Retiring in") {
			t.Fatalf("old key status %q", got)
		}
		keys := userKeys(t, e, email)
		if len(keys) != 2 || keys[0].Label != "Zapier integration" || keys[0].Masked() != apikey.MaskKey(key) {
			t.Fatalf("keys after rotation %+v", keys)
		}
		again := b.htmx(http.MethodPost, path+"/rotate", url.Values{"grace": {"1h"}})
		expectStatus(t, again, http.StatusConflict)
		if !strings.Contains(again.body, "already rotated") {
			t.Fatal("no message for second rotation")
		}
	})
	t.Run("RotatePlainNow", func(t *testing.T) {
		_, id2 := createKeyHTMX(t, b, "plain rotate")
		r := b.post("/account/api-keys/"+strconv.Itoa(int(id2))+"/rotate", url.Values{"grace": {"now"}})
		expectStatus(t, r, http.StatusSeeOther)
		page := b.get("/account/api-keys")
		d := page.doc(t)
		key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
		if !apikey.Valid(key) {
			t.Fatal("rotated key not revealed after redirect")
		}
		if got := d.Find(`tr#key-` + strconv.Itoa(int(id2)) + ` [data-testid="key-status"]`).Text(); got != "Expired" {
			t.Fatalf("old key status %q", got)
		}
		expired := b.htmx(http.MethodPost, "/account/api-keys/"+strconv.Itoa(int(id2))+"/activate", url.Values{})
		expectStatus(t, expired, http.StatusConflict)
	})
	t.Run("DeleteConfirmPageWithoutJS", func(t *testing.T) {
		r := b.get(path + "/delete")
		expectStatus(t, r, http.StatusOK)
		if !strings.Contains(r.body, "will stop working immediately") {
			t.Fatal("no consequence stated")
		}
	})
	t.Run("DeleteHTMX", func(t *testing.T) {
		r := b.htmx(http.MethodDelete, path, nil)
		expectStatus(t, r, http.StatusOK)
		if strings.Contains(r.body, `<tr`) {
			t.Fatal("delete returned a row")
		}
		for _, k := range userKeys(t, e, email) {
			if k.ID == id {
				t.Fatal("key still stored")
			}
		}
		expectStatus(t, b.htmx(http.MethodDelete, path, nil), http.StatusNotFound)
	})
	t.Run("DeletePlainAndLastKeyShowsEmptyState", func(t *testing.T) {
		for _, k := range userKeys(t, e, email)[1:] {
			expectStatus(t, b.post("/account/api-keys/"+strconv.Itoa(int(k.ID))+"/delete", nil), http.StatusSeeOther)
		}
		last := userKeys(t, e, email)[0]
		r := b.htmx(http.MethodDelete, "/account/api-keys/"+strconv.Itoa(int(last.ID)), nil)
		expectStatus(t, r, http.StatusOK)
		if r.Header.Get("HX-Retarget") != "#api-keys-list" || !strings.Contains(r.body, "No API keys yet") {
			t.Fatalf("last delete: retarget %q", r.Header.Get("HX-Retarget"))
		}
		if n := len(userKeys(t, e, email)); n != 0 {
			t.Fatalf("%d keys left", n)
		}
	})
}

func TestAPIKeyOwnership(t *testing.T) {
	e := newTestEnv(t)
	alice, aliceEmail := e.signUp()
	_, id := createKeyHTMX(t, alice, "alice's")
	mallory, _ := e.signUp()
	base := "/account/api-keys/" + strconv.Itoa(int(id))
	for _, tc := range []struct {
		name string
		r    func() response
	}{
		{"Deactivate", func() response { return mallory.post(base+"/deactivate", nil) }},
		{"DeactivateHTMX", func() response { return mallory.htmx(http.MethodPost, base+"/deactivate", url.Values{}) }},
		{"Activate", func() response { return mallory.post(base+"/activate", nil) }},
		{"Rotate", func() response { return mallory.post(base+"/rotate", url.Values{"grace": {"now"}}) }},
		{"DeleteConfirm", func() response { return mallory.get(base + "/delete") }},
		{"Delete", func() response { return mallory.post(base+"/delete", nil) }},
		{"DeleteHTMX", func() response { return mallory.htmx(http.MethodDelete, base, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectStatus(t, tc.r(), http.StatusNotFound)
		})
	}
	keys := userKeys(t, e, aliceEmail)
	if len(keys) != 1 || !keys[0].Active || keys[0].Rotated() {
		t.Fatalf("alice's key changed: %+v", keys)
	}
	for _, bad := range []string{"abc", "0", "-1", "99999999999999999999"} {
		expectStatus(t, alice.post("/account/api-keys/"+bad+"/deactivate", nil), http.StatusNotFound)
	}
}

func TestCSRF(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	_, id := createKeyHTMX(t, b, "target")
	base := "/account/api-keys/" + strconv.Itoa(int(id))
	unchanged := func(t *testing.T) {
		t.Helper()
		keys := userKeys(t, e, email)
		if len(keys) != 1 || !keys[0].Active || keys[0].Rotated() {
			t.Fatalf("state changed: %+v", keys)
		}
	}
	t.Run("MissingToken", func(t *testing.T) {
		for _, path := range []string{"/account/api-keys", base + "/deactivate", base + "/rotate", base + "/delete", "/logout"} {
			r := b.post(path, url.Values{"_csrf": {""}, "grace": {"now"}, "label": {"x"}})
			expectStatus(t, r, http.StatusForbidden)
		}
		unchanged(t)
		expectStatus(t, b.get("/account/api-keys"), http.StatusOK) // logout was refused too
	})
	t.Run("WrongToken", func(t *testing.T) {
		r := b.post(base+"/deactivate", url.Values{"_csrf": {"forged"}})
		expectStatus(t, r, http.StatusForbidden)
		req, _ := http.NewRequest(http.MethodDelete, e.http.URL+base, nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", "forged")
		expectStatus(t, b.do(req), http.StatusForbidden)
		unchanged(t)
	})
	t.Run("TokenOfAnotherSession", func(t *testing.T) {
		other, _ := e.signUp()
		r := b.post(base+"/deactivate", url.Values{"_csrf": {other.csrf}})
		expectStatus(t, r, http.StatusForbidden)
		unchanged(t)
	})
	t.Run("CrossSite", func(t *testing.T) {
		r := b.post(base+"/deactivate", nil, "Sec-Fetch-Site", "cross-site")
		expectStatus(t, r, http.StatusForbidden)
		r = b.post(base+"/deactivate", nil, "Origin", "https://evil.example")
		expectStatus(t, r, http.StatusForbidden)
		r = b.post("/login", url.Values{"email": {email}, "password": {"x"}}, "Sec-Fetch-Site", "cross-site")
		expectStatus(t, r, http.StatusForbidden)
		unchanged(t)
	})
	t.Run("HTMXErrorIsToast", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+base+"/deactivate", nil)
		req.Header.Set("HX-Request", "true")
		r := b.do(req)
		expectStatus(t, r, http.StatusForbidden)
		if r.Header.Get("HX-Reswap") != "none" || !strings.Contains(r.body, "toast") {
			t.Fatal("htmx error is not a toast")
		}
		unchanged(t)
	})
	t.Run("SameOriginAllowed", func(t *testing.T) {
		r := b.post(base+"/deactivate", nil, "Sec-Fetch-Site", "same-origin", "Origin", e.http.URL)
		expectStatus(t, r, http.StatusSeeOther)
	})
}
