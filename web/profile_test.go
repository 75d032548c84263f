package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

const testPassword = "correct horse battery" // what signUp uses

func userOf(t *testing.T, e *testEnv, email string) account.User {
	t.Helper()
	u, err := e.store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// signIn opens another session for an existing account, as a second device would.
func (e *testEnv) signIn(email, password string) *browser {
	e.t.Helper()
	b := e.browser()
	b.get("/login")
	r := b.post("/login", url.Values{"email": {email}, "password": {password}})
	if r.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in: %d\n%.1000s", r.StatusCode, r.body)
	}
	b.get("/account/profile")
	return b
}

// signInToken is a valid CSRF token of another session.
func (e *testEnv) signInToken(t *testing.T) string {
	t.Helper()
	other, _ := e.signUp()
	return other.csrf
}

func signedIn(b *browser) bool {
	b.t.Helper()
	return b.get("/account/profile").StatusCode == http.StatusOK
}

func TestProfilePage(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	createKeyHTMX(t, b, "one")
	_, second := createKeyHTMX(t, b, "two")
	createKeyHTMX(t, b, "three")
	expectStatus(t, b.htmx(http.MethodPost, "/account/api-keys/"+strconv.Itoa(int(second))+"/deactivate", url.Values{}), http.StatusOK)
	u := userOf(t, e, email)

	t.Run("FullPage", func(t *testing.T) {
		r := b.get("/account/profile")
		expectStatus(t, r, http.StatusOK)
		if !isFullPage(r.body) {
			t.Fatal("direct load is not a full page")
		}
		d := r.doc(t)
		for testid, want := range map[string]string{
			"profile-email":        email,
			"profile-name":         "Test",
			"profile-credits":      "100",
			"profile-active-keys":  "2",
			"profile-member-since": u.CreatedAt.UTC().Format("2 January 2006"),
		} {
			if got := strings.TrimSpace(d.Find(`[data-testid="` + testid + `"]`).Text()); got != want {
				t.Errorf("%s = %q, want %q", testid, got, want)
			}
		}
		if cur, _ := d.Find(`#account-tabs a[aria-current="page"]`).Attr("href"); cur != "/account/profile" {
			t.Fatalf("active tab %q", cur)
		}
		for _, form := range []string{"name-form", "password-form", "delete-account-form"} {
			f := d.Find(`form[data-testid="` + form + `"]`)
			if tok, _ := f.Find(`input[name="_csrf"]`).Attr("value"); tok == "" || tok != b.csrf {
				t.Fatalf("%s has no CSRF token", form)
			}
			if f.AttrOr("method", "") != "post" || f.AttrOr("hx-post", "") != f.AttrOr("action", "") {
				t.Fatalf("%s: method %q, action %q, hx-post %q", form, f.AttrOr("method", ""), f.AttrOr("action", ""), f.AttrOr("hx-post", ""))
			}
		}
		for _, in := range d.Find(`#profile-panel input:not([type="hidden"])`).EachIter() {
			id := in.AttrOr("id", "")
			if id == "" || d.Find(`label[for="`+id+`"]`).Length() != 1 {
				t.Fatalf("input %q has no label", in.AttrOr("name", ""))
			}
		}
		if d.Find(`.danger-zone form[data-testid="delete-account-form"]`).Length() != 1 {
			t.Fatal("account deletion is not in a separate danger zone")
		}
	})
	t.Run("HTMXPartial", func(t *testing.T) {
		r := b.get("/account/profile", "HX-Request", "true")
		expectStatus(t, r, http.StatusOK)
		if isFullPage(r.body) || r.doc(t).Find(`#profile-panel`).Length() != 1 {
			t.Fatal("htmx tab load is not the panel")
		}
	})
}

