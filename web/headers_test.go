package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
)

// parseCSP splits a Content-Security-Policy into its directives.
func parseCSP(policy string) map[string][]string {
	out := map[string][]string{}
	for part := range strings.SplitSeq(policy, ";") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			continue
		}
		out[strings.ToLower(fields[0])] = fields[1:]
	}
	return out
}

// checkSecurityHeaders asserts SPEC §5's headers on one response.
func checkSecurityHeaders(t *testing.T, name string, r response) {
	t.Helper()
	h := r.Header
	csp := parseCSP(h.Get("Content-Security-Policy"))
	script, ok := csp["script-src"]
	if !ok {
		script = csp["default-src"]
	}
	if len(script) == 0 {
		t.Errorf("%s: CSP without a script source list: %q", name, h.Get("Content-Security-Policy"))
	}
	for directive, sources := range csp {
		for _, src := range sources {
			switch strings.ToLower(src) {
			case "'unsafe-eval'", "'wasm-unsafe-eval'", "'unsafe-hashes'", "*", "data:", "blob:", "http:", "https:":
				if directive == "img-src" && src == "data:" {
					continue // icons as data: URLs are images, not code
				}
				t.Errorf("%s: CSP %s allows %s", name, directive, src)
			case "'unsafe-inline'":
				t.Errorf("%s: CSP %s allows inline code", name, directive)
			}
		}
	}
	for directive, want := range map[string]string{
		"object-src": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'", "default-src": "'none'",
	} {
		if got := strings.Join(csp[directive], " "); got != want {
			t.Errorf("%s: CSP %s is %q, want %q", name, directive, got, want)
		}
	}
	if got := strings.Join(csp["style-src"], " "); got != "'self'" {
		t.Errorf("%s: CSP style-src %q, want 'self' only", name, got)
	}
	for header, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "strict-origin-when-cross-origin",
		"X-Frame-Options":        "DENY",
	} {
		if got := h.Get(header); got != want {
			t.Errorf("%s: %s is %q, want %q", name, header, got, want)
		}
	}
}

// checkNoInlineCode asserts that an HTML response runs nothing the CSP
// would have to allow: scripts only from /static/, no inline event
// handlers or htmx hx-on handlers (which need eval), no javascript: URLs,
// no style attributes or <style> elements.
func checkNoInlineCode(t *testing.T, name string, r response) {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	d.Find("script").Each(func(_ int, s *goquery.Selection) {
		src, ok := s.Attr("src")
		if !ok || !strings.HasPrefix(src, "/static/") {
			t.Errorf("%s: script not from /static/: %s", name, goquery.NodeName(s)+" src="+src)
		}
		if strings.TrimSpace(s.Text()) != "" {
			t.Errorf("%s: inline script %.80q", name, s.Text())
		}
	})
	if n := d.Find("style").Length(); n > 0 {
		t.Errorf("%s: %d inline <style> elements", name, n)
	}
	d.Find("*").Each(func(_ int, s *goquery.Selection) {
		for _, a := range s.Nodes[0].Attr {
			key := strings.ToLower(a.Key)
			val := strings.ToLower(strings.TrimSpace(a.Val))
			switch {
			case strings.HasPrefix(key, "on"), strings.HasPrefix(key, "hx-on"), strings.HasPrefix(key, "data-hx-on"):
				t.Errorf("%s: inline handler <%s %s=%q>", name, goquery.NodeName(s), a.Key, a.Val)
			case key == "style":
				t.Errorf("%s: style attribute on <%s>: %q", name, goquery.NodeName(s), a.Val)
			case (key == "href" || key == "src" || key == "action" || key == "formaction") && strings.HasPrefix(val, "javascript:"):
				t.Errorf("%s: javascript: URL in <%s %s>", name, goquery.NodeName(s), a.Key)
			}
		}
	})
	d.Find(`link[rel="stylesheet"]`).Each(func(_ int, s *goquery.Selection) {
		if href, _ := s.Attr("href"); !strings.HasPrefix(href, "/static/") {
			t.Errorf("%s: stylesheet not from /static/: %q", name, href)
		}
	})
}

// checkSessionCookies asserts the session cookie's flags on every
// Set-Cookie of a response.
func checkSessionCookies(t *testing.T, name string, r response, https bool) int {
	t.Helper()
	n := 0
	for _, line := range r.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(line, sessionCookie+"=") {
			t.Errorf("%s: unexpected cookie %q", name, strings.SplitN(line, "=", 2)[0])
			continue
		}
		n++
		attrs := map[string]bool{}
		for part := range strings.SplitSeq(line, ";") {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			attrs[strings.ToLower(k)] = true
		}
		for _, want := range []string{"httponly", "path", "samesite"} {
			if !attrs[want] {
				t.Errorf("%s: session cookie lacks %s: %s", name, want, redactCookie(line))
			}
		}
		if !strings.Contains(line, "SameSite=Lax") || !strings.Contains(line, "Path=/") {
			t.Errorf("%s: session cookie not SameSite=Lax; Path=/: %s", name, redactCookie(line))
		}
		if attrs["secure"] != https {
			t.Errorf("%s: Secure is %v over https=%v: %s", name, attrs["secure"], https, redactCookie(line))
		}
		if attrs["domain"] {
			t.Errorf("%s: session cookie widened to a Domain: %s", name, redactCookie(line))
		}
	}
	return n
}

