package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

// Start is where every suite clock stands when its test begins: a whole
// second, so times survive the store's Unix seconds unchanged.
var Start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// Run is the conformance suite: every behaviour of the store contract, on
// a fresh database from open for each area, the areas in parallel. Every
// implementation runs it from its own tests.
func Run(t *testing.T, open Opener) {
	for _, a := range []struct {
		name string
		test func(t *testing.T, h *Harness)
	}{
		{"Users", testUsers},
		{"Sessions", testSessions},
		{"LoginAttempts", testLoginAttempts},
		{"APIKeys", testAPIKeys},
		{"APIKeyActivation", testAPIKeyActivation},
		{"APIKeyRotation", testAPIKeyRotation},
		{"APIKeyUsage", testAPIKeyUsage},
		{"KeyUsageDays", testKeyUsageDays},
		{"ActivityLog", testActivityLog},
		{"KeyLifecycles", testKeyLifecycles},
		{"APIKeyIDs", testAPIKeyIDs},
		{"APIKeyLimit", testAPIKeyLimit},
		{"Policies", testPolicies},
		{"MonthlyBudget", testMonthlyBudget},
		{"Renders", testRenders},
		{"RenderRace", testRenderRace},
		{"RenderReservations", testRenderReservations},
		{"PaidLinks", testPaidLinks},
		{"RateLimit", testRateLimit},
		{"Coupons", testCoupons},
		{"RedeemCoupon", testRedeemCoupon},
		{"RedeemCouponRace", testRedeemCouponRace},
		{"LedgerInvariant", testLedgerInvariant},
		{"Reveals", testReveals},
		{"SigningSecrets", testSigningSecrets},
		{"LeakReports", testLeakReports},
		{"Sweep", testSweep},
		{"Watch", testWatch},
		{"Cached", testCached},
		{"Constraints", testConstraints},
		{"NothingInClear", testNothingInClear},
	} {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			a.test(t, open(t, NewClock(Start)))
		})
	}
}

var userSeq atomic.Int64

// NewUser signs up a new user with a unique email.
func NewUser(t testing.TB, s store.Users) account.User {
	t.Helper()
	n := userSeq.Add(1)
	u, err := s.CreateUser(context.Background(), account.NewUser{
		Email: fmt.Sprintf("user%d@example.com", n), Name: "User", PasswordHash: "$2a$10$hash",
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// NewKey creates a key for the user and returns it with its plaintext.
func NewKey(t testing.TB, s store.APIKeys, userID int64, label string) (account.APIKey, string) {
	t.Helper()
	plain := MustKey(t)
	k, err := s.CreateAPIKey(context.Background(), account.NewAPIKey{UserID: userID, Label: label, Key: plain})
	if err != nil {
		t.Fatal(err)
	}
	return k, plain
}

// MustKey generates a key's plaintext.
func MustKey(t testing.TB) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// AssertLedgerBalanced fails unless every balance equals its ledger sum.
func AssertLedgerBalanced(t testing.TB, s store.Credits) {
	t.Helper()
	bad, err := s.LedgerMismatches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("balances differ from their ledger sums for users %v", bad)
	}
}

// stores is the harness's store and n-1 more on the same database, as
// n processes would have.
func stores(h *Harness, n int) []store.Store {
	out := []store.Store{h.Store}
	for len(out) < n {
		out = append(out, h.Again())
	}
	return out
}

// raceRounds is how often a race whose loss shows only sometimes (a
// missing lock) is run.
const raceRounds = 4

// race runs fn from n goroutines released together, requires each to
// succeed or fail with refusal, and returns how many succeeded.
func race(t *testing.T, n int, fn func(i int) error, refusal error) int {
	t.Helper()
	var wins, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			switch err := fn(i); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, refusal):
				refused.Add(1)
			default:
				t.Errorf("goroutine %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load()+refused.Load() != int64(n) {
		t.Fatalf("%d succeeded and %d were refused, of %d", wins.Load(), refused.Load(), n)
	}
	return int(wins.Load())
}

// sameKey compares keys with times compared as instants.
func sameKey(a, b account.APIKey) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Label == b.Label && a.Prefix == b.Prefix && a.Last4 == b.Last4 &&
		a.Active == b.Active && a.ExpiresAt.Equal(b.ExpiresAt) && a.CreatedAt.Equal(b.CreatedAt) &&
		a.RotatedAt.Equal(b.RotatedAt) && a.RetiresAt.Equal(b.RetiresAt) && a.ReplacedBy == b.ReplacedBy &&
		a.LastUsedAt.Equal(b.LastUsedAt) && a.RequestCount == b.RequestCount
}

// within polls cond until it holds and returns how long that took, or
// fails after limit: the cross-process checks, which have a deadline.
func within(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		if cond() {
			return time.Since(begin)
		}
		if time.Since(begin) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// renderUser is a user with a key to render with, and balance credits
// (moved there with a balanced ledger row).
func renderUser(t testing.TB, h *Harness, balance int64) (account.User, account.APIKey) {
	t.Helper()
	u := NewUser(t, h.Store)
	k, _ := NewKey(t, h.Store, u.ID, "renders")
	SetBalance(t, h, u.ID, balance)
	u.Credits = balance
	return u, k
}

// SetBalance moves a user's balance to n through Raw, with the ledger row
// that keeps it equal to its ledger sum (as if renders had spent it).
func SetBalance(t testing.TB, h *Harness, userID, n int64) {
	t.Helper()
	cur, err := h.Store.Credits(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if cur == n {
		return
	}
	reason := "render"
	if n > cur {
		reason = "coupon"
	}
	tx, err := h.Raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(h.rebind(`UPDATE users SET credits = ? WHERE id = ?`), n, userID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(h.rebind(`INSERT INTO credit_ledger (user_id, delta, reason, created_at) VALUES (?, ?, ?, ?)`),
		userID, n-cur, reason, h.Clock.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// admission is a render on k with a rate limit high enough never to
// matter.
func admission(u account.User, k account.APIKey) account.RenderAdmission {
	return account.RenderAdmission{UserID: u.ID, KeyID: k.ID, RatePerMinute: 1_000_000}
}
