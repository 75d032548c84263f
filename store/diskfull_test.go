package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peekshot/peekshot/apikey"
)

// fillUntilFull repeats op with a fresh n until it fails, and requires the
// failure to be ErrStorageFull; it returns the n that failed.
func fillUntilFull(t *testing.T, what string, op func(n int) error) int {
	t.Helper()
	for n := range 5000 {
		err := op(n)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrStorageFull) {
			t.Fatalf("%s #%d failed with %v, want ErrStorageFull", what, n, err)
		}
		return n
	}
	t.Fatalf("%s never filled the capped database", what)
	return 0
}

// counts is a summary of every table a use case writes.
type counts struct{ users, ledger, keys, redemptions, sessions, couponUses int64 }

func countAll(t *testing.T, s *Store) counts {
	t.Helper()
	var c counts
	err := s.read.QueryRow(`SELECT
		(SELECT count(*) FROM users), (SELECT count(*) FROM credit_ledger),
		(SELECT count(*) FROM api_keys), (SELECT count(*) FROM coupon_redemptions),
		(SELECT count(*) FROM sessions), (SELECT coalesce(sum(redemptions), 0) FROM coupons)`).
		Scan(&c.users, &c.ledger, &c.keys, &c.redemptions, &c.sessions, &c.couponUses)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStorageFull caps the database (PRAGMA max_page_count, as a full disk
// or quota would) and drives every kind of write into the cap: each failed
// write is ErrStorageFull and leaves nothing half-written, the ledger still
// balances, and once the cap is raised the same writes succeed on the same
// Store, without a restart.
func TestStorageFull(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "full.db"), Options{MaxPageCount: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var limit int
	if err := s.write.QueryRow(`PRAGMA max_page_count`).Scan(&limit); err != nil || limit != 100_000 {
		t.Fatalf("Options.MaxPageCount not applied: %d, %v", limit, err)
	}
	newCoupon(t, s, NewCoupon{Code: "FILL", Credits: 5})
	newCoupon(t, s, NewCoupon{Code: "BIG", Credits: MaxCouponCredits})
	u := newUser(t, s)
	if _, _, err := s.RedeemCoupon(ctx, u.ID, "BIG"); err != nil {
		t.Fatal(err)
	}
	spare := make([]User, 40) // redeemers, made while there is room
	for i := range spare {
		spare[i] = newUser(t, s)
	}
	pad := strings.Repeat("x", 900) // rows this wide fill a 4 KiB page in a few inserts

	// The disk is full: the database may not grow past its current size.
	pages, err := s.PageCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.SetMaxPageCount(ctx, 1); err != nil || got != pages {
		t.Fatalf("cap %d (%v), want the current size %d: SQLite never caps below it", got, err, pages)
	}

	t.Run("CreateUser", func(t *testing.T) {
		var failed string
		before := countAll(t, s)
		n := fillUntilFull(t, "sign-up", func(n int) error {
			failed = fmt.Sprintf("full%d@example.com", n)
			before = countAll(t, s)
			_, err := s.CreateUser(ctx, NewUser{Email: failed, Name: pad[:100], PasswordHash: pad})
			return err
		})
		if _, err := s.UserByEmail(ctx, failed); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the failed sign-up #%d left its user behind: %v", n, err)
		}
		if after := countAll(t, s); after != before {
			t.Fatalf("a failed sign-up changed the tables: %+v → %+v", before, after)
		}
		assertLedgerBalanced(t, s)
	})
	t.Run("ChargeRender", func(t *testing.T) {
		// Spend the credits one at a time until a debit cannot be recorded.
		var before counts
		var balance int64
		fillUntilFull(t, "render debit", func(int) error {
			before = countAll(t, s)
			balance, _ = s.Credits(ctx, u.ID)
			_, err := s.ChargeRender(ctx, u.ID, 0)
			if errors.Is(err, ErrInsufficientCredits) {
				t.Fatal("the balance ran out before the ledger filled")
			}
			return err
		})
		if after := countAll(t, s); after != before {
			t.Fatalf("a failed debit changed the tables: %+v → %+v", before, after)
		}
		if now, _ := s.Credits(ctx, u.ID); now != balance {
			t.Fatalf("a failed debit moved the balance from %d to %d", balance, now)
		}
		assertLedgerBalanced(t, s)
	})
	t.Run("EveryOtherWrite", func(t *testing.T) {
		for _, w := range []struct {
			name string
			// op makes one write; mark snapshots the tables just before it.
			op func(n int, mark func()) error
		}{
			{"CreateAPIKey", func(n int, mark func()) error {
				mark()
				_, err := s.CreateAPIKey(ctx, NewAPIKey{UserID: u.ID, Label: pad[:64], Key: mustKey(t)})
				if errors.Is(err, ErrKeyLimit) {
					t.Fatal("the key limit answered before the database filled")
				}
				return err
			}},
			{"CreateSession", func(n int, mark func()) error {
				mark()
				id, _ := NewSessionID()
				return s.CreateSession(ctx, Session{ID: id, UserID: u.ID, Data: []byte(pad), CreatedAt: s.now(), LastSeenAt: s.now()})
			}},
			{"AdmitLoginAttempt", func(n int, mark func()) error {
				mark()
				_, err := s.AdmitLoginAttempt(ctx, fmt.Sprintf("%s%d@example.com", pad[:200], n), s.now().Add(-1), 10)
				return err
			}},
			{"CreateCoupon", func(n int, mark func()) error {
				mark()
				_, err := s.CreateCoupon(ctx, NewCoupon{Code: fmt.Sprintf("%s%d", strings.Repeat("C", 56), n), Credits: 1})
				return err
			}},
			{"RedeemCoupon", func(n int, mark func()) error {
				if n >= len(spare) {
					t.Fatal("every spare user redeemed before the database filled")
				}
				mark()
				_, _, err := s.RedeemCoupon(ctx, spare[n].ID, "FILL")
				return err
			}},
		} {
			t.Run(w.name, func(t *testing.T) {
				var before counts
				fillUntilFull(t, w.name, func(n int) error {
					return w.op(n, func() { before = countAll(t, s) })
				})
				if after := countAll(t, s); after != before {
					t.Fatalf("a failed %s changed the tables: %+v → %+v", w.name, before, after)
				}
				assertLedgerBalanced(t, s)
			})
		}
	})
	t.Run("RecoversWhenSpaceReturns", func(t *testing.T) {
		if _, err := s.SetMaxPageCount(ctx, 1<<30); err != nil {
			t.Fatal(err)
		}
		nu, err := s.CreateUser(ctx, NewUser{Email: "after@example.com", Name: pad[:100], PasswordHash: pad})
		if err != nil {
			t.Fatalf("sign-up after the space came back: %v", err)
		}
		if _, err := s.ChargeRender(ctx, nu.ID, 0); err != nil {
			t.Fatalf("debit after the space came back: %v", err)
		}
		if _, _, err := s.RedeemCoupon(ctx, nu.ID, "FILL"); err != nil {
			t.Fatalf("redemption after the space came back: %v", err)
		}
		assertLedgerBalanced(t, s)
		var check string
		if err := s.write.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check: %q, %v", check, err)
		}
	})
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
