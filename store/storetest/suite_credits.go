package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
)

func testRenders(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	t.Run("AdmitThenCharge", func(t *testing.T) {
		u, k := renderUser(t, h, 10)
		r, err := s.AdmitRender(ctx, admission(u, k))
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == 0 || r.UserID != u.ID || r.KeyID != k.ID || !r.ExpiresAt.Equal(clk.Now().Add(account.ReservationTTL)) {
			t.Fatalf("reservation %+v", r)
		}
		if n, _ := s.LiveReservations(ctx); n != 1 {
			t.Fatalf("%d live reservations", n)
		}
		if c, _ := s.Credits(ctx, u.ID); c != 10 {
			t.Fatalf("admission moved the balance to %d", c)
		}
		ledger, _ := s.Ledger(ctx, u.ID)
		clk.Add(time.Second)
		ch, err := s.ChargeRender(ctx, r)
		if err != nil || ch.Balance != 9 || !ch.Charged {
			t.Fatalf("charge: %+v %v", ch, err)
		}
		if c, _ := s.Credits(ctx, u.ID); c != 9 {
			t.Fatalf("stored balance %d", c)
		}
		after, _ := s.Ledger(ctx, u.ID)
		if len(after) != len(ledger)+1 {
			t.Fatalf("%d ledger rows, %d before", len(after), len(ledger))
		}
		if e := after[len(after)-1]; e.Delta != -1 || e.Reason != "render" || !e.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("ledger row %+v", e)
		}
		if n := h.Int(t, `SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason = 'render' AND api_key_id = ?`, u.ID, k.ID); n != 1 {
			t.Fatalf("%d render rows name the key", n)
		}
		if n, _ := s.LiveReservations(ctx); n != 0 {
			t.Fatalf("%d live reservations after the charge", n)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("ReleaseGivesTheCreditBack", func(t *testing.T) {
		u, k := renderUser(t, h, 1)
		ledger, _ := s.Ledger(ctx, u.ID)
		r, err := s.AdmitRender(ctx, admission(u, k))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdmitRender(ctx, admission(u, k)); !errors.Is(err, account.ErrInsufficientCredits) {
			t.Fatalf("a second render on a balance of 1: %v", err)
		}
		if err := s.ReleaseRender(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.LiveReservations(ctx); n != 0 {
			t.Fatalf("%d live reservations after the release", n)
		}
		if c, _ := s.Credits(ctx, u.ID); c != 1 {
			t.Fatalf("balance %d after a release", c)
		}
		if after, _ := s.Ledger(ctx, u.ID); len(after) != len(ledger) {
			t.Fatal("a release wrote to the ledger")
		}
		r, err = s.AdmitRender(ctx, admission(u, k))
		if err != nil {
			t.Fatalf("the released credit can't be used: %v", err)
		}
		if ch, err := s.ChargeRender(ctx, r); err != nil || ch.Balance != 0 {
			t.Fatalf("%d %v", ch.Balance, err)
		}
		if _, err := s.AdmitRender(ctx, admission(u, k)); !errors.Is(err, account.ErrInsufficientCredits) {
			t.Fatalf("a render on a balance of 0: %v", err)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("KeyDeletedMidRender", func(t *testing.T) {
		u, k := renderUser(t, h, 5)
		r, err := s.AdmitRender(ctx, admission(u, k))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAPIKey(ctx, u.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if ch, err := s.ChargeRender(ctx, r); err != nil || ch.Balance != 4 {
			t.Fatalf("charge after the key went: %d %v", ch.Balance, err)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		u, k := renderUser(t, h, 5)
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdmitRender(ctx, admission(u, k)); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("a deleted user's render: %v", err)
		}
		if _, err := s.Credits(ctx, u.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("a deleted user's credits: %v", err)
		}
	})
	t.Run("LiveReservationsCountsEveryone", func(t *testing.T) {
		u, k := renderUser(t, h, 5)
		v, kv := renderUser(t, h, 5)
		var rs []account.Reservation
		for _, a := range []account.RenderAdmission{admission(u, k), admission(u, k), admission(v, kv)} {
			r, err := s.AdmitRender(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		if n, _ := s.LiveReservations(ctx); n != 3 {
			t.Fatalf("%d live reservations, want 3", n)
		}
		for _, r := range rs {
			if err := s.ReleaseRender(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// testRenderRace: a balance of N admits at most N renders at once, however
// many race, on however many of the user's keys and servers. A lost race
// shows only sometimes, so each is run a few rounds.
func testRenderRace(t *testing.T, h *Harness) {
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		stores int
	}{{"OneStore", 1}, {"TwoStores", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			ss := stores(h, tc.stores)
			for round := range raceRounds {
				// The balance is the user's, whichever key renders.
				u, k := renderUser(t, h, 5)
				keys := []account.APIKey{k}
				for range 3 {
					more, _ := NewKey(t, h.Store, u.ID, "")
					keys = append(keys, more)
				}
				var mu sync.Mutex
				var admitted []account.Reservation
				ok := race(t, 20, func(i int) error {
					r, err := ss[i%len(ss)].AdmitRender(ctx, admission(u, keys[i%len(keys)]))
					if err == nil {
						mu.Lock()
						admitted = append(admitted, r)
						mu.Unlock()
					}
					return err
				}, account.ErrInsufficientCredits)
				if ok != 5 {
					t.Fatalf("round %d: %d renders admitted on a balance of 5", round, ok)
				}
				if n, _ := h.Store.LiveReservations(ctx); n != 5 {
					t.Fatalf("%d live reservations", n)
				}
				if c, _ := h.Store.Credits(ctx, u.ID); c != 5 {
					t.Fatalf("admissions moved the balance to %d", c)
				}
				for i, r := range admitted {
					ch, err := ss[i%len(ss)].ChargeRender(ctx, r)
					if err != nil || ch.Balance != int64(4-i) {
						t.Fatalf("charge %d: %d %v", i, ch.Balance, err)
					}
				}
				if n, _ := h.Store.LiveReservations(ctx); n != 0 {
					t.Fatalf("%d live reservations after the charges", n)
				}
			}
			AssertLedgerBalanced(t, h.Store)
		})
	}
}

// testRenderReservations: a reservation whose server died mid-render runs
// out after ReservationTTL; nothing stays stuck.
func testRenderReservations(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u, k := renderUser(t, h, 1)
	stuck, err := s.AdmitRender(ctx, admission(u, k))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(account.ReservationTTL - time.Second)
	if _, err := s.AdmitRender(ctx, admission(u, k)); !errors.Is(err, account.ErrInsufficientCredits) {
		t.Fatalf("a render before the reservation expired: %v", err)
	}
	if n, _ := s.LiveReservations(ctx); n != 1 {
		t.Fatalf("%d live reservations before the expiry", n)
	}
	clk.Add(time.Second)
	if n, _ := s.LiveReservations(ctx); n != 0 {
		t.Fatalf("%d live reservations at the expiry", n)
	}
	// Another server takes the credit the dead one had reserved.
	r, err := h.Again().AdmitRender(ctx, admission(u, k))
	if err != nil {
		t.Fatalf("the expired reservation still counts: %v", err)
	}
	if ch, err := s.ChargeRender(ctx, r); err != nil || ch.Balance != 0 {
		t.Fatalf("%d %v", ch.Balance, err)
	}
	// The render of the dead server's reservation is charged after all:
	// the balance has nothing left, and nothing changes.
	ledger, _ := s.Ledger(ctx, u.ID)
	if _, err := s.ChargeRender(ctx, stuck); !errors.Is(err, account.ErrInsufficientCredits) {
		t.Fatalf("charging an expired reservation on a balance of 0: %v", err)
	}
	if c, _ := s.Credits(ctx, u.ID); c != 0 {
		t.Fatalf("balance %d", c)
	}
	if after, _ := s.Ledger(ctx, u.ID); len(after) != len(ledger) {
		t.Fatal("a refused charge wrote to the ledger")
	}
	AssertLedgerBalanced(t, s)
}

func testRateLimit(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	const perMinute = 5
	interval := time.Minute / perMinute
	limited := func(u account.User, k account.APIKey) account.RenderAdmission {
		return account.RenderAdmission{UserID: u.ID, KeyID: k.ID, RatePerMinute: perMinute}
	}
	// admit admits and releases one render, and returns the refusal.
	admit := func(t *testing.T, s store.Store, a account.RenderAdmission) error {
		t.Helper()
		r, err := s.AdmitRender(ctx, a)
		if err == nil {
			err = s.ReleaseRender(ctx, r)
		}
		return err
	}
	rateLimited := func(t *testing.T, err error) *account.RateLimitedError {
		t.Helper()
		var rl *account.RateLimitedError
		if !errors.As(err, &rl) {
			t.Fatalf("err = %v, want *account.RateLimitedError", err)
		}
		if rl.PerMinute != perMinute || rl.RetryAfter <= 0 || rl.RetryAfter > interval {
			t.Fatalf("refusal %+v: want %d per minute and a retry within %v", rl, perMinute, interval)
		}
		return rl
	}
	t.Run("BurstThenRefill", func(t *testing.T) {
		u, k := renderUser(t, h, 100)
		for i := range perMinute {
			if err := admit(t, s, limited(u, k)); err != nil {
				t.Fatalf("render %d of a burst of %d: %v", i+1, perMinute, err)
			}
		}
		ledger, _ := s.Ledger(ctx, u.ID)
		rl := rateLimited(t, admit(t, s, limited(u, k)))
		if rl.RetryAfter != interval {
			t.Errorf("retry after %v, want %v (one emission interval)", rl.RetryAfter, interval)
		}
		if c, _ := s.Credits(ctx, u.ID); c != 100 {
			t.Fatalf("a refused render moved the balance to %d", c)
		}
		if after, _ := s.Ledger(ctx, u.ID); len(after) != len(ledger) {
			t.Fatal("a refused render wrote to the ledger")
		}
		if n, _ := s.LiveReservations(ctx); n != 0 {
			t.Fatalf("a refused render reserved a credit: %d", n)
		}
		// Another key of the same user has a limit of its own.
		other, _ := NewKey(t, s, u.ID, "other")
		if err := admit(t, s, limited(u, other)); err != nil {
			t.Fatalf("another key: %v", err)
		}
		clk.Add(rl.RetryAfter - time.Millisecond)
		rateLimited(t, admit(t, s, limited(u, k)))
		clk.Add(time.Millisecond)
		if err := admit(t, s, limited(u, k)); err != nil {
			t.Fatalf("after waiting as told: %v", err)
		}
		rateLimited(t, admit(t, s, limited(u, k)))
		clk.Add(time.Minute)
		for i := range perMinute {
			if err := admit(t, s, limited(u, k)); err != nil {
				t.Fatalf("render %d a minute later: %v", i+1, err)
			}
		}
		rateLimited(t, admit(t, s, limited(u, k)))
	})
	t.Run("SharedByEveryServer", func(t *testing.T) {
		u, k := renderUser(t, h, 100)
		ss := stores(h, 3)
		var mu sync.Mutex
		var retries []time.Duration
		ok := race(t, 30, func(i int) error {
			err := admit(t, ss[i%len(ss)], limited(u, k))
			var rl *account.RateLimitedError
			if errors.As(err, &rl) {
				mu.Lock()
				retries = append(retries, rl.RetryAfter)
				mu.Unlock()
				return errRateLimited
			}
			return err
		}, errRateLimited)
		if ok != perMinute {
			t.Fatalf("%d renders admitted over %d servers, the limit is %d per minute in total", ok, len(ss), perMinute)
		}
		for _, d := range retries {
			if d <= 0 || d > interval {
				t.Fatalf("retry after %v", d)
			}
		}
		if c, _ := s.Credits(ctx, u.ID); c != 100 {
			t.Fatalf("balance %d", c)
		}
	})
	t.Run("ARaisedLimitAppliesAtOnce", func(t *testing.T) {
		u, k := renderUser(t, h, 100)
		at := func(perMinute int) account.RenderAdmission {
			return account.RenderAdmission{UserID: u.ID, KeyID: k.ID, RatePerMinute: perMinute}
		}
		if err := admit(t, s, at(1)); err != nil {
			t.Fatal(err)
		}
		var rl *account.RateLimitedError
		if err := admit(t, s, at(1)); !errors.As(err, &rl) || rl.RetryAfter != time.Minute {
			t.Fatalf("the second render at 1 a minute: %v", err)
		}
		// Raised to 2 a minute: the render so far is one of two.
		if err := admit(t, s, at(2)); err != nil {
			t.Fatalf("right after the limit was raised: %v", err)
		}
		if err := admit(t, s, at(2)); !errors.As(err, &rl) || rl.RetryAfter != 30*time.Second {
			t.Fatalf("the third render at 2 a minute: %v", err)
		}
		clk.Add(30 * time.Second)
		if err := admit(t, s, at(60)); err != nil {
			t.Fatalf("raised to 60 a minute: %v", err)
		}
		// Lowered, it applies from now on: what was let in is not
		// charged again at the lower rate.
		if err := admit(t, s, at(1)); !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Minute {
			t.Fatalf("lowered to 1 a minute: %v", err)
		}
		clk.Add(rl.RetryAfter)
		if err := admit(t, s, at(1)); err != nil {
			t.Fatalf("after waiting as told: %v", err)
		}
	})
	t.Run("InsufficientCreditsAfterTheLimit", func(t *testing.T) {
		u, k := renderUser(t, h, 0)
		if _, err := s.AdmitRender(ctx, limited(u, k)); !errors.Is(err, account.ErrInsufficientCredits) {
			t.Fatalf("err = %v", err)
		}
	})
}

var errRateLimited = errors.New("rate limited")
