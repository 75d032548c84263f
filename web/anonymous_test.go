package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// sessionRows counts the rows of the sessions table.
func (e *testEnv) sessionRows() int64 {
	e.t.Helper()
	return e.db.Int(e.t, `SELECT count(*) FROM sessions`)
}

// Visitors who have not signed in write nothing to the database: the
// sign-in and sign-up forms get their CSRF token from a signed cookie, and
// a signed-out visitor's flash messages travel in it too.
func TestAnonymousVisitorsWriteNoSessions(t *testing.T) {
	e := newTestEnv(t)
	for range 200 {
		for _, path := range []string{"/login", "/signup", "/", "/account/api-keys", "/nowhere"} {
			// A new client each time: no cookie, as a crawler or attacker.
			e.browser().get(path)
		}
	}
	if n := e.sessionRows(); n != 0 {
		t.Fatalf("%d session rows after 1,000 anonymous requests", n)
	}

	// The forms still work and are still protected.
	b := e.browser()
	r := b.get("/signup")
	if b.csrf == "" {
		t.Fatal("the sign-up form has no CSRF token")
	}
	var cookie string
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			cookie = c
		}
	}
	if cookie == "" {
		t.Fatal("no cookie to bind the form's token to")
	}
	forged := e.browser()
	forged.get("/signup")
	r = forged.post("/signup", url.Values{"email": {uniqueEmail()}, "password": {"correct horse battery"}, "_csrf": {b.csrf}})
	expectStatus(t, r, http.StatusForbidden)
	r = b.post("/login", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password"}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if n := e.sessionRows(); n != 0 {
		t.Fatalf("%d session rows after a failed sign-in", n)
	}

	email := uniqueEmail()
	r = b.post("/signup", url.Values{"email": {email}, "password": {"correct horse battery"}})
	expectStatus(t, r, http.StatusSeeOther)
	if n := e.sessionRows(); n != 1 {
		t.Fatalf("%d session rows once signed in, want 1", n)
	}
	b.get("/account/api-keys")
	r = b.post("/logout", nil)
	expectStatus(t, r, http.StatusSeeOther)
	if n := e.sessionRows(); n != 0 {
		t.Fatalf("%d session rows after sign-out", n)
	}
	// The sign-out message travels in the cookie.
	r = b.get("/login")
	if !strings.Contains(r.body, "been signed out") {
		t.Fatal("the sign-out message was lost")
	}
	if n := e.sessionRows(); n != 0 {
		t.Fatalf("%d session rows after showing the sign-out message", n)
	}
	// And a replay of a signed-out cookie can't sign in anyone.
	r = b.get("/account/api-keys")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("signed-out cookie reached the account: %d", r.StatusCode)
	}
}

// A page left open while its session ended elsewhere takes the person to
// sign in, changing nothing, instead of answering with a CSRF error.
func TestEndedSessionGoesToSignIn(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	_, id := createKeyHTMX(t, b, "kept")
	key := strconv.FormatInt(id, 10)
	other := e.signIn(email, "correct horse battery")
	// Signing out in another tab of the same browser ends this session.
	tab := e.browser()
	tab.c.Jar = b.c.Jar
	tab.csrf = b.csrf
	tab.post("/logout", nil)

	r := b.htmx(http.MethodPost, "/account/api-keys/"+key+"/deactivate", nil)
	if r.StatusCode != http.StatusUnauthorized || r.Header.Get("HX-Redirect") != "/login" {
		t.Fatalf("htmx action of an ended session: %d, HX-Redirect %q", r.StatusCode, r.Header.Get("HX-Redirect"))
	}
	r = b.post("/account/api-keys/"+key+"/deactivate", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("form post of an ended session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := b.get("/login"); !strings.Contains(r.body, "Sign in to continue") {
		t.Fatal("the sign-in page doesn't say the session ended")
	}
	page := other.get("/account/api-keys")
	if got := page.doc(t).Find(`#key-` + key + ` [data-testid="key-status"]`).Text(); got != "Active" {
		t.Fatalf("the key of an ended session's request changed: %q", got)
	}

	// A session ended by a password change on another device says so.
	laptop := e.signIn(email, "correct horse battery")
	r = other.post("/account/password", url.Values{"current_password": {"correct horse battery"}, "new_password": {"another long passphrase"}})
	expectStatus(t, r, http.StatusSeeOther)
	r = laptop.htmx(http.MethodPost, "/account/api-keys/"+key+"/deactivate", nil)
	if r.StatusCode != http.StatusUnauthorized || r.Header.Get("HX-Redirect") != "/login" {
		t.Fatalf("htmx action of a revoked session: %d, HX-Redirect %q", r.StatusCode, r.Header.Get("HX-Redirect"))
	}
	laptop2 := e.signIn(email, "another long passphrase")
	other.post("/account/password", url.Values{"current_password": {"another long passphrase"}, "new_password": {"a third long passphrase"}})
	if r := laptop2.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoked session still reaches the account: %d", r.StatusCode)
	}
	if r := laptop2.get("/login"); !strings.Contains(r.body, "Your session ended") {
		t.Fatal("the sign-in page doesn't say the session ended")
	}
}
