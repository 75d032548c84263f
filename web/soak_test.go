package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/capture"
)

// The soak runs in `make test` for a few seconds with a few clients, and in
// `make soak` for PEEKSHOT_SOAK_DURATION (60s) with PEEKSHOT_SOAK_CLIENTS
// (100) clients.
func soakSettings(t *testing.T) (time.Duration, int) {
	d, n := 8*time.Second, 20
	if v := os.Getenv("PEEKSHOT_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("PEEKSHOT_SOAK_DURATION: %v", err)
		}
	}
	if v := os.Getenv("PEEKSHOT_SOAK_CLIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 5 {
			t.Fatalf("PEEKSHOT_SOAK_CLIENTS must be a number ≥ 5: %q", v)
		}
	}
	return d, n
}

// drain returns the log written so far and forgets it.
func (l *logBuffer) drain() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf = bytes.Buffer{}
	return s
}

// soakKey is what a client knows of a key it made: it is the only client
// that changes it, so it knows exactly how the API must answer.
type soakKey struct {
	id      int64
	key     string
	active  bool
	rotated bool
	deleted bool
	uses    int64 // authenticated API requests made with it
	history []string
}

func (k *soakKey) note(format string, args ...any) {
	k.history = append(k.history, fmt.Sprintf(format, args...))
}

// soakClient is one signed-in browser that also calls the API with the
// keys it created, and keeps count of what its requests implied.
type soakClient struct {
	id      int
	user    *soakUser
	http    *http.Client
	base    string
	csrf    string
	keys    []*soakKey
	rng     *rand.Rand
	run     *soakRun
	credits int64 // credits its successful requests added (coupons) or spent (renders)
}

type soakUser struct {
	email   string
	mu      sync.Mutex
	coupons map[string]bool // codes this account redeemed
}

// soakRun is the shared bookkeeping of one soak.
type soakRun struct {
	requests, serverErrors, busy atomic.Int64
	byAction                     sync.Map // action → *atomic.Int64
	mu                           sync.Mutex
	failures                     []string
}

func (r *soakRun) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < 25 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
}

