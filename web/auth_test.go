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
)

func TestHomeRedirects(t *testing.T) {
	e := newTestEnv(t)
	anon := e.browser()
	if r := anon.get("/"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("anonymous / → %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	for _, path := range []string{"/account", "/account/profile", "/account/api-keys", "/account/coupons"} {
		r := anon.get(path)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
			t.Errorf("anonymous %s → %d %s", path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	b, _ := e.signUp()
	if r := b.get("/"); r.Header.Get("Location") != "/account/api-keys" {
		t.Fatalf("signed-in / → %s", r.Header.Get("Location"))
	}
	if r := b.get("/account"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/profile" {
		t.Fatalf("/account → %d %s", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestSignup(t *testing.T) {
	e := newTestEnv(t)
	t.Run("CreatesAccountWithCredits", func(t *testing.T) {
		b := e.browser()
		b.get("/signup")
		r := b.post("/signup", url.Values{"email": {"  Grace@Example.COM "}, "password": {"longenough"}, "name": {" Grace "}})
		expectStatus(t, r, http.StatusSeeOther)
		u, err := e.store.UserByEmail(context.Background(), "grace@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if u.Name != "Grace" || u.Credits != 100 || strings.Contains(u.PasswordHash, "longenough") || !strings.HasPrefix(u.PasswordHash, "$2") {
			t.Fatalf("stored user %+v", u)
		}
		page := b.get("/account/api-keys")
		expectStatus(t, page, http.StatusOK)
		d := page.doc(t)
		if got := d.Find(`[data-testid="viewer-email"]`).Text(); got != "grace@example.com" {
			t.Fatalf("viewer email %q", got)
		}
		if !strings.Contains(d.Find(`[data-testid="toast"]`).Text(), "100 free credits") {
			t.Fatal("no welcome message")
		}
	})
	tests := []struct {
		name, email, password, field, msg string
	}{
		{"MissingEmail", "", "longenough", "email", "Enter your email address."},
		{"BadEmail", "not-an-email", "longenough", "email", "valid email"},
		{"EmailWithName", "Bob <bob@example.com>", "longenough", "email", "valid email"},
		{"ShortPassword", "short@example.com", "1234567", "password", "at least 8"},
		{"NoPassword", "nopw@example.com", "", "password", "Choose a password."},
		{"HugePassword", "huge@example.com", strings.Repeat("x", 1025), "password", "at most 1024"},
		{"Taken", "grace@example.com", "longenough", "email", "already exists"},
		{"InvalidUTF8", "bad\xff@example.com", "longenough", "email", "valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			b.get("/signup")
			before, _ := e.store.LedgerMismatches(context.Background())
			r := b.post("/signup", url.Values{"email": {tt.email}, "password": {tt.password}})
			expectStatus(t, r, http.StatusUnprocessableEntity)
			msg := r.doc(t).Find(`[data-testid="error-` + tt.field + `"]`).Text()
			if !strings.Contains(msg, tt.msg) {
				t.Fatalf("error for %s = %q, want it to contain %q", tt.field, msg, tt.msg)
			}
			if strings.Contains(r.body, tt.password) && tt.password != "" {
				t.Fatal("password echoed back into the page")
			}
			after, _ := e.store.LedgerMismatches(context.Background())
			if len(before) != len(after) {
				t.Fatal("ledger changed")
			}
			if r := b.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
				t.Fatal("a refused sign-up signed the browser in")
			}
		})
	}
	t.Run("NameTooLong", func(t *testing.T) {
		b := e.browser()
		b.get("/signup")
		r := b.post("/signup", url.Values{"email": {"longname@example.com"}, "password": {"longenough"}, "name": {strings.Repeat("n", 101)}})
		expectStatus(t, r, http.StatusUnprocessableEntity)
		if _, err := e.store.UserByEmail(context.Background(), "longname@example.com"); err == nil {
			t.Fatal("account created despite the error")
		}
	})
}

func TestLogin(t *testing.T) {
	e := newTestEnv(t)
	_, email := e.signUp()

	t.Run("Good", func(t *testing.T) {
		b := e.browser()
		b.get("/login")
		before := cookieValue(b, e)
		r := b.post("/login", url.Values{"email": {strings.ToUpper(email)}, "password": {"correct horse battery"}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/api-keys" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		if after := cookieValue(b, e); after == before || after == "" {
			t.Fatal("session id not renewed at sign-in (fixation)")
		}
		expectStatus(t, b.get("/account/api-keys"), http.StatusOK)
	})
	t.Run("BadPasswordAndUnknownEmailLookAlike", func(t *testing.T) {
		b := e.browser()
		b.get("/login")
		wrong := b.post("/login", url.Values{"email": {email}, "password": {"wrong password"}})
		b.get("/login")
		unknown := b.post("/login", url.Values{"email": {"nobody@example.com"}, "password": {"wrong password"}})
		for _, r := range []response{wrong, unknown} {
			expectStatus(t, r, http.StatusUnprocessableEntity)
			if got := strings.TrimSpace(r.doc(t).Find(`[data-testid="form-error"]`).Text()); got != "Invalid email or password." {
				t.Fatalf("message %q", got)
			}
		}
		if r := b.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
			t.Fatal("failed sign-in opened the account")
		}
	})
	t.Run("Empty", func(t *testing.T) {
		b := e.browser()
		b.get("/login")
		r := b.post("/login", url.Values{"email": {""}, "password": {""}})
		expectStatus(t, r, http.StatusUnprocessableEntity)
	})
}

func cookieValue(b *browser, e *testEnv) string {
	u, _ := url.Parse(e.http.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

func TestLoginThrottle(t *testing.T) {
	e := newTestEnv(t)
	_, email := e.signUp()
	b := e.browser()
	b.get("/login")
	for i := range 10 {
		// A changing X-Forwarded-For must not reset the count.
		r := b.post("/login", url.Values{"email": {email}, "password": {"nope nope"}}, "X-Forwarded-For", "10.0.0."+strconv.Itoa(i))
		expectStatus(t, r, http.StatusUnprocessableEntity)
	}
	r := b.post("/login", url.Values{"email": {email}, "password": {"correct horse battery"}}, "X-Forwarded-For", "10.9.9.9")
	expectStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many sign-in attempts") {
		t.Fatalf("throttle answer lacks Retry-After or message: %q", r.Header.Get("Retry-After"))
	}
	if r := b.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("throttled sign-in still signed in")
	}
	e.clock.Add(16 * time.Minute)
	r = b.post("/login", url.Values{"email": {email}, "password": {"correct horse battery"}})
	expectStatus(t, r, http.StatusSeeOther)
}

// Sign-in attempts that race are counted before any password is checked:
// 40 at once (one of them with the right password) check at most 10
// passwords, and the right password after that is refused too.
func TestLoginThrottleRace(t *testing.T) {
	e := newTestEnv(t)
	_, email := e.signUp()
	b := e.browser()
	b.get("/login")
	token := b.csrf
	statuses := make(chan int, 40)
	var wg sync.WaitGroup
	for i := range 40 {
		password := "wrong password " + strconv.Itoa(i)
		if i == 20 {
			password = "correct horse battery"
		}
		wg.Go(func() {
			form := url.Values{"email": {email}, "password": {password}, "_csrf": {token}}
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	checked := 0
	for st := range statuses {
		switch st {
		case http.StatusUnprocessableEntity, http.StatusSeeOther:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("unexpected status %d", st)
		}
	}
	if checked > 10 {
		t.Fatalf("%d passwords were checked in one burst, want at most 10", checked)
	}
	// Whatever the burst left (a right password admitted in it clears the
	// count), wrong passwords reach the limit, and then the right one is
	// refused as well.
	late := e.browser()
	late.get("/login")
	for i := 0; ; i++ {
		r := late.post("/login", url.Values{"email": {email}, "password": {"still wrong"}})
		if r.StatusCode == http.StatusTooManyRequests {
			break
		}
		if i == 10 {
			t.Fatal("no throttle after 11 wrong passwords")
		}
	}
	r := late.post("/login", url.Values{"email": {email}, "password": {"correct horse battery"}})
	expectStatus(t, r, http.StatusTooManyRequests)
}

func TestLogoutRevokesSession(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	u, _ := url.Parse(e.http.URL)
	old := b.c.Jar.Cookies(u)
	r := b.post("/logout", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := b.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("still signed in after logout")
	}
	// Replay the cookie from before logout in a fresh client.
	replay := e.browser()
	replay.c.Jar.SetCookies(u, old)
	r = replay.get("/account/api-keys")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("replayed cookie accepted: %d", r.StatusCode)
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newTestEnv(t)
	t.Run("Idle", func(t *testing.T) {
		b, _ := e.signUp()
		e.clock.Add(23 * time.Hour)
		expectStatus(t, b.get("/account/api-keys"), http.StatusOK)
		e.clock.Add(23 * time.Hour) // active a moment ago: still fine
		expectStatus(t, b.get("/account/api-keys"), http.StatusOK)
		e.clock.Add(25 * time.Hour)
		if r := b.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
			t.Fatal("idle session still valid after 25 h")
		}
	})
	t.Run("Absolute", func(t *testing.T) {
		b, _ := e.signUp()
		for range 32 {
			e.clock.Add(23 * time.Hour)
			b.get("/account/profile")
		}
		if r := b.get("/account/api-keys"); r.StatusCode != http.StatusSeeOther {
			t.Fatal("session outlived its 30-day lifetime")
		}
	})
}

func TestSessionCookieFlags(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	r := b.get("/login")
	var found bool
	for _, c := range r.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(c, sessionCookie+"=") {
			continue
		}
		found = true
		for _, flag := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
			if !strings.Contains(c, flag) {
				t.Errorf("cookie lacks %s: %s", flag, c)
			}
		}
		if strings.Contains(c, "Secure") {
			t.Errorf("Secure set over plain HTTP: %s", c)
		}
	}
	if !found {
		t.Fatal("no session cookie on the sign-in page")
	}
	b2 := e.browser()
	r = b2.get("/login", "X-Forwarded-Proto", "https")
	if c := r.Header.Get("Set-Cookie"); !strings.Contains(c, "Secure") {
		t.Fatalf("cookie over HTTPS lacks Secure: %s", c)
	}
}
