package web

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/storetest"
)

// The key insight tests (issue 13) share these helpers: a server that
// trusts loopback as its proxy, so a test says where each API request
// comes from in X-Forwarded-For, and a clock moved to a chosen moment
// before anyone signs up.

// insightEnv is a test server whose clock stands at `at` (later than now)
// and that takes X-Forwarded-For from loopback.
func insightEnv(t *testing.T, at time.Time, opts ...envOption) *testEnv {
	t.Helper()
	e := newTestEnv(t, append([]envOption{withConfig(func(c *Config) {
		c.RateLimit = 1000
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		c.UsageFlushInterval = time.Hour // the tests flush when they mean to
		c.LifecycleInterval = time.Hour  // and run the lifecycle job themselves
	})}, opts...)...)
	e.moveClockTo(at)
	return e
}

// moveClockTo sets the shared clock of the store and the server.
func (e *testEnv) moveClockTo(at time.Time) {
	e.t.Helper()
	d := at.Sub(e.clock.Now())
	if d < 0 {
		e.t.Fatalf("the clock only moves forward: %v is before %v", at, e.clock.Now())
	}
	e.clock.Add(d)
}

// laterDay is noon-ish UTC on a day after today, plus offset: a moment
// every clock of a test can be moved forward to.
func laterDay(days int, offset time.Duration) time.Time {
	return account.DayStart(time.Now()).AddDate(0, 0, days).Add(offset)
}

// keyCall is an API request with a key, from ip (X-Forwarded-For) with
// agent as its User-Agent.
func (e *testEnv) keyCall(method, path, key, body, ip, agent string) response {
	e.t.Helper()
	return e.apiCall(method, path, key, body, "X-Forwarded-For", ip, "User-Agent", agent)
}