// redactCookie keeps a cookie's value out of test output.
func redactCookie(line string) string {
	name, rest, _ := strings.Cut(line, "=")
	_, attrs, _ := strings.Cut(rest, ";")
	return name + "=…;" + attrs
}

// TestSecurityHeadersOnEveryPage fetches every HTML page and fragment of
// the dashboard, its error pages included, and checks SPEC §5 on each: the
// CSP (no eval, no inline script or style, object-src/base-uri/
// frame-ancestors 'none'), nosniff, the referrer policy, markup that needs
// no inline code, session cookie flags, and no-store on every response that
// shows a full key.
func TestSecurityHeadersOnEveryPage(t *testing.T) {
	for _, https := range []bool{false, true} {
		name := "HTTP"
		if https {
			name = "HTTPS"
		}
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			b := e.browser()
			var extra []string
			if https {
				extra = []string{"X-Forwarded-Proto", "https"}
			}
			cookies := 0
			check := func(what string, r response, wantStatus int) response {
				t.Helper()
				if r.StatusCode != wantStatus {
					t.Fatalf("%s: status %d, want %d\n%.800s", what, r.StatusCode, wantStatus, r.body)
				}
				checkSecurityHeaders(t, what, r)
				if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") && r.body != "" {
					checkNoInlineCode(t, what, r)
				}
				cookies += checkSessionCookies(t, what, r, https)
				if https && r.Header.Get("Strict-Transport-Security") == "" {
					t.Errorf("%s: no Strict-Transport-Security over HTTPS", what)
				}
				return r
			}
			get := func(what, path string, status int, h ...string) response {
				t.Helper()
				return check(what, b.get(path, append(h, extra...)...), status)
			}
			post := func(what, path string, form url.Values, status int, h ...string) response {
				t.Helper()
				return check(what, b.post(path, form, append(h, extra...)...), status)
			}
			hx := func(what, method, path string, form url.Values, status int) response {
				t.Helper()
				var body *strings.Reader
				if form == nil {
					form = url.Values{}
				}
				body = strings.NewReader(form.Encode())
				req, _ := http.NewRequest(method, e.http.URL+path, body)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("HX-Request", "true")
				req.Header.Set("X-CSRF-Token", b.csrf)
				setHeaders(req, extra)
				return check(what, b.do(req), status)
			}

			get("sign-up page", "/signup", http.StatusOK)
			get("sign-in page", "/login", http.StatusOK)
			get("home, signed out", "/", http.StatusSeeOther)
			get("account, signed out", "/account/profile", http.StatusSeeOther)
			get("404 page", "/no-such-page", http.StatusNotFound)
			check("405 page", b.do(mustRequest(http.MethodPut, e.http.URL+"/login", extra)), http.StatusMethodNotAllowed)
			post("403 page (no CSRF token)", "/login", url.Values{"_csrf": {"forged"}, "email": {"a@example.com"}, "password": {"x"}}, http.StatusForbidden)
			post("sign-up form errors", "/signup", url.Values{"email": {"not an email"}, "password": {"short"}}, http.StatusUnprocessableEntity)
			post("sign-in refused", "/login", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password"}}, http.StatusUnprocessableEntity)
			post("413 page", "/login", url.Values{"email": {strings.Repeat("a", maxFormBody)}}, http.StatusRequestEntityTooLarge)
			post("sign-up", "/signup", url.Values{"email": {uniqueEmail()}, "password": {"correct horse battery"}, "name": {"Headers"}}, http.StatusSeeOther)

			keys := get("API Keys tab", "/account/api-keys", http.StatusOK)
			if strings.Contains(keys.Header.Get("Cache-Control"), "no-store") {
				t.Error("a page without a key is no-store; only key reveals should be")
			}
			get("account redirect", "/account", http.StatusSeeOther)
			get("Profile tab", "/account/profile", http.StatusOK)
			get("Redeem Coupon tab", "/account/coupons", http.StatusOK)
			for _, tab := range []string{"/account/profile", "/account/api-keys", "/account/coupons"} {
				get("htmx "+tab, tab, http.StatusOK, "HX-Request", "true")
			}

			// Every response that shows a full key is no-store, and a
			// history restore of the page shows no key.
			revealed := func(what string, r response) {
				t.Helper()
				if !keyPattern.MatchString(r.body) {
					t.Fatalf("%s: no key shown", what)
				}
				if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("%s: Cache-Control %q on a key reveal, want no-store", what, cc)
				}
			}
			created := hx("create key (htmx)", http.MethodPost, "/account/api-keys", url.Values{"label": {"htmx"}}, http.StatusOK)
			revealed("create key (htmx)", created)
			id, _ := created.doc(t).Find(`tr.row-new`).Attr("data-key-id")
			post("create key (form)", "/account/api-keys", url.Values{"label": {"form"}}, http.StatusSeeOther)
			revealed("key reveal page", get("key reveal page", "/account/api-keys", http.StatusOK))
			restore := get("history restore", "/account/api-keys", http.StatusOK, "HX-Request", "true", "HX-History-Restore-Request", "true")
			if keyPattern.MatchString(restore.body) {
				t.Error("a history restore of the API Keys tab shows a full key")
			}
			get("confirm delete page", "/account/api-keys/"+id+"/delete", http.StatusOK)
			get("404 for an unknown key", "/account/api-keys/999999/delete", http.StatusNotFound)
			hx("htmx 404 toast", http.MethodPost, "/account/api-keys/999999/deactivate", nil, http.StatusNotFound)
			hx("deactivate (htmx)", http.MethodPost, "/account/api-keys/"+id+"/deactivate", nil, http.StatusOK)
			post("activate (form)", "/account/api-keys/"+id+"/activate", nil, http.StatusSeeOther)
			get("after activate", "/account/api-keys", http.StatusOK)
			revealed("rotate (htmx)", hx("rotate (htmx)", http.MethodPost, "/account/api-keys/"+id+"/rotate", url.Values{"grace": {"1h"}}, http.StatusOK))
			hx("409 toast", http.MethodPost, "/account/api-keys/"+id+"/rotate", url.Values{"grace": {"1h"}}, http.StatusConflict)
			post("409 page", "/account/api-keys/"+id+"/rotate", url.Values{"grace": {"1h"}}, http.StatusConflict)
			hx("delete (htmx)", http.MethodDelete, "/account/api-keys/"+id, nil, http.StatusOK)
			post("redeem refused", "/account/coupons/redeem", url.Values{"code": {"NOPE"}}, http.StatusUnprocessableEntity)
			hx("redeem refused (htmx)", http.MethodPost, "/account/coupons/redeem", url.Values{"code": {"NOPE"}}, http.StatusUnprocessableEntity)
			post("rename", "/account/profile", url.Values{"name": {"Renamed"}}, http.StatusSeeOther)
			get("profile with flash", "/account/profile", http.StatusOK)
			hx("rename (htmx)", http.MethodPost, "/account/profile", url.Values{"name": {"Again"}}, http.StatusOK)
			post("password refused", "/account/password", url.Values{"current_password": {"wrong one"}, "new_password": {"another long one"}}, http.StatusUnprocessableEntity)
			post("403 page signed in", "/account/profile", url.Values{"_csrf": {"forged"}, "name": {"x"}}, http.StatusForbidden)
			get("404 page signed in", "/account/nope", http.StatusNotFound)
			post("sign out", "/logout", nil, http.StatusSeeOther)
			get("sign-in after sign-out", "/login", http.StatusOK)

			if cookies == 0 {
				t.Fatal("no session cookie was ever set")
			}
		})
	}
	t.Run("API", func(t *testing.T) {
		e := newTestEnv(t, withRenderer(&fakeRenderer{}))
		b, _ := e.signUp()
		key, _ := createKeyHTMX(t, b, "headers")
		for _, tc := range []struct {
			name         string
			method, path string
			key, body    string
			noStore      bool
		}{
			{"me", "GET", "/api/v1/me", key, "", true},
			{"render", "POST", "/api/v1/html-to-image", key, `{"html": "<p>x</p>"}`, true},
			{"401", "GET", "/api/v1/me", "", "", false},
			{"400", "POST", "/api/v1/screenshots", key, `{"url": 1}`, false},
			{"404", "GET", "/api/v1/nope", key, "", false},
		} {
			r := e.apiCall(tc.method, tc.path, tc.key, tc.body)
			if r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no nosniff", tc.name)
			}
			if tc.noStore && r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", tc.name, r.Header.Get("Cache-Control"))
			}
			if len(r.Header.Values("Set-Cookie")) > 0 {
				t.Errorf("%s: the API set a cookie", tc.name)
			}
		}
	})
}

func mustRequest(method, url string, headers []string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		panic(err)
	}
	setHeaders(req, headers)
	return req
}