func TestUpdateName(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()

	t.Run("HTMX", func(t *testing.T) {
		r := b.htmx(http.MethodPost, "/account/profile", url.Values{"name": {"  Ada Lovelace  "}})
		expectStatus(t, r, http.StatusOK)
		if isFullPage(r.body) {
			t.Fatal("htmx answered with a full page")
		}
		d := r.doc(t)
		if got := strings.TrimSpace(d.Find(`#profile-panel [data-testid="profile-name"]`).Text()); got != "Ada Lovelace" {
			t.Fatalf("panel shows name %q", got)
		}
		if !strings.Contains(d.Find(`[hx-swap-oob] .toast`).Text(), "Ada Lovelace") {
			t.Fatal("no toast")
		}
		if got := userOf(t, e, email).Name; got != "Ada Lovelace" {
			t.Fatalf("stored name %q", got)
		}
	})
	t.Run("PlainPostRedirects", func(t *testing.T) {
		r := b.post("/account/profile", url.Values{"name": {"Grace"}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/profile" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		page := b.get("/account/profile").doc(t)
		if !strings.Contains(page.Find(`[data-testid="toast"]`).Text(), "Grace") {
			t.Fatal("no flash after the redirect")
		}
		if got := strings.TrimSpace(page.Find(`[data-testid="profile-name"]`).Text()); got != "Grace" {
			t.Fatalf("name %q", got)
		}
	})
	t.Run("Unchanged", func(t *testing.T) {
		r := b.htmx(http.MethodPost, "/account/profile", url.Values{"name": {"Grace "}})
		expectStatus(t, r, http.StatusOK)
		if !strings.Contains(r.body, "unchanged") {
			t.Fatal("no message for an unchanged name")
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, tc := range []struct{ name, value, msg string }{
			{"TooLong", strings.Repeat("n", maxNameLen+1), "at most 100 characters"},
			{"ControlCharacter", "Ada\x07", "control characters"},
			{"LineBreak", "Ada\nLovelace", "control characters"},
			{"InvalidUTF8", "Ada\xff", "valid text"},
			{"RightToLeftOverride", "\u202eecarG", "text-direction"},
			{"PopDirectionalIsolate", "Grace\u2069", "text-direction"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				refusedBothWays(t, b, "/account/profile", url.Values{"name": {tc.value}}, func(htmx bool, r response) {
					d := r.doc(t)
					if msg := d.Find(`[data-testid="error-name"]`).Text(); !strings.Contains(msg, tc.msg) {
						t.Fatalf("htmx=%v: message %q, want %q", htmx, msg, tc.msg)
					}
					if d.Find(`#f-name[aria-invalid="true"]`).Length() != 1 {
						t.Fatal("input not marked invalid")
					}
				})
				if got := userOf(t, e, email).Name; got != "Grace" {
					t.Fatalf("a refused name changed the stored one to %q", got)
				}
			})
		}
	})
	t.Run("Empty", func(t *testing.T) {
		expectStatus(t, b.post("/account/profile", url.Values{"name": {"   "}}), http.StatusSeeOther)
		if got := userOf(t, e, email).Name; got != "" {
			t.Fatalf("name %q", got)
		}
		if got := strings.TrimSpace(b.get("/account/profile").doc(t).Find(`[data-testid="profile-name"]`).Text()); got != "Not set" {
			t.Fatalf("empty name shows %q", got)
		}
	})
}

func TestChangePassword(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	hashBefore := userOf(t, e, email).PasswordHash

	unchanged := func(t *testing.T) {
		t.Helper()
		if userOf(t, e, email).PasswordHash != hashBefore {
			t.Fatal("password changed")
		}
	}
	t.Run("Refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, current, next, field, msg string
		}{
			{"NoCurrent", "", "a new long password", "current_password", "Enter your current password."},
			{"WrongCurrent", "not my password", "a new long password", "current_password", "incorrect"},
			{"ShortNew", testPassword, "short", "new_password", "at least 8"},
			{"EmptyNew", testPassword, "", "new_password", "Choose a password."},
			{"SameAsCurrent", testPassword, testPassword, "new_password", "different"},
			{"NULInNew", testPassword, "long enough\x00", "new_password", "NUL"},
			{"InvalidUTF8New", testPassword, "long enough\xff", "new_password", "valid text"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				form := url.Values{"current_password": {tc.current}, "new_password": {tc.next}}
				refusedBothWays(t, b, "/account/password", form, func(htmx bool, r response) {
					if msg := r.doc(t).Find(`[data-testid="error-` + tc.field + `"]`).Text(); !strings.Contains(msg, tc.msg) {
						t.Fatalf("htmx=%v: %s error %q, want %q", htmx, tc.field, msg, tc.msg)
					}
					if tc.current != "" && strings.Contains(r.body, tc.current) || tc.next != "" && strings.Contains(r.body, tc.next) {
						t.Fatal("a password was echoed into the page")
					}
				})
				unchanged(t)
			})
		}
		// The guesses above count against the sign-in throttle; start afresh.
		e.clock.Add(16 * time.Minute)
	})

	t.Run("EndsOtherSessionsKeepsThisOne", func(t *testing.T) {
		phone := e.signIn(email, testPassword)
		laptop := e.signIn(email, testPassword)
		u, _ := url.Parse(e.http.URL)
		phoneCookies := phone.c.Jar.Cookies(u)
		thisCookie := cookieValue(b, e)

		r := b.htmx(http.MethodPost, "/account/password", url.Values{"current_password": {testPassword}, "new_password": {"a brand new passphrase"}})
		expectStatus(t, r, http.StatusOK)
		d := r.doc(t)
		if d.Find(`#profile-panel`).Length() != 1 || !strings.Contains(d.Find(`[hx-swap-oob] .toast`).Text(), "Password changed") {
			t.Fatalf("no panel or toast:\n%.1500s", r.body)
		}
		if strings.Contains(r.body, "a brand new passphrase") {
			t.Fatal("new password echoed")
		}
		if !signedIn(b) || cookieValue(b, e) != thisCookie {
			t.Fatal("the session that changed the password ended or changed")
		}
		if signedIn(phone) || signedIn(laptop) {
			t.Fatal("another session survived the password change")
		}
		replay := e.browser()
		replay.c.Jar.SetCookies(u, phoneCookies)
		if signedIn(replay) {
			t.Fatal("a replayed cookie of an ended session was accepted")
		}
		if n, _ := e.store.UserSessionCount(context.Background(), userOf(t, e, email).ID); n != 1 {
			t.Fatalf("%d sessions left, want 1", n)
		}
		// The CSRF token of the page still works: the session is the same.
		expectStatus(t, b.post("/account/profile", url.Values{"name": {"Still me"}}), http.StatusSeeOther)
	})
	t.Run("NewPasswordSignsIn", func(t *testing.T) {
		old := e.browser()
		old.get("/login")
		expectStatus(t, old.post("/login", url.Values{"email": {email}, "password": {testPassword}}), http.StatusUnprocessableEntity)
		e.signIn(email, "a brand new passphrase")
	})
	t.Run("PlainPostRedirects", func(t *testing.T) {
		other := e.signIn(email, "a brand new passphrase")
		r := b.post("/account/password", url.Values{"current_password": {"a brand new passphrase"}, "new_password": {testPassword}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/profile" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		if !strings.Contains(b.get("/account/profile").doc(t).Find(`[data-testid="toast"]`).Text(), "Password changed") {
			t.Fatal("no flash")
		}
		if signedIn(other) {
			t.Fatal("other session survived")
		}
	})
}

