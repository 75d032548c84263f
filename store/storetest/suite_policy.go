package storetest

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// testPolicies: every field of a key's policy and its expiry round-trips,
// through creation, the settings, the lookup of the API and a rotation.
func testPolicies(t *testing.T, h *Harness) {
	ctx := context.Background()
	s, clk := h.Store, h.Clock
	u := NewUser(t, s)
	policy := account.Policy{
		Scopes:         []account.Scope{account.ScopeScreenshots, account.ScopeKeysRead},
		AllowedIPs:     []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("2001:db8::/32")},
		AllowedTargets: []string{"example.com", "*.example.org"},
		RateLimit:      12,
		MonthlyBudget:  500,
	}
	expiry := account.Expiry{At: clk.Now().Add(30 * 24 * time.Hour), Lifetime: 30 * 24 * time.Hour}
	plain := MustKey(t)
	k, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Label: "narrow", Key: plain, Policy: policy, Expiry: expiry})
	if err != nil {
		t.Fatal(err)
	}
	same := func(t *testing.T, what string, got account.APIKey, p account.Policy, x account.Expiry) {
		t.Helper()
		if !reflect.DeepEqual(got.Policy, p) {
			t.Fatalf("%s: policy %+v, want %+v", what, got.Policy, p)
		}
		if !got.ExpiresAt.Equal(x.At) {
			t.Fatalf("%s: expires %v, want %v", what, got.ExpiresAt, x.At)
		}
	}
	t.Run("Created", func(t *testing.T) {
		same(t, "returned", k, policy, expiry)
		got, err := s.APIKey(ctx, u.ID, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "read", got, policy, expiry)
		if got.ExpiryLifetime != expiry.Lifetime {
			t.Fatalf("lifetime %v", got.ExpiryLifetime)
		}
		byHash, err := s.APIKeyByHash(ctx, apikey.HashOf(plain))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "the API's lookup", byHash, policy, expiry)
	})
	t.Run("DefaultPolicy", func(t *testing.T) {
		d, _ := NewKey(t, s, u.ID, "default")
		if !reflect.DeepEqual(d.Policy, account.DefaultPolicy()) {
			t.Fatalf("a key made without a policy has %+v", d.Policy)
		}
		got, _ := s.APIKey(ctx, u.ID, d.ID)
		if !reflect.DeepEqual(got.Policy, account.DefaultPolicy()) || !got.ExpiresAt.IsZero() {
			t.Fatalf("stored %+v, expires %v", got.Policy, got.ExpiresAt)
		}
	})
	t.Run("Settings", func(t *testing.T) {
		changed := account.Policy{Scopes: account.AllScopes, AllowedTargets: []string{"only.example.net"}}
		date := account.Expiry{At: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)}
		got, err := s.UpdateAPIKeySettings(ctx, u.ID, k.ID, account.KeySettings{Label: "renamed", Policy: changed, Expiry: date})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "returned", got, changed, date)
		read, _ := s.APIKey(ctx, u.ID, k.ID)
		same(t, "read", read, changed, date)
		if read.Label != "renamed" || read.ExpiryLifetime != 0 {
			t.Fatalf("label %q lifetime %v", read.Label, read.ExpiryLifetime)
		}
		if _, err := s.UpdateAPIKeySettings(ctx, NewUser(t, s).ID, k.ID, account.KeySettings{Label: "stolen"}); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("another user's settings change: %v", err)
		}
		if read, _ := s.APIKey(ctx, u.ID, k.ID); read.Label != "renamed" {
			t.Fatal("another user's refused change changed the key")
		}
		// Back to the first policy, for the rotation below.
		if _, err := s.UpdateAPIKeySettings(ctx, u.ID, k.ID, account.KeySettings{Label: "narrow", Policy: policy, Expiry: expiry}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("RotationCopiesThePolicy", func(t *testing.T) {
		clk.Add(10 * 24 * time.Hour)
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{For: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		// A lifetime chosen at creation counts again from the rotation.
		again := account.Expiry{At: clk.Now().Add(30 * 24 * time.Hour), Lifetime: 30 * 24 * time.Hour}
		same(t, "replacement", repl, policy, again)
		read, _ := s.APIKey(ctx, u.ID, repl.ID)
		same(t, "replacement read", read, policy, again)
		if read.ExpiryLifetime != again.Lifetime || read.Label != "narrow" {
			t.Fatalf("replacement %+v", read)
		}
		if !old.ExpiresAt.Equal(expiry.At) {
			t.Fatal("the rotation moved the old key's own expiry")
		}
		// A date stays the date.
		dated, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t), Expiry: account.Expiry{At: clk.Now().Add(50 * 24 * time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		_, repl, err = s.RotateAPIKey(ctx, u.ID, dated.ID, MustKey(t), account.Grace{})
		if err != nil || !repl.ExpiresAt.Equal(dated.ExpiresAt) || repl.ExpiryLifetime != 0 {
			t.Fatalf("a dated key's replacement expires %v (lifetime %v), want %v: %v", repl.ExpiresAt, repl.ExpiryLifetime, dated.ExpiresAt, err)
		}
	})
	t.Run("ExpiredKeysCantChange", func(t *testing.T) {
		short, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t), Expiry: account.Expiry{At: clk.Now().Add(time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
		if _, err := s.UpdateAPIKeySettings(ctx, u.ID, short.ID, account.KeySettings{Label: "revived"}); !errors.Is(err, account.ErrKeyExpired) {
			t.Fatalf("settings of an expired key: %v", err)
		}
		if _, err := s.SetAPIKeyActive(ctx, u.ID, short.ID, true); !errors.Is(err, account.ErrKeyExpired) {
			t.Fatalf("activating an expired key: %v", err)
		}
	})
}

// testMonthlyBudget: a key's monthly budget holds exactly however many
// renders race (they and the account's other keys spend one balance), and
// starts afresh with the next calendar month (UTC).
func testMonthlyBudget(t *testing.T, h *Harness) {
	ctx := context.Background()
	s, clk := h.Store, h.Clock
	u, _ := renderUser(t, h, 1000)
	k, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t), Policy: account.Policy{Scopes: account.DefaultScopes, MonthlyBudget: 5}})
	if err != nil {
		t.Fatal(err)
	}
	admit := account.RenderAdmission{UserID: u.ID, KeyID: k.ID, RatePerMinute: 1_000_000, MonthlyBudget: 5}
	spend := func(i int, st interface {
		AdmitRender(context.Context, account.RenderAdmission) (account.Reservation, error)
		ChargeRender(context.Context, account.Reservation) (account.Charge, error)
	}) error {
		r, err := st.AdmitRender(ctx, admit)
		if err != nil {
			return err
		}
		_, err = st.ChargeRender(ctx, r)
		return err
	}
	var exhausted *account.BudgetExhaustedError
	var mu sync.Mutex
	budgetRefusal := errors.New("budget")
	asRefusal := func(err error) error {
		var be *account.BudgetExhaustedError
		if errors.As(err, &be) {
			mu.Lock()
			exhausted = be
			mu.Unlock()
			return budgetRefusal
		}
		return err
	}
	all := stores(h, 2)
	if n := race(t, 20, func(i int) error { return asRefusal(spend(i, all[i%2])) }, budgetRefusal); n != 5 {
		t.Fatalf("%d renders admitted on a monthly budget of 5, want exactly 5", n)
	}
	if exhausted == nil || !exhausted.ResetsAt.Equal(account.MonthStart(clk.Now()).AddDate(0, 1, 0)) || exhausted.Budget != 5 {
		t.Fatalf("refusal %+v", exhausted)
	}
	if bal, _ := s.Credits(ctx, u.ID); bal != 995 {
		t.Fatalf("balance %d after 5 renders of 1000", bal)
	}
	keys, _ := s.APIKeys(ctx, u.ID)
	for _, l := range keys {
		if l.ID == k.ID && l.SpentThisMonth != 5 {
			t.Fatalf("the list says %d spent this month", l.SpentThisMonth)
		}
	}
	if one, err := s.APIKey(ctx, u.ID, k.ID); err != nil || one.SpentThisMonth != 5 {
		t.Fatalf("the key alone says %d spent this month, %v", one.SpentThisMonth, err)
	}
	t.Run("ReservationsCount", func(t *testing.T) {
		// A budget with renders in flight: their reservations count.
		other, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		a := account.RenderAdmission{UserID: u.ID, KeyID: other.ID, RatePerMinute: 1_000_000, MonthlyBudget: 2}
		r1, err1 := s.AdmitRender(ctx, a)
		_, err2 := s.AdmitRender(ctx, a)
		_, err3 := s.AdmitRender(ctx, a)
		if err1 != nil || err2 != nil || !errors.As(err3, &exhausted) {
			t.Fatalf("a budget of 2 with 2 in flight: %v %v %v", err1, err2, err3)
		}
		if err := s.ReleaseRender(ctx, r1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdmitRender(ctx, a); err != nil {
			t.Fatalf("after a release: %v", err)
		}
	})
	t.Run("NewMonth", func(t *testing.T) {
		// The last second of the month still counts in it.
		next := account.MonthStart(clk.Now()).AddDate(0, 1, 0)
		clk.Add(next.Sub(clk.Now()) - time.Second)
		if err := spend(0, s); !errors.As(err, &exhausted) {
			t.Fatalf("the month's last second: %v", err)
		}
		clk.Add(time.Second)
		for i := range 5 {
			if err := spend(i, s); err != nil {
				t.Fatalf("render %d of the new month: %v", i, err)
			}
		}
		if err := spend(5, s); !errors.As(err, &exhausted) {
			t.Fatalf("the sixth of the new month: %v", err)
		}
		keys, _ := s.APIKeys(ctx, u.ID)
		for _, l := range keys {
			if l.ID == k.ID && l.SpentThisMonth != 5 {
				t.Fatalf("the new month's list says %d spent", l.SpentThisMonth)
			}
		}
		if one, _ := s.APIKey(ctx, u.ID, k.ID); one.SpentThisMonth != 5 {
			t.Fatalf("the new month's key says %d spent", one.SpentThisMonth)
		}
	})
	AssertLedgerBalanced(t, s)
}
