package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/peekshot/peekshot/apikey"
)

// secretLedger remembers every secret a flow handled and every response
// it got, so the test can look for the secrets where they must not be.
type secretLedger struct {
	t         *testing.T
	e         *testEnv
	keys      []string // full API keys
	passwords []string // every password typed, right or wrong
	cookies   []string // session cookie values, and the session ids inside them
	tokens    []string // CSRF tokens
	responses []seenResponse
}

type seenResponse struct {
	what string
	r    response
	// reveals is the key this response exists to show once, if any.
	reveals string
	// session is the CSRF token of the session that made the request.
	session string
}

// see records a response: its cookies and CSRF token become secrets too.
func (l *secretLedger) see(what string, b *browser, r response, reveals string) response {
	l.t.Helper()
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name != sessionCookie || c.Value == "" {
			continue
		}
		l.cookies = append(l.cookies, c.Value)
		var raw []byte
		if err := l.e.srv.sessions.codec.Decode(sessionCookie, c.Value, &raw); err != nil {
			l.t.Fatalf("%s: session cookie does not decode: %v", what, err)
		}
		l.cookies = append(l.cookies, string(raw))
	}
	if tok := pageCSRF(r.body); tok != "" {
		l.tokens = append(l.tokens, tok)
	}
	session := ""
	if b != nil {
		session = b.csrf
	}
	l.responses = append(l.responses, seenResponse{what: what, r: r, reveals: reveals, session: session})
	return r
}

// keyParts are the strings that would leak a key: the whole key and its 32
// random characters (the checksum alone is public in the masked form).
func keyParts(key string) []string { return []string{key, key[4:36]} }