// TestPasswordGuessesThrottled: a hijacked session can't be used to guess
// the password faster than the sign-in form allows.
func TestPasswordGuessesThrottled(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	for range 10 {
		r := b.post("/account/password", url.Values{"current_password": {"guess guess"}, "new_password": {"another password"}})
		expectStatus(t, r, http.StatusUnprocessableEntity)
	}
	for _, path := range []string{"/account/password", "/account/delete"} {
		r := b.post(path, url.Values{"current_password": {testPassword}, "password": {testPassword}, "new_password": {"another password"}})
		expectStatus(t, r, http.StatusTooManyRequests)
		if r.Header.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many wrong passwords") {
			t.Fatalf("%s: no Retry-After or message", path)
		}
	}
	if _, err := e.store.UserByEmail(context.Background(), email); err != nil {
		t.Fatal("the account was deleted while throttled")
	}
	// Sign-in shares the count.
	other := e.browser()
	other.get("/login")
	expectStatus(t, other.post("/login", url.Values{"email": {email}, "password": {testPassword}}), http.StatusTooManyRequests)
}

func TestDeleteAccount(t *testing.T) {
	e := newTestEnv(t)

	t.Run("Refused", func(t *testing.T) {
		b, email := e.signUp()
		key, _ := createKeyHTMX(t, b, "prod")
		for _, tc := range []struct{ name, password, msg string }{
			{"NoPassword", "", "Enter your password"},
			{"WrongPassword", "not my password", "incorrect"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				refusedBothWays(t, b, "/account/delete", url.Values{"password": {tc.password}}, func(htmx bool, r response) {
					msg := r.doc(t).Find(`[data-testid="error-delete"]`).Text()
					if !strings.Contains(msg, tc.msg) || !strings.Contains(msg, "not deleted") {
						t.Fatalf("message %q", msg)
					}
					if r.Header.Get("HX-Redirect") != "" {
						t.Fatal("refusal redirects")
					}
				})
				if _, err := e.store.UserByEmail(context.Background(), email); err != nil {
					t.Fatal("account deleted")
				}
				if _, err := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); err != nil {
					t.Fatal("key deleted")
				}
				if !signedIn(b) {
					t.Fatal("signed out")
				}
			})
		}
	})

	// deleted checks that the account, its keys and every session are gone.
	deleted := func(t *testing.T, email, key string, sessions ...*browser) {
		t.Helper()
		if _, err := e.store.UserByEmail(context.Background(), email); err == nil {
			t.Fatal("account still stored")
		}
		if _, err := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); err == nil {
			t.Fatal("key still stored")
		}
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v1/me", nil)
		req.Header.Set("x-api-key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the deleted account's key got %d from the API, want 401", res.StatusCode)
		}
		for i, s := range sessions {
			if signedIn(s) {
				t.Fatalf("session %d survived the account", i)
			}
		}
	}
	apiAccepts := func(t *testing.T, key string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v1/me", nil)
		req.Header.Set("x-api-key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("key refused before deletion: %d", res.StatusCode)
		}
	}

	t.Run("PlainPost", func(t *testing.T) {
		b, email := e.signUp()
		key, _ := createKeyHTMX(t, b, "prod")
		apiAccepts(t, key)
		other := e.signIn(email, testPassword)
		u, _ := url.Parse(e.http.URL)
		oldCookies := b.c.Jar.Cookies(u)

		r := b.post("/account/delete", url.Values{"password": {testPassword}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signup" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		page := b.get("/signup")
		expectStatus(t, page, http.StatusOK)
		if !strings.Contains(page.doc(t).Find(`[data-testid="toast"]`).Text(), "Your account was deleted") {
			t.Fatal("no message after deletion")
		}
		replay := e.browser()
		replay.c.Jar.SetCookies(u, oldCookies)
		deleted(t, email, key, b, other, replay)
		// The email is free again.
		nb := e.browser()
		nb.get("/signup")
		expectStatus(t, nb.post("/signup", url.Values{"email": {email}, "password": {testPassword}}), http.StatusSeeOther)
	})
	t.Run("HTMX", func(t *testing.T) {
		b, email := e.signUp()
		key, _ := createKeyHTMX(t, b, "prod")
		apiAccepts(t, key)
		r := b.htmx(http.MethodPost, "/account/delete", url.Values{"password": {testPassword}})
		expectStatus(t, r, http.StatusOK)
		if r.Header.Get("HX-Redirect") != "/signup" {
			t.Fatalf("HX-Redirect %q", r.Header.Get("HX-Redirect"))
		}
		if !strings.Contains(b.get("/signup").doc(t).Find(`[data-testid="toast"]`).Text(), "Your account was deleted") {
			t.Fatal("no message after deletion")
		}
		deleted(t, email, key, b)
	})
	t.Run("LedgerStaysBalanced", func(t *testing.T) {
		if bad, err := e.store.LedgerMismatches(context.Background()); err != nil || len(bad) > 0 {
			t.Fatalf("%v %v", bad, err)
		}
	})
}

// TestAccountCSRF: none of the Profile and Redeem Coupon actions happens
// without the session's token, or from another site.
func TestAccountCSRF(t *testing.T) {
	e := newTestEnv(t)
	e.coupon(account.NewCoupon{Code: "ANY", Credits: 10})
	b, email := e.signUp()
	before := userOf(t, e, email)
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/account/profile", url.Values{"name": {"Mallory"}}},
		{"/account/password", url.Values{"current_password": {testPassword}, "new_password": {"owned by mallory"}}},
		{"/account/delete", url.Values{"password": {testPassword}}},
		{"/account/coupons/redeem", url.Values{"code": {"ANY"}}},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/account/"), func(t *testing.T) {
			for _, token := range []string{"", "forged", e.signInToken(t)} {
				form := url.Values{"_csrf": {token}}
				for k, v := range tc.form {
					form[k] = v
				}
				expectStatus(t, b.post(tc.path, form), http.StatusForbidden)
			}
			// The htmx header with a wrong token, and a cross-site request
			// with the right one.
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+tc.path, strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("HX-Request", "true")
			req.Header.Set("X-CSRF-Token", "forged")
			expectStatus(t, b.do(req), http.StatusForbidden)
			expectStatus(t, b.post(tc.path, tc.form, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
			expectStatus(t, b.post(tc.path, tc.form, "Origin", "https://evil.example"), http.StatusForbidden)
		})
	}
	after := userOf(t, e, email)
	if after.Name != before.Name || after.PasswordHash != before.PasswordHash || after.Credits != before.Credits {
		t.Fatalf("a refused request changed the account: %+v → %+v", before, after)
	}
	if !signedIn(b) {
		t.Fatal("signed out")
	}
}