// flush writes the server's pending usage.
func (e *testEnv) flush() {
	e.t.Helper()
	if err := e.srv.flushUsage(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// userID is the id of the account with email.
func (e *testEnv) userID(email string) int64 {
	e.t.Helper()
	u, err := e.store.UserByEmail(context.Background(), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// keyDays is a key's stored usage per day, from the day of from.
func (e *testEnv) keyDays(userID, keyID int64, from time.Time) []account.KeyDay {
	e.t.Helper()
	days, err := e.store.KeyUsageDays(context.Background(), userID, keyID, from)
	if err != nil {
		e.t.Fatal(err)
	}
	return days
}

// setUsageSettings posts a key's settings form as its page sends it: the
// label, the expiry kept, the two render scopes, and what set changes.
func setUsageSettings(t *testing.T, b *browser, keyID int64, set url.Values) {
	t.Helper()
	form := url.Values{"label": {"usage"}, "expires": {"keep"}, "scopes_given": {"1"}, "scopes": {"screenshots", "html_to_image"}}
	maps.Copy(form, set)
	r := b.post(keyPath(keyID)+"/settings", form)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("settings %v: %d\n%.1500s", set, r.StatusCode, r.body)
	}
}

// chartDay is what the key page's chart and its table say of one day.
type chartDay struct {
	requests, renders, credits, errors string
	table                              []string // the table row: day, requests, renders, credits, refused
}

// pageChart reads the 30 days of a key's page: the SVG's days (their data)
// and the screen readers' table, which must agree.
func pageChart(t *testing.T, d *goquery.Document) []chartDay {
	t.Helper()
	var days []chartDay
	d.Find(`[data-testid="usage-chart-svg"] [data-testid="chart-day"]`).Each(func(_ int, g *goquery.Selection) {
		a := func(n string) string { v, _ := g.Attr(n); return v }
		days = append(days, chartDay{requests: a("data-requests"), renders: a("data-renders"), credits: a("data-credits"), errors: a("data-errors")})
	})
	rows := d.Find(`[data-testid="usage-table"] tbody tr`)
	if len(days) != 30 || rows.Length() != 30 {
		t.Fatalf("the chart has %d days and its table %d rows, want 30 each", len(days), rows.Length())
	}
	rows.Each(func(i int, tr *goquery.Selection) {
		tr.Children().Each(func(_ int, c *goquery.Selection) {
			days[i].table = append(days[i].table, strings.Join(strings.Fields(c.Text()), " "))
		})
		want := []string{days[i].requests, days[i].renders, days[i].credits}
		if got := days[i].table[1:4]; !equalStrings(got, want) || !strings.HasPrefix(days[i].table[4], days[i].errors) {
			t.Fatalf("day %d: the table says %v, the chart %+v", i, days[i].table, days[i])
		}
	})
	return days
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUsagePerDayIsExact: a key's requests of every outcome — successful
// renders of a page on loopback, /me, and refusals of every kind — give
// exactly those numbers for the day after a flush (requests, successful
// renders, credits, errors by code, the last client), and the key's page
// says the same before the flush (from memory) and after it.
func TestUsagePerDayIsExact(t *testing.T) {
	r := sharedChromium(t)
	e := insightEnv(t, laterDay(2, 10*time.Hour), withRenderer(r))
	b, email := e.signUp()
	key, id := createKeyHTMX(t, b, "usage")
	uid := e.userID(email)
	page := chrome.pages.URL + "/red"
	shot := fmt.Sprintf(`{"url": %q, "width": 320, "height": 200}`, page)
	html := `{"html": "<p>hello</p>", "width": 200, "height": 100}`
	const n = 3
	var requests, accepted int64
	call := func(path, body, ip, agent string, status int, code string) {
		t.Helper()
		res := e.keyCall(http.MethodPost, path, key, body, ip, agent)
		if path == "/api/v1/me" {
			res = e.keyCall(http.MethodGet, path, key, "", ip, agent)
		}
		requests++
		if code != "" {
			expectAPIError(t, res, status, code)
			return
		}
		expectStatus(t, res, status)
	}
	// phase runs n requests; each phase starts two minutes after the last,
	// so no rate limit of one carries into the next.
	phase := func(fn func(i int)) {
		t.Helper()
		e.clock.Add(2 * time.Minute)
		for i := range n {
			fn(i)
		}
	}
	want := map[string]int64{}
	refused := func(code string) { want[code] += n }

	phase(func(i int) {
		if i%2 == 0 {
			call("/api/v1/screenshots", shot, "203.0.113.1", "render-agent/1", 200, "")
		} else {
			call("/api/v1/html-to-image", html, "203.0.113.1", "render-agent/1", 200, "")
		}
		accepted++
	})
	phase(func(int) { call("/api/v1/me", "", "203.0.113.2", "me-agent/1", 200, ""); accepted++ })
	setUsageSettings(t, b, id, url.Values{"rate_limit": {"1"}})
	e.clock.Add(2 * time.Minute)
	call("/api/v1/html-to-image", html, "203.0.113.5", "rate-agent/1", 200, "")
	accepted++
	for range n { // at once: the minute's one render is taken
		call("/api/v1/html-to-image", html, "203.0.113.5", "rate-agent/1", 429, "rate_limited")
		accepted++
	}
	refused("rate_limited")
	const renders = n + 1 // the first phase's, and the one the rate limit let through

	// Each refusal in turn: what the key's settings (or the account) are
	// made to be, then n requests it refuses. Refusals by the key's own
	// state or address are not its use.
	for _, r := range []struct {
		set              url.Values
		prepare          func()
		path, body, ip   string
		status           int
		code             string
		notTheKeysOwnUse bool
	}{
		{set: url.Values{}, path: "/api/v1/screenshots", body: `{"url": "ftp://example.com"}`, ip: "203.0.113.3", status: 400, code: "invalid_request"},
		{set: url.Values{"scopes": {"html_to_image"}}, path: "/api/v1/screenshots", body: shot, ip: "203.0.113.4", status: 403, code: "scope_not_allowed"},
		{set: url.Values{"allowed_ips": {"203.0.113.0/24"}}, path: "/api/v1/html-to-image", body: html, ip: "198.51.100.7", status: 403, code: "ip_not_allowed", notTheKeysOwnUse: true},
		{set: url.Values{"monthly_budget": {strconv.Itoa(renders)}}, path: "/api/v1/html-to-image", body: html, ip: "203.0.113.6", status: 402, code: "key_budget_exhausted"},
		{set: url.Values{"allowed_targets": {"example.com"}}, path: "/api/v1/screenshots", body: shot, ip: "203.0.113.7", status: 403, code: "target_not_allowed"},
		{set: url.Values{}, prepare: func() { storetest.SetBalance(t, e.db, uid, 0) }, path: "/api/v1/html-to-image", body: html, ip: "203.0.113.8", status: 402, code: "insufficient_credits"},
		{prepare: func() { expectStatus(t, b.post(keyPath(id)+"/deactivate", url.Values{}), http.StatusSeeOther) },
			path: "/api/v1/me", ip: "192.0.2.9", status: 403, code: "api_key_inactive", notTheKeysOwnUse: true},
	} {
		if r.set != nil {
			setUsageSettings(t, b, id, r.set)
		}
		if r.prepare != nil {
			r.prepare()
		}
		phase(func(i int) {
			call(r.path, r.body, r.ip, r.code+"/"+strconv.Itoa(i), r.status, r.code)
			if !r.notTheKeysOwnUse {
				accepted++
			}
		})
		refused(r.code)
	}
	// The last request the key let through: the last one refused for want
	// of credits.
	lastIP, lastAgent := "203.0.113.8", "insufficient_credits/"+strconv.Itoa(n-1)

	var errs int64
	for _, v := range want {
		errs += v
	}
	var checkPage func(when string, d *goquery.Document)
	check := func(when string) {
		t.Helper()
		checkPage(when, b.get(keyPath(id)).doc(t))
	}
	checkPage = func(when string, d *goquery.Document) {
		t.Helper()
		today := pageChart(t, d)[29]
		if today.requests != itoa(requests) || today.renders != itoa(renders) || today.credits != itoa(renders) || today.errors != itoa(errs) {
			t.Fatalf("%s: the key's page charts today as %+v; want %d requests, %d renders, %d credits, %d refused", when, today, requests, renders, renders, errs)
		}
		for code, n := range want {
			if !strings.Contains(today.table[4], code+" "+itoa(n)) {
				t.Fatalf("%s: the table's refused requests %q lack %s %d", when, today.table[4], code, n)
			}
		}
		client := strings.Join(strings.Fields(d.Find(`[data-testid="key-last-client"]`).Text()), " ")
		if !strings.Contains(client, lastIP) || !strings.Contains(client, lastAgent) {
			t.Fatalf("%s: the last client reads %q, want %s with %s (refused requests are not the key's use)", when, client, lastIP, lastAgent)
		}
		if got := strings.TrimSpace(d.Find(`[data-testid="key-page-requests"]`).Text()); got != itoa(accepted) {
			t.Fatalf("%s: the key's page counts %s requests, want the %d its state and policy let through", when, got, accepted)
		}
	}
	check("before the flush")
	// The page a settings change answers (htmx) shows the same usage.
	saved := b.htmx(http.MethodPost, keyPath(id)+"/settings", settingsValues(formVals("label", "renamed")))
	expectStatus(t, saved, http.StatusOK)
	checkPage("on the page of a settings change", saved.doc(t))
	e.flush()
	check("after the flush")

	days := e.keyDays(uid, id, e.clock.Now().AddDate(0, 0, -29))
	if len(days) != 1 {
		t.Fatalf("usage on %d days, want today only: %+v", len(days), days)
	}
	got := days[0]
	if !got.Day.Equal(account.DayStart(e.clock.Now())) || got.Requests != requests || got.Renders != renders || got.Credits != renders || got.Errors != errs {
		t.Fatalf("stored %+v; want %v: %d requests, %d renders, %d credits, %d refused", got, account.DayStart(e.clock.Now()), requests, renders, renders, errs)
	}
	if !maps.Equal(got.ErrorsByCode, want) {
		t.Fatalf("errors by code %v, want %v", got.ErrorsByCode, want)
	}
	k, err := e.store.APIKey(context.Background(), uid, id)
	if err != nil {
		t.Fatal(err)
	}
	if k.RequestCount != accepted || k.LastIP != lastIP || k.LastUserAgent != lastAgent {
		t.Fatalf("stored key: %d requests from %s with %q; want %d from %s with %q", k.RequestCount, k.LastIP, k.LastUserAgent, accepted, lastIP, lastAgent)
	}
	// A second flush adds nothing.
	e.flush()
	if again := e.keyDays(uid, id, e.clock.Now()); len(again) != 1 || again[0].Requests != requests {
		t.Fatalf("a flush with nothing pending changed the day: %+v", again)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// secondServer is another instance on the same database as e's: its own
// store connection, cache, usage buffer and background jobs, on the same
// clock.
func (e *testEnv) secondServer() (*Server, *httptest.Server) {
	e.t.Helper()
	st := e.db.Again()
	cached := store.NewCached(st, e.clock.Now)
	waitLive(e.t, cached)
	srv, err := NewServer(e.srv.cfg, cached, e.srv.renderer, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	e.t.Cleanup(func() {
		hs.Close()
		srv.Close(context.Background())
		cached.Close()
	})
	return srv, hs
}

// TestUsageFromTwoServers: two instances on one database, each counting in
// its own memory and flushing when it likes (at the same moment here), add
// up to exactly the requests both served; the client addresses of the day
// are the union of what each saw.
func TestUsageFromTwoServers(t *testing.T) {
	e := insightEnv(t, laterDay(1, 9*time.Hour), withRenderer(&fakeRenderer{}))
	b, email := e.signUp()
	key, id := createKeyHTMX(t, b, "shared")
	uid := e.userID(email)
	srv2, hs2 := e.secondServer()
	urls := []string{e.http.URL, hs2.URL}
	// Each server sees four addresses, one of them both: seven in all.
	ips := [][]string{{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"}, {"198.51.100.4", "198.51.100.5", "198.51.100.6", "198.51.100.7"}}
	const perServer = 24
	var wg sync.WaitGroup
	for s := range 2 {
		for i := range perServer {
			wg.Go(func() {
				var req *http.Request
				switch i % 3 {
				case 0:
					req, _ = http.NewRequest(http.MethodGet, urls[s]+"/api/v1/me", nil)
				case 1:
					req, _ = http.NewRequest(http.MethodPost, urls[s]+"/api/v1/html-to-image", strings.NewReader(`{"html": "<p>x</p>"}`))
					req.Header.Set("Content-Type", "application/json")
				default:
					req, _ = http.NewRequest(http.MethodPost, urls[s]+"/api/v1/html-to-image", strings.NewReader(`{"html": ""}`))
					req.Header.Set("Content-Type", "application/json")
				}
				req.Header.Set("x-api-key", key)
				req.Header.Set("X-Forwarded-For", ips[s][i%4])
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if want := []int{200, 200, 400}[i%3]; res.StatusCode != want {
					t.Errorf("server %d request %d: %d, want %d", s, i, res.StatusCode, want)
				}
			})
		}
	}
	wg.Wait()
	// Both flush at once.
	var fl sync.WaitGroup
	for _, srv := range []*Server{e.srv, srv2} {
		fl.Go(func() {
			if err := srv.flushUsage(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	fl.Wait()
	days := e.keyDays(uid, id, e.clock.Now())
	const total, renders, refused = 2 * perServer, 2 * perServer / 3, 2 * perServer / 3
	if len(days) != 1 || days[0].Requests != total || days[0].Renders != renders || days[0].Credits != renders ||
		days[0].Errors != refused || days[0].ErrorsByCode["invalid_request"] != refused {
		t.Fatalf("after both flushed: %+v; want %d requests, %d renders and credits, %d invalid_request", days, total, renders, refused)
	}
	k, _ := e.store.APIKey(context.Background(), uid, id)
	if k.RequestCount != total {
		t.Fatalf("the key counts %d requests, want %d", k.RequestCount, total)
	}
	perDay, err := e.store.KeyIPsPerDay(context.Background(), uid, e.clock.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if perDay[id] != 7 {
		t.Fatalf("the day's client addresses count %d, want the 7 both servers saw", perDay[id])
	}
	if c, _ := e.store.Credits(context.Background(), uid); c != account.SignupCredits-renders {
		t.Fatalf("balance %d after %d renders", c, renders)
	}
}

// TestUsageAcrossMidnight: requests just before and just after midnight
// (UTC) land on their own days, flushed in one batch after midnight, and
// the key's chart shows both days, before the flush and after it.
func TestUsageAcrossMidnight(t *testing.T) {
	e := insightEnv(t, laterDay(2, -30*time.Second), withRenderer(&fakeRenderer{}))
	b, email := e.signUp()
	key, id := createKeyHTMX(t, b, "midnight")
	uid := e.userID(email)
	before := account.DayStart(e.clock.Now())
	html := `{"html": "<p>x</p>"}`
	expectStatus(t, e.keyCall("GET", "/api/v1/me", key, "", "203.0.113.1", "late/1"), 200)
	expectStatus(t, e.keyCall("POST", "/api/v1/html-to-image", key, html, "203.0.113.1", "late/1"), 200)
	expectStatus(t, e.keyCall("POST", "/api/v1/html-to-image", key, html, "203.0.113.1", "late/1"), 200)
	e.clock.Add(time.Minute) // 00:00:30 the next day
	after := account.DayStart(e.clock.Now())
	if !after.Equal(before.AddDate(0, 0, 1)) {
		t.Fatalf("the clock did not cross midnight: %v", e.clock.Now())
	}
	expectStatus(t, e.keyCall("POST", "/api/v1/html-to-image", key, html, "203.0.113.2", "early/1"), 200)
	expectAPIError(t, e.keyCall("POST", "/api/v1/html-to-image", key, `{"html": 1}`, "203.0.113.2", "early/1"), 400, "invalid_request")

	check := func(when string) {
		t.Helper()
		days := pageChart(t, b.get(keyPath(id)).doc(t))
		y, td := days[28], days[29]
		if y.requests != "3" || y.renders != "2" || y.credits != "2" || y.errors != "0" ||
			td.requests != "2" || td.renders != "1" || td.credits != "1" || td.errors != "1" {
			t.Fatalf("%s: the chart shows yesterday %+v and today %+v", when, y, td)
		}
		if y.table[0] != before.Format("Mon 2 Jan") || td.table[0] != after.Format("Mon 2 Jan") {
			t.Fatalf("%s: the table's last days are %q and %q, want %s and %s", when, y.table[0], td.table[0], before.Format("Mon 2 Jan"), after.Format("Mon 2 Jan"))
		}
	}
	check("before the flush")
	e.flush()
	check("after the flush")
	days := e.keyDays(uid, id, before)
	if len(days) != 2 || !days[0].Day.Equal(before) || !days[1].Day.Equal(after) ||
		days[0].Requests != 3 || days[0].Renders != 2 || days[0].Credits != 2 || days[0].Errors != 0 ||
		days[1].Requests != 2 || days[1].Renders != 1 || days[1].Credits != 1 || days[1].Errors != 1 {
		t.Fatalf("stored days %+v", days)
	}
	// Thirty days on, the day before midnight has left the chart.
	e.clock.Add(29 * 24 * time.Hour)
	b = e.signIn(email, "correct horse battery")
	days30 := pageChart(t, b.get(keyPath(id)).doc(t))
	if days30[0].requests != "2" {
		t.Fatalf("the chart's first day, 29 days ago, shows %+v, want the 2 requests after midnight", days30[0])
	}
	for _, d := range days30[1:] {
		if d.requests != "0" {
			t.Fatalf("a later day shows usage: %+v", d)
		}
	}
}
