package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
)

// instanceRateLimit is the per-key render limit of the instances of
// TestManyInstances: it must hold in total, not per instance.
const instanceRateLimit = 40

// TestManyInstances runs three `peekshot serve` processes on one PostgreSQL
// database, as behind a load balancer, and checks SPEC §9: a session works
// on every instance; a key shown once survives the redirect to another
// instance; a deactivation on one instance is refused by the others within
// 1 s (and by itself at once); credits, coupon redemptions and rate limits
// hold in total; and an instance killed mid-render leaves balance and
// ledger consistent, with its reservation gone at its expiry.
func TestManyInstances(t *testing.T) {
	t.Parallel()
	db := postgresDB(t)
	var hangs atomic.Int64
	release := make(chan struct{})
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			hangs.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><body style="background:#2a6"><h1>instance</h1></body>`)
	}))
	defer func() { close(release); pages.Close() }()

	dir := t.TempDir()
	inst := make([]*serverProcess, 3)
	var started sync.WaitGroup
	for i := range inst {
		started.Go(func() {
			inst[i] = startProcess(t, db, filepath.Join(dir, fmt.Sprintf("tmp%d", i)), fmt.Sprintf("PEEKSHOT_RATE_LIMIT=%d", instanceRateLimit))
		})
	}
	started.Wait()
	st := db.open(t)
	ctx := context.Background()
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	api := func(base, method, path, key, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("x-api-key", key)
		res, err := (&http.Client{Transport: tr, Timeout: 40 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// newKey signs a user up on instance i and creates a render key there.
	newKey := func(t *testing.T, i int, email string) (*webUser, string, int64) {
		t.Helper()
		a := signUpAccount(t, inst[i].base, email)
		res, body := mustDo(t, a.client(tr), "POST", inst[i].base+"/account/api-keys", url.Values{"label": {"k"}},
			map[string]string{"HX-Request": "true", "X-CSRF-Token": a.csrf})
		key, id, ok := parseReveal(body)
		if res.StatusCode != http.StatusOK || !ok {
			t.Fatalf("create key: %d", res.StatusCode)
		}
		return a, key, id
	}
	// spend takes credits from a user's balance, as renders would.
	spend := func(t *testing.T, email string, leave int64) int64 {
		t.Helper()
		u, err := st.UserByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		for range u.Credits - leave {
			if _, err := st.ChargeRender(ctx, account.Reservation{UserID: u.ID}); err != nil {
				t.Fatal(err)
			}
		}
		return u.ID
	}

	// Killed first, because its reservation takes ReservationTTL to expire:
	// the other checks run meanwhile.
	whole := t
	victim, victimKey, _ := newKey(t, 2, "victim@example.com")
	killedAt := time.Now()
	t.Run("KillMidRender", func(t *testing.T) {
		go api(inst[2].base, "POST", "/api/v1/screenshots", victimKey, fmt.Sprintf(`{"url": %q}`, pages.URL+"/hang"))
		for deadline := time.Now().Add(20 * time.Second); hangs.Load() == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the render never reached the page")
			}
		}
		killedAt = time.Now()
		inst[2].kill9()
		if n, err := st.LiveReservations(ctx); err != nil || n != 1 {
			t.Fatalf("%d live reservations right after the kill, want the one of the render cut off (%v)", n, err)
		}
		u, _ := st.UserByEmail(ctx, victim.email)
		if u.Credits != account.SignupCredits {
			t.Fatalf("the render cut off by the kill cost credits: balance %d", u.Credits)
		}
		// Started for the whole test, not this step (which would stop it).
		inst[2] = startProcess(whole, db, filepath.Join(dir, "tmp2-restarted"), fmt.Sprintf("PEEKSHOT_RATE_LIMIT=%d", instanceRateLimit))
	})

	t.Run("SessionOnEveryInstance", func(t *testing.T) {
		a := signUpAccount(t, inst[0].base, "everywhere@example.com")
		c := a.client(tr)
		for _, p := range inst[1:] {
			res, body := mustDo(t, c, "GET", p.base+"/account/api-keys", nil, nil)
			if res.StatusCode != http.StatusOK || !strings.Contains(body, a.email) {
				t.Fatalf("the session of instance 0 on %s: %d", p.base, res.StatusCode)
			}
		}
		// A change made through one instance with the CSRF token of a page
		// from another.
		res, body := mustDo(t, c, "POST", inst[2].base+"/account/api-keys", url.Values{"label": {"from 2"}},
			map[string]string{"HX-Request": "true", "X-CSRF-Token": a.csrf})
		if _, _, ok := parseReveal(body); res.StatusCode != http.StatusOK || !ok {
			t.Fatalf("create a key on instance 2 with instance 0's page: %d", res.StatusCode)
		}
	})

	t.Run("KeyShownOnceAcrossTheRedirect", func(t *testing.T) {
		a := signUpAccount(t, inst[0].base, "reveal@example.com")
		c := a.client(tr)
		res, _ := mustDo(t, c, "POST", inst[0].base+"/account/api-keys", url.Values{"_csrf": {a.csrf}, "label": {"no js"}}, nil)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("plain create: %d", res.StatusCode)
		}
		_, body := mustDo(t, c, "GET", inst[1].base+"/account/api-keys", nil, nil)
		key := revealedKey.FindStringSubmatch(body)
		if key == nil {
			t.Fatal("the redirect's page on another instance does not show the new key")
		}
		if code, _ := api(inst[2].base, "GET", "/api/v1/me", key[1]+key[2], ""); code != http.StatusOK {
			t.Fatalf("the revealed key answers %d", code)
		}
		_, body = mustDo(t, c, "GET", inst[2].base+"/account/api-keys", nil, nil)
		if revealedKey.MatchString(body) {
			t.Fatal("the key was shown a second time")
		}
	})

	t.Run("DeactivationReachesEveryInstance", func(t *testing.T) {
		a, key, id := newKey(t, 0, "revoke@example.com")
		for _, p := range inst {
			for range 2 { // the second answer comes from the instance's cache
				if code, body := api(p.base, "GET", "/api/v1/me", key, ""); code != http.StatusOK {
					t.Fatalf("%s: %d %s", p.base, code, body)
				}
			}
		}
		res, _ := mustDo(t, a.client(tr), "POST", inst[0].base+fmt.Sprintf("/account/api-keys/%d/deactivate", id), url.Values{},
			map[string]string{"HX-Request": "true", "X-CSRF-Token": a.csrf})
		changed := time.Now()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("deactivate: %d", res.StatusCode)
		}
		if code, _ := api(inst[0].base, "GET", "/api/v1/me", key, ""); code != http.StatusForbidden {
			t.Fatalf("the instance that deactivated the key answers %d right after", code)
		}
		for _, p := range inst[1:] {
			for {
				code, _ := api(p.base, "GET", "/api/v1/me", key, "")
				if code == http.StatusForbidden {
					t.Logf("%s refused the key %v after its deactivation elsewhere", p.base, time.Since(changed).Round(time.Millisecond))
					break
				}
				if time.Since(changed) > time.Second {
					t.Fatalf("%s still accepts the key %v after its deactivation (answer %d)", p.base, time.Since(changed), code)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	})

	t.Run("CreditsHoldInTotal", func(t *testing.T) {
		a, key, _ := newKey(t, 1, "credits@example.com")
		uid := spend(t, a.email, 5)
		var ok, broke atomic.Int64
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				code, body := api(inst[i%3].base, "POST", "/api/v1/html-to-image", key, fmt.Sprintf(`{"html": "<p>%d</p>", "width": 160, "height": 100}`, i))
				switch code {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusPaymentRequired:
					broke.Add(1)
				default:
					t.Errorf("render %d: %d %s", i, code, body)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 5 || broke.Load() != 25 {
			t.Fatalf("%d renders succeeded and %d were refused on a balance of 5, want exactly 5 and 25", ok.Load(), broke.Load())
		}
		if n, _ := st.Credits(ctx, uid); n != 0 {
			t.Fatalf("balance %d after the 5 renders", n)
		}
	})

	t.Run("CouponRedemptionsHoldInTotal", func(t *testing.T) {
		if _, err := st.CreateCoupon(ctx, account.NewCoupon{Code: "TEN-ACROSS", Credits: 7, MaxRedemptions: 10}); err != nil {
			t.Fatal(err)
		}
		users := make([]*webUser, 50)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 6)
		for i := range users {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				users[i] = signUpAccount(t, inst[i%3].base, fmt.Sprintf("coupon%d@example.com", i))
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		var redeemed, refused atomic.Int64
		for i, a := range users {
			wg.Go(func() {
				p := inst[(i+1)%3]
				res, body := mustDo(t, a.client(tr), "POST", p.base+"/account/coupons/redeem", url.Values{"code": {"ten-across"}},
					map[string]string{"HX-Request": "true", "X-CSRF-Token": a.csrf})
				switch {
				case res.StatusCode == http.StatusOK:
					redeemed.Add(1)
				case res.StatusCode == http.StatusUnprocessableEntity && strings.Contains(body, "fully redeemed"):
					refused.Add(1)
				default:
					t.Errorf("redeem: %d %.200s", res.StatusCode, body)
				}
			})
		}
		wg.Wait()
		if redeemed.Load() != 10 || refused.Load() != 40 {
			t.Fatalf("%d redemptions succeeded and %d were refused across 3 instances, want exactly 10 and 40", redeemed.Load(), refused.Load())
		}
	})

	t.Run("RateLimitHoldsInTotal", func(t *testing.T) {
		// An account without credits: each admitted request takes a token
		// of the limit and is then refused for credits, without a render.
		a, key, _ := newKey(t, 2, "rate@example.com")
		spend(t, a.email, 0)
		var admitted, limited atomic.Int64
		var wg sync.WaitGroup
		for i := range 3 * instanceRateLimit {
			wg.Go(func() {
				code, body := api(inst[i%3].base, "POST", "/api/v1/html-to-image", key, `{"html": "<p>x</p>"}`)
				switch code {
				case http.StatusPaymentRequired:
					admitted.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					t.Errorf("%d %s", code, body)
				}
			})
		}
		wg.Wait()
		// A token or so may come back while the burst runs (40 a minute).
		if n := admitted.Load(); n < instanceRateLimit || n > instanceRateLimit+2 {
			t.Fatalf("%d of %d requests got past a limit of %d a minute over 3 instances (%d limited): the limit must hold in total",
				n, 3*instanceRateLimit, instanceRateLimit, limited.Load())
		}
	})

	t.Run("KilledInstancesReservationExpires", func(t *testing.T) {
		wait := time.Until(killedAt.Add(account.ReservationTTL + time.Second))
		t.Logf("waiting %v for the killed instance's reservation to expire", wait.Round(time.Second))
		time.Sleep(wait)
		if n, err := st.LiveReservations(ctx); err != nil || n != 0 {
			t.Fatalf("%d reservations still live past their expiry (%v)", n, err)
		}
		u, _ := st.UserByEmail(ctx, victim.email)
		spend(t, victim.email, 1)
		// The whole balance is free again: its last credit renders.
		code, body := api(inst[0].base, "POST", "/api/v1/html-to-image", victimKey, `{"html": "<p>after</p>", "width": 160, "height": 100}`)
		if code != http.StatusOK {
			t.Fatalf("the victim's last credit: %d %s", code, body)
		}
		if n, _ := st.Credits(ctx, u.ID); n != 0 {
			t.Fatalf("balance %d", n)
		}
	})

	if bad, err := st.LedgerMismatches(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("balances differ from their ledger sums: %v %v", bad, err)
	}
	for _, p := range inst {
		if t.Failed() {
			t.Logf("%s:\n%s", p.base, p.out)
		}
		if strings.Contains(p.out.String(), `"level":"ERROR"`) {
			t.Errorf("an instance logged errors:\n%s", p.out)
		}
	}
}
