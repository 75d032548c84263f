package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
)

func testReveals(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	alice, bob := NewUser(t, s), NewUser(t, s)
	const ttl = 5 * time.Minute
	var seq int
	put := func(t *testing.T, userID int64) (token, sealed []byte) {
		t.Helper()
		seq++
		token = []byte{byte(seq), 't', 'o', 'k', 'e', 'n'}
		sealed = []byte{byte(seq), 's', 'e', 'a', 'l', 'e', 'd'}
		if err := s.PutReveal(ctx, token, userID, sealed, clk.Now().Add(ttl)); err != nil {
			t.Fatal(err)
		}
		return token, sealed
	}
	t.Run("OnceOnly", func(t *testing.T) {
		token, sealed := put(t, alice.ID)
		got, err := s.TakeReveal(ctx, token, alice.ID)
		if err != nil || !bytes.Equal(got, sealed) {
			t.Fatalf("%q %v", got, err)
		}
		if _, err := s.TakeReveal(ctx, token, alice.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("second take: %v", err)
		}
	})
	t.Run("AnotherServerTakesIt", func(t *testing.T) {
		token, sealed := put(t, alice.ID)
		got, err := h.Again().TakeReveal(ctx, token, alice.ID)
		if err != nil || !bytes.Equal(got, sealed) {
			t.Fatalf("%q %v", got, err)
		}
	})
	t.Run("OnlyItsUser", func(t *testing.T) {
		token, _ := put(t, alice.ID)
		if got, err := s.TakeReveal(ctx, token, bob.ID); !errors.Is(err, account.ErrNotFound) || got != nil {
			t.Fatalf("bob took alice's key: %q %v", got, err)
		}
		// It is gone either way: a token seen by the wrong session is spent.
		if _, err := s.TakeReveal(ctx, token, alice.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("after a wrong take: %v", err)
		}
	})
	t.Run("NotAfterExpiry", func(t *testing.T) {
		early, sealed := put(t, alice.ID)
		late, _ := put(t, alice.ID)
		clk.Add(ttl - time.Second)
		if got, err := s.TakeReveal(ctx, early, alice.ID); err != nil || !bytes.Equal(got, sealed) {
			t.Fatalf("a second before expiry: %q %v", got, err)
		}
		clk.Add(time.Second)
		if _, err := s.TakeReveal(ctx, late, alice.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("at the expiry: %v", err)
		}
		if n := h.Int(t, `SELECT count(*) FROM key_reveals`); n != 0 {
			t.Fatalf("%d reveals kept", n)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		if _, err := s.TakeReveal(ctx, []byte("never put"), alice.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("RacingTakesOneWins", func(t *testing.T) {
		token, sealed := put(t, alice.ID)
		ss := stores(h, 2)
		var mu sync.Mutex
		var got [][]byte
		ok := race(t, 10, func(i int) error {
			b, err := ss[i%len(ss)].TakeReveal(ctx, token, alice.ID)
			if err == nil {
				mu.Lock()
				got = append(got, b)
				mu.Unlock()
			}
			return err
		}, account.ErrNotFound)
		if ok != 1 || !bytes.Equal(got[0], sealed) {
			t.Fatalf("%d takes won: %q", ok, got)
		}
	})
}

// testSweep: Sweep deletes what has outlived its use and nothing else.
func testSweep(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u, k := renderUser(t, h, 10)
	now := clk.Now()
	if err := s.PutReveal(ctx, []byte("expired"), u.ID, []byte("x"), now.Add(account.ReservationTTL)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReveal(ctx, []byte("live"), u.ID, []byte("y"), now.Add(account.ReservationTTL+time.Second)); err != nil {
		t.Fatal(err)
	}
	// A reservation whose server died, and one of a render in progress.
	if _, err := s.AdmitRender(ctx, admission(u, k)); err != nil {
		t.Fatal(err)
	}
	clk.Add(account.ReservationTTL)
	live, err := s.AdmitRender(ctx, admission(u, k))
	if err != nil {
		t.Fatal(err)
	}
	if n := h.Int(t, `SELECT count(*) FROM credit_reservations`); n != 2 {
		t.Fatalf("%d reservations before the sweep", n)
	}
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.Int(t, `SELECT count(*) FROM credit_reservations`); n != 1 {
		t.Fatalf("%d reservations after the sweep, want the live one", n)
	}
	if n := h.Int(t, `SELECT count(*) FROM key_reveals`); n != 1 {
		t.Fatalf("%d reveals after the sweep, want the live one", n)
	}
	if _, err := s.TakeReveal(ctx, []byte("live"), u.ID); err != nil {
		t.Fatalf("the sweep took a live reveal: %v", err)
	}
	if ch, err := s.ChargeRender(ctx, live); err != nil || ch.Balance != 9 {
		t.Fatalf("charging the live reservation: %d %v", ch.Balance, err)
	}
	// A rate-limit bucket that has refilled is the same as none.
	if n := h.Int(t, `SELECT count(*) FROM api_key_rates`); n != 1 {
		t.Fatalf("%d rate-limit rows", n)
	}
	clk.Add(time.Second)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.Int(t, `SELECT count(*) FROM api_key_rates`); n != 0 {
		t.Fatalf("%d full rate-limit buckets kept", n)
	}
	if n, _ := s.LiveReservations(ctx); n != 0 {
		t.Fatalf("%d live reservations", n)
	}
	AssertLedgerBalanced(t, s)
}