// TestAccountDeletedMidRequest: requests racing an account deletion (a
// double-clicked Delete, other tabs redeeming or renaming) end in a
// redirect or a message, never in a server error, with or without htmx:
// saving a session that was ended meanwhile starts a signed-out one.
func TestAccountDeletedMidRequest(t *testing.T) {
	e := newTestEnv(t)
	e.coupon(account.NewCoupon{Code: "RACE", Credits: 5})
	for round := range 5 {
		b, email := e.signUp()
		var wg sync.WaitGroup
		statuses := make(chan int, 16)
		send := func(path string, form url.Values, htmx bool) {
			form.Set("_csrf", b.csrf)
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if htmx {
				req.Header.Set("HX-Request", "true")
			}
			res, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}
		for i := range 4 {
			htmx := i%2 == 1
			wg.Go(func() { send("/account/delete", url.Values{"password": {testPassword}}, htmx) })
			wg.Go(func() { send("/account/coupons/redeem", url.Values{"code": {"race"}}, true) })
			wg.Go(func() { send("/account/profile", url.Values{"name": {"Racer"}}, htmx) })
			wg.Go(func() { send("/account/coupons/redeem", url.Values{"code": {"race"}}, !htmx) })
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s >= 500 {
				t.Fatalf("round %d: a request racing the deletion got %d\n%s", round, s, e.logs.String()[max(0, len(e.logs.String())-3000):])
			}
		}
		if _, err := e.store.UserByEmail(context.Background(), email); err == nil {
			t.Fatalf("round %d: account not deleted", round)
		}
	}
	if bad, err := e.store.LedgerMismatches(context.Background()); err != nil || len(bad) > 0 {
		t.Fatalf("ledger %v %v", bad, err)
	}
}