func (r *soakRun) count(action string) {
	v, _ := r.byAction.LoadOrStore(action, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

var soakCoupons = []struct {
	code    string
	credits int64
	max     int64
}{
	{"SOAK-A", 10, 0}, {"SOAK-B", 25, 0}, {"SOAK-C", 5, 3}, {"SOAK-D", 50, 1}, {"SOAK-E", 7, 0},
	{"SOAK-F", 3, 10}, {"SOAK-G", 100, 2}, {"SOAK-H", 1, 0}, {"SOAK-I", 40, 5}, {"SOAK-J", 12, 0},
}

type soakResponse struct {
	status int
	header http.Header
	body   string
}

// do sends one request; a transport error or a 5xx is a soak failure.
func (c *soakClient) do(action, method, path string, form url.Values, headers ...string) (soakResponse, bool) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c.run.requests.Add(1)
	c.run.count(action)
	res, err := c.http.Do(req)
	if err != nil {
		c.run.fail("client %d %s: %v", c.id, action, err)
		return soakResponse{}, false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := soakResponse{status: res.StatusCode, header: res.Header, body: string(b)}
	if r.status >= 500 {
		c.run.serverErrors.Add(1)
		c.run.fail("client %d %s %s: %d %.300s", c.id, action, path, r.status, r.body)
		return r, false
	}
	if tok := pageCSRF(r.body); tok != "" {
		c.csrf = tok
	}
	return r, true
}

func (c *soakClient) htmx(action, method, path string, form url.Values) (soakResponse, bool) {
	if form == nil {
		form = url.Values{}
	}
	return c.do(action, method, path, form, "HX-Request", "true", "X-CSRF-Token", c.csrf)
}

func (c *soakClient) api(action, method, path string, k *soakKey, body string) (soakResponse, bool) {
	h := []string{"x-api-key", k.key}
	if body != "" {
		h = append(h, "Content-Type", "application/json")
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	c.run.requests.Add(1)
	c.run.count(action)
	res, err := c.http.Do(req)
	if err != nil {
		c.run.fail("client %d %s: %v", c.id, action, err)
		return soakResponse{}, false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := soakResponse{status: res.StatusCode, header: res.Header, body: string(b)}
	if r.status >= 500 {
		c.run.serverErrors.Add(1)
		c.run.fail("client %d %s: %d %.300s", c.id, action, r.status, r.body)
		return r, false
	}
	return r, true
}

func (c *soakClient) expect(action string, r soakResponse, want ...int) bool {
	for _, w := range want {
		if r.status == w {
			return true
		}
	}
	c.run.fail("client %d %s: status %d, want %v: %.300s", c.id, action, r.status, want, r.body)
	return false
}

// newKey reads the key a reveal shows, and its row id.
func (c *soakClient) newKey(action string, r soakResponse) *soakKey {
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		c.run.fail("client %d %s: %v", c.id, action, err)
		return nil
	}
	key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
	idAttr, _ := d.Find(`tr.row-new`).Attr("data-key-id")
	id, err := strconv.ParseInt(idAttr, 10, 64)
	if key == "" || err != nil {
		c.run.fail("client %d %s: no key revealed", c.id, action)
		return nil
	}
	return &soakKey{id: id, key: key, active: true}
}

// counted notes an API answer: every request the key authenticated counts
// as a use, whatever came of it; refusals of the key itself do not.
func (k *soakKey) counted(r soakResponse) {
	if r.status != 0 && r.status != http.StatusUnauthorized && !(r.status == http.StatusForbidden && strings.Contains(r.body, "api_key_inactive")) {
		k.uses++
	}
}

func (c *soakClient) liveKeys() int {
	n := 0
	for _, k := range c.keys {
		if !k.deleted {
			n++
		}
	}
	return n
}

// pick returns a random key of the client, deleted ones included (the API
// must refuse those).
func (c *soakClient) pick(alive bool) *soakKey {
	var list []*soakKey
	for _, k := range c.keys {
		if !alive || !k.deleted {
			list = append(list, k)
		}
	}
	if len(list) == 0 {
		return nil
	}
	return list[c.rng.IntN(len(list))]
}

// step makes one random action and checks its answer against what the
// client knows.
func (c *soakClient) step() {
	switch n := c.rng.IntN(100); {
	case n < 28: // the API: who am I?
		k := c.pick(false)
		if k == nil {
			return
		}
		r, ok := c.api("api me", "GET", "/api/v1/me", k, "")
		k.counted(r)
		if !ok {
			return
		}
		switch {
		case k.deleted:
			c.expect("api me (deleted key)", r, http.StatusUnauthorized)
		case !k.active:
			c.expect("api me (inactive key)", r, http.StatusForbidden)
		default:
			c.expect("api me", r, http.StatusOK)
		}
	case n < 38: // the API: a real render
		k := c.pick(false)
		if k == nil {
			return
		}
		r, ok := c.api("api render", "POST", "/api/v1/html-to-image", k, fmt.Sprintf(`{"html": "<p>%d</p>", "width": 120, "height": 100}`, c.rng.IntN(1000)))
		k.counted(r)
		if !ok {
			return
		}
		switch {
		case k.deleted:
			c.expect("render (deleted key)", r, http.StatusUnauthorized)
		case !k.active:
			c.expect("render (inactive key)", r, http.StatusForbidden)
		case r.status == http.StatusOK:
			c.credits--
			if r.header.Get("Content-Type") != "image/png" || r.header.Get("X-Credits-Remaining") == "" {
				c.run.fail("client %d render: %v", c.id, r.header)
			}
		case r.status == http.StatusTooManyRequests || r.status == http.StatusPaymentRequired:
			c.run.busy.Add(1)
		default:
			c.expect("render", r, http.StatusOK)
		}
	case n < 52: // open a tab
		tab := []string{"/account/profile", "/account/api-keys", "/account/coupons"}[c.rng.IntN(3)]
		var r soakResponse
		var ok bool
		if c.rng.IntN(2) == 0 {
			r, ok = c.do("open tab", "GET", tab, nil)
		} else {
			r, ok = c.do("open tab (htmx)", "GET", tab, nil, "HX-Request", "true")
		}
		if ok {
			c.expect("open tab", r, http.StatusOK)
		}
	case n < 62: // create a key
		if c.liveKeys() >= 9 {
			return
		}
		r, ok := c.htmx("create key", "POST", "/account/api-keys", url.Values{"label": {fmt.Sprintf("soak %d", c.id)}})
		if ok && c.expect("create key", r, http.StatusOK) {
			if k := c.newKey("create key", r); k != nil {
				c.keys = append(c.keys, k)
			}
		}
	case n < 71: // deactivate or activate
		k := c.pick(true)
		if k == nil {
			return
		}
		action := "deactivate"
		if !k.active {
			action = "activate"
		}
		r, ok := c.htmx(action, "POST", "/account/api-keys/"+strconv.FormatInt(k.id, 10)+"/"+action, nil)
		if ok && c.expect(action, r, http.StatusOK) {
			k.active = !k.active
			k.note("%s → %d", action, r.status)
		}
	case n < 76: // delete
		k := c.pick(true)
		if k == nil || c.liveKeys() <= 1 {
			return
		}
		r, ok := c.htmx("delete key", "DELETE", "/account/api-keys/"+strconv.FormatInt(k.id, 10), nil)
		if ok && c.expect("delete key", r, http.StatusOK) {
			k.deleted = true
			k.note("delete → %d %.200s", r.status, r.body)
		}
	case n < 80: // rotate, keeping the old key for an hour
		k := c.pick(true)
		if k == nil || k.rotated || c.liveKeys() >= 9 {
			return
		}
		r, ok := c.htmx("rotate key", "POST", "/account/api-keys/"+strconv.FormatInt(k.id, 10)+"/rotate", url.Values{"grace": {"1h"}})
		if ok && c.expect("rotate key", r, http.StatusOK) {
			k.rotated = true
			if nk := c.newKey("rotate key", r); nk != nil {
				k.note("rotated into %d", nk.id)
				nk.note("made by rotating %d", k.id)
				c.keys = append(c.keys, nk)
			}
		}
	case n < 90: // redeem a coupon
		cp := soakCoupons[c.rng.IntN(len(soakCoupons))]
		c.user.mu.Lock() // one redemption of a code per account at a time, so the outcome is known
		defer c.user.mu.Unlock()
		r, ok := c.htmx("redeem coupon", "POST", "/account/coupons/redeem", url.Values{"code": {strings.ToLower(cp.code)}})
		if !ok {
			return
		}
		switch {
		case c.user.coupons[cp.code]:
			c.expect("redeem again", r, http.StatusUnprocessableEntity)
		case r.status == http.StatusOK:
			c.user.coupons[cp.code] = true
			c.credits += cp.credits
		case r.status == http.StatusUnprocessableEntity && cp.max > 0 && strings.Contains(r.body, "fully redeemed"):
		default:
			c.expect("redeem", r, http.StatusOK)
		}
	default: // rename
		r, ok := c.htmx("rename", "POST", "/account/profile", url.Values{"name": {fmt.Sprintf("Soak %d", c.rng.IntN(100))}})
		if ok {
			c.expect("rename", r, http.StatusOK)
		}
	}
}

// TestSoak runs many clients at once for a while, each signed in with its
// own session (real CSRF) and calling the API with the keys it made: no 5xx,
// no "database is locked", memory and goroutines flat after warm-up, and at
// the end the keys, their usage counts and every balance are exactly what
// the successful requests implied.
func TestSoak(t *testing.T) {
	duration, clients := soakSettings(t)
	render, _ := privateChromiumWith(t, http.NotFoundHandler(), capture.DefaultTimeout)
	e := newTestEnv(t, withRenderer(render), withConfig(func(c *Config) { c.RateLimit = 1_000_000 }))
	ctx := context.Background()
	for _, cp := range soakCoupons {
		e.coupon(account.NewCoupon{Code: cp.code, Credits: cp.credits, MaxRedemptions: cp.max})
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        clients * 2,
		MaxIdleConnsPerHost: clients * 2,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	run := &soakRun{}
	users := make([]*soakUser, clients/5)
	for i := range users {
		_, email := e.signUp()
		users[i] = &soakUser{email: email, coupons: map[string]bool{}}
	}
	all := make([]*soakClient, clients)
	for i := range all {
		jar, _ := cookiejar.New(nil)
		c := &soakClient{
			id: i, user: users[i%len(users)], base: e.http.URL, run: run,
			rng: rand.New(rand.NewPCG(uint64(i), 42)),
			http: &http.Client{Jar: jar, Transport: transport, Timeout: 60 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		}
		c.do("sign-in form", "GET", "/login", nil)
		r, _ := c.do("sign in", "POST", "/login", url.Values{"_csrf": {c.csrf}, "email": {c.user.email}, "password": {"correct horse battery"}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("client %d could not sign in: %d", i, r.status)
		}
		c.do("open tab", "GET", "/account/api-keys", nil)
		r, _ = c.htmx("create key", "POST", "/account/api-keys", url.Values{"label": {"first"}})
		k := c.newKey("first key", r)
		if k == nil {
			t.Fatalf("client %d: %v", i, run.failures)
		}
		c.keys = append(c.keys, k)
		all[i] = c
	}

	// The server's log is read and let go as the soak runs: kept whole, it
	// would grow with every request and pass for a leak.
	var locked bool
	checkLog := func() {
		logs := e.logs.drain()
		locked = locked || strings.Contains(logs, "database is locked") || strings.Contains(logs, "SQLITE_BUSY")
	}
	heap := func() (uint64, int) {
		checkLog()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, runtime.NumGoroutine()
	}
	baseHeap, baseGoroutines := heap()
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				c.step()
			}
		})
	}
	// Memory after warm-up (a quarter of the run), then every tenth.
	type sample struct {
		at         time.Duration
		heap       uint64
		goroutines int
	}
	var samples []sample
	for tick := time.NewTicker(duration / 10); time.Now().Before(deadline); {
		<-tick.C
		if time.Since(start) < duration/4 {
			continue
		}
		h, g := heap()
		samples = append(samples, sample{time.Since(start).Round(time.Second), h, g})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := e.srv.Close(ctx); err != nil { // flush usage counts, as a shutdown does
		t.Fatal(err)
	}
	transport.CloseIdleConnections()

	var actions []string
	run.byAction.Range(func(k, v any) bool {
		actions = append(actions, fmt.Sprintf("%s %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("soak: %d clients, %v, %d requests (%.0f/s), %d server errors, %d renders refused busy or broke; %s",
		clients, elapsed.Round(time.Second), run.requests.Load(), float64(run.requests.Load())/elapsed.Seconds(),
		run.serverErrors.Load(), run.busy.Load(), strings.Join(actions, ", "))
	for _, s := range samples {
		t.Logf("soak memory at %v: heap %.1f MiB, %d goroutines", s.at, float64(s.heap)/(1<<20), s.goroutines)
	}
	for _, f := range run.failures {
		t.Error(f)
	}
	if n := run.serverErrors.Load(); n > 0 {
		t.Errorf("%d responses were 5xx", n)
	}
	if checkLog(); locked {
		t.Error(`the log mentions "database is locked"`)
	}

	t.Run("MemoryFlat", func(t *testing.T) {
		if len(samples) < 3 {
			t.Fatalf("only %d memory samples", len(samples))
		}
		// Flat means the floor does not rise: a sample taken mid-request
		// holds that moment's bodies and images, so single samples are
		// noise; a leak lifts the lowest of the late samples above the
		// highest of the early ones.
		half := len(samples) / 2
		var early, late sample
		late.heap, late.goroutines = ^uint64(0), int(^uint(0)>>1)
		for _, s := range samples[:half] {
			early.heap, early.goroutines = max(early.heap, s.heap), max(early.goroutines, s.goroutines)
		}
		for _, s := range samples[half:] {
			late.heap, late.goroutines = min(late.heap, s.heap), min(late.goroutines, s.goroutines)
		}
		if late.heap > early.heap+early.heap/2+4<<20 {
			t.Errorf("the heap's floor rose from %.1f MiB (first half) to %.1f MiB (second half)", float64(early.heap)/(1<<20), float64(late.heap)/(1<<20))
		}
		if late.goroutines > early.goroutines+50 {
			t.Errorf("goroutines rose from %d (first half) to %d (second half)", early.goroutines, late.goroutines)
		}
		// Once the load stops, what it started goes away.
		var g int
		var h uint64
		if !settles(5*time.Second, func() bool { h, g = heap(); return g <= baseGoroutines+10 }) {
			t.Errorf("%d goroutines after the soak, %d before", g, baseGoroutines)
		}
		t.Logf("soak memory before the load: heap %.1f MiB, %d goroutines; after it: %.1f MiB, %d goroutines",
			float64(baseHeap)/(1<<20), baseGoroutines, float64(h)/(1<<20), g)
		if h > baseHeap+16<<20 {
			t.Errorf("the heap kept %.1f MiB after the load, %.1f MiB before", float64(h)/(1<<20), float64(baseHeap)/(1<<20))
		}
	})

	t.Run("StateIsWhatRequestsImplied", func(t *testing.T) {
		if bad, err := e.store.LedgerMismatches(ctx); err != nil || len(bad) > 0 {
			t.Fatalf("balances differ from their ledgers: %v %v", bad, err)
		}
		credits := map[string]int64{}
		for _, c := range all {
			credits[c.user.email] += c.credits
		}
		for _, u := range users {
			got := userOf(t, e, u.email)
			if want := account.SignupCredits + credits[u.email]; got.Credits != want {
				t.Errorf("%s has %d credits; its requests imply %d", u.email, got.Credits, want)
			}
			stored := map[int64]account.APIKey{}
			keys, err := e.store.APIKeys(ctx, got.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				stored[k.ID] = k
			}
			want := 0
			for _, c := range all {
				if c.user != u {
					continue
				}
				for _, k := range c.keys {
					s, ok := stored[k.id]
					switch {
					case k.deleted && ok:
						t.Errorf("key %d (client %d) was deleted but is still stored: %+v; history %q", k.id, c.id, s, k.history)
					case k.deleted:
					case !ok:
						t.Errorf("key %d was created but is not stored", k.id)
					default:
						want++
						if s.Active != k.active || s.Rotated() != k.rotated {
							t.Errorf("key %d: stored active=%v rotated=%v, requests implied active=%v rotated=%v", k.id, s.Active, s.Rotated(), k.active, k.rotated)
						}
						if s.RequestCount != k.uses {
							t.Errorf("key %d counted %d requests; %d were made with it", k.id, s.RequestCount, k.uses)
						}
					}
				}
			}
			if len(keys) != want {
				t.Errorf("%s has %d keys stored, %d expected", u.email, len(keys), want)
			}
		}
	})
}