// TestSecretsStayOutOfLogsPagesAndDatabase runs the whole dashboard and API
// flow (sign-up, failed and good sign-ins, keys created, revealed, rotated,
// used, misused and deleted, password changes, CSRF failures) with the
// server's log captured, then looks for every secret it handled: no full
// key (nor its random part), password, session cookie or session id, or
// CSRF token appears in any log line; no key, password or cookie appears in
// any error body or in any page but the one reveal made for it; and the
// database files hold none of them.
func TestSecretsStayOutOfLogsPagesAndDatabase(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}))
	l := &secretLedger{t: t, e: e}
	b := e.browser()
	const pw1, pw2 = "first correct horse battery", "second correct horse battery"
	wrong := []string{"wrong horse battery staple", "another wrong guess 12345", "third wrong password here"}
	l.passwords = append(l.passwords, pw1, pw2)
	l.passwords = append(l.passwords, wrong...)
	email := uniqueEmail()

	l.see("sign-up form", b, b.get("/signup"), "")
	l.see("sign-up", b, b.post("/signup", url.Values{"email": {email}, "password": {pw1}, "name": {"Secret keeper"}}), "")
	l.see("API Keys", b, b.get("/account/api-keys"), "")
	l.see("sign out", b, b.post("/logout", nil), "")
	l.see("sign-in form", b, b.get("/login"), "")
	l.see("wrong password", b, b.post("/login", url.Values{"email": {email}, "password": {wrong[0]}}), "")
	l.see("sign in", b, b.post("/login", url.Values{"email": {email}, "password": {pw1}}), "")
	l.see("API Keys", b, b.get("/account/api-keys"), "")

	// Keys: created and rotated, with htmx (revealed in the response) and
	// without (revealed on the page after the redirect).
	reveal := func(what string, r response) string {
		t.Helper()
		key := keyPattern.FindString(r.body)
		if !apikey.Valid(key) {
			t.Fatalf("%s: no key revealed\n%.1000s", what, r.body)
		}
		l.keys = append(l.keys, key)
		l.responses[len(l.responses)-1].reveals = key
		return key
	}
	k1 := reveal("create (htmx)", l.see("create (htmx)", b, b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {"htmx key"}}), ""))
	id1, _ := l.responses[len(l.responses)-1].r.doc(t).Find(`tr.row-new`).Attr("data-key-id")
	l.see("create (form)", b, b.post("/account/api-keys", url.Values{"label": {"form key"}}), "")
	k2 := reveal("create (form) reveal", l.see("create (form) reveal", b, b.get("/account/api-keys"), ""))
	id2 := fmt.Sprint(userKeys(t, e, email)[0].ID)
	k3 := reveal("rotate (htmx)", l.see("rotate (htmx)", b, b.htmx(http.MethodPost, "/account/api-keys/"+id1+"/rotate", url.Values{"grace": {"1h"}}), ""))
	l.see("rotate (form)", b, b.post("/account/api-keys/"+id2+"/rotate", url.Values{"grace": {"now"}}), "")
	k4 := reveal("rotate (form) reveal", l.see("rotate (form) reveal", b, b.get("/account/api-keys"), ""))
	_ = k2

	// Pages after the reveals: none may show a key again.
	l.see("API Keys again", b, b.get("/account/api-keys"), "")
	l.see("history restore", b, b.get("/account/api-keys", "HX-Request", "true", "HX-History-Restore-Request", "true"), "")
	l.see("htmx tab", b, b.get("/account/api-keys", "HX-Request", "true"), "")
	l.see("Profile", b, b.get("/account/profile"), "")
	l.see("Coupons", b, b.get("/account/coupons"), "")

	// The API, used and misused.
	api := func(what, method, path, key, body string, headers ...string) {
		l.see(what, nil, e.apiCall(method, path, key, body, headers...), "")
	}
	api("me", "GET", "/api/v1/me", k1, "")
	api("me with the rotated key", "GET", "/api/v1/me", k3, "")
	api("render", "POST", "/api/v1/html-to-image", k3, `{"html": "<p>hi</p>"}`)
	api("render with the replaced key", "POST", "/api/v1/html-to-image", k2, `{"html": "<p>hi</p>"}`)
	tampered := k3[:10] + string(rune(k3[10]^1)) + k3[11:]
	l.keys = append(l.keys, tampered)
	api("tampered key", "GET", "/api/v1/me", tampered, "")
	api("key in the query", "GET", "/api/v1/me?api_key="+url.QueryEscape(k4), "", "")
	api("key as a Bearer token", "GET", "/api/v1/me", "", "", "Authorization", "Bearer "+k4)
	api("key as a JSON field name", "POST", "/api/v1/html-to-image", k4, `{"html": "x", "`+k4+`": 1}`)
	api("key in a bad JSON value", "POST", "/api/v1/screenshots", k4, `{"url": "`+k4+`\ud800"}`)
	api("key as the URL", "POST", "/api/v1/screenshots", k4, `{"url": "`+k4+`"}`)
	api("key in a huge field", "POST", "/api/v1/html-to-image", k4, `{"html": "x", "width": "`+k4+`"}`)
	l.see("deactivate", b, b.htmx(http.MethodPost, "/account/api-keys/"+id1+"/deactivate", nil), "")
	api("deactivated key", "GET", "/api/v1/me", k1, "")

	// CSRF failures, with a forged token and another session's.
	other, _ := e.signUp()
	l.tokens = append(l.tokens, other.csrf)
	l.see("foreign CSRF token", b, b.post("/account/profile", url.Values{"_csrf": {other.csrf}, "name": {"x"}}), "")
	l.see("foreign CSRF header", b, func() response {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/account/profile", strings.NewReader("name=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", other.csrf)
		return b.do(req)
	}(), "")

	// Passwords: wrong ones for sensitive actions, then a change.
	l.see("wrong current password", b, b.post("/account/password", url.Values{"current_password": {wrong[1]}, "new_password": {pw2}}), "")
	l.see("wrong password to delete", b, b.post("/account/delete", url.Values{"password": {wrong[2]}}), "")
	l.see("change password", b, b.post("/account/password", url.Values{"current_password": {pw1}, "new_password": {pw2}}), "")
	l.see("Profile after", b, b.get("/account/profile"), "")
	l.see("delete a key", b, b.htmx(http.MethodDelete, "/account/api-keys/"+id1, nil), "")
	l.see("sign out", b, b.post("/logout", nil), "")
	l.see("sign in with the new password", b, b.post("/login", url.Values{"email": {email}, "password": {pw2}}), "")
	l.see("back in", b, b.get("/account/api-keys"), "")
	if err := e.srv.Close(t.Context()); err != nil { // flush key usage, as a shutdown does
		t.Fatal(err)
	}

	if len(l.keys) < 5 || len(l.cookies) < 4 || len(l.tokens) < 3 {
		t.Fatalf("the flow handled too few secrets to prove anything: %d keys, %d cookies, %d tokens", len(l.keys), len(l.cookies), len(l.tokens))
	}
	secrets := map[string][]string{"password": l.passwords, "session cookie": l.cookies, "CSRF token": l.tokens}
	for _, k := range l.keys {
		secrets["API key"] = append(secrets["API key"], keyParts(k)...)
	}

	t.Run("Logs", func(t *testing.T) {
		logs := e.logs.String()
		if strings.Count(logs, "\n") < len(l.responses) {
			t.Fatalf("only %d log lines for %d requests", strings.Count(logs, "\n"), len(l.responses))
		}
		for kind, list := range secrets {
			for _, s := range list {
				if strings.Contains(logs, s) {
					t.Errorf("a %s is in the log: …%s…", kind, around(logs, s))
				}
			}
		}
	})
	t.Run("Responses", func(t *testing.T) {
		for _, seen := range l.responses {
			body := seen.r.body
			for _, k := range l.keys {
				for _, part := range keyParts(k) {
					if k != seen.reveals && strings.Contains(body, part) {
						t.Errorf("%s (%d) shows a key it was not made to reveal", seen.what, seen.r.StatusCode)
					}
				}
			}
			for kind, list := range map[string][]string{"password": l.passwords, "session cookie": l.cookies} {
				for _, s := range list {
					if strings.Contains(body, s) {
						t.Errorf("%s (%d) contains a %s", seen.what, seen.r.StatusCode, kind)
					}
				}
			}
			// A CSRF token belongs in its own session's pages only, and
			// never in an error that refused it or in an API answer.
			for _, tok := range l.tokens {
				if !strings.Contains(body, tok) {
					continue
				}
				if seen.session == "" || tok != seen.session && seen.r.StatusCode >= 400 || tok == other.csrf {
					t.Errorf("%s (%d) contains a CSRF token that is not its session's", seen.what, seen.r.StatusCode)
				}
			}
		}
	})
	t.Run("Database", func(t *testing.T) {
		for kind, list := range secrets {
			for _, s := range list {
				if e.dbContains(s) {
					t.Errorf("a %s is in the database", kind)
				}
			}
		}
		// The test would notice a key if one were there: the email is.
		if !e.dbContains(email) {
			t.Fatal("the scan found not even the account's email; it reads the wrong data")
		}
	})
}

// around shows where a secret sits in the log, with the secret masked.
func around(s, secret string) string {
	i := strings.Index(s, secret)
	from, to := max(i-60, 0), min(i+len(secret)+20, len(s))
	return strings.ReplaceAll(s[from:to], secret, "<SECRET>")
}
