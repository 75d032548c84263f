package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
)

// testPaidLinks: a signed link costs one credit in its lifetime, however
// often and on however many servers it renders, racing or not; a link
// paid for needs no credit, no budget and no reservation, but keeps to
// the key's rate limit; expired links are forgotten.
func testPaidLinks(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	link := func(b byte, life time.Duration) *account.PaidLink {
		return &account.PaidLink{ID: [32]byte{b, 0xa5}, Expires: clk.Now().Add(life)}
	}
	withLink := func(a account.RenderAdmission, l *account.PaidLink) account.RenderAdmission {
		a.Link = l
		return a
	}
	render := func(t *testing.T, st interface {
		AdmitRender(context.Context, account.RenderAdmission) (account.Reservation, error)
	}, a account.RenderAdmission) account.Reservation {
		t.Helper()
		r, err := st.AdmitRender(ctx, a)
		if err != nil {
			t.Fatalf("admission: %v", err)
		}
		return r
	}
	charge := func(t *testing.T, r account.Reservation, wantBalance int64, wantCharged bool) {
		t.Helper()
		ch, err := s.ChargeRender(ctx, r)
		if err != nil || ch.Balance != wantBalance || ch.Charged != wantCharged {
			t.Fatalf("charge: %+v %v, want balance %d, charged %v", ch, err, wantBalance, wantCharged)
		}
	}
	spent := func(t *testing.T, k account.APIKey) int64 {
		t.Helper()
		return h.Int(t, `SELECT coalesce(sum(credits), 0) FROM key_usage_days WHERE api_key_id = ?`, k.ID)
	}

	t.Run("OnceInItsLifetime", func(t *testing.T) {
		u, k := renderUser(t, h, 3)
		l := link(1, time.Hour)
		r := render(t, s, withLink(admission(u, k), l))
		if r.Free || r.ID == 0 {
			t.Fatalf("the first render of a link: %+v", r)
		}
		charge(t, r, 2, true)
		ledger, _ := s.Ledger(ctx, u.ID)
		for range 3 {
			r := render(t, s, withLink(admission(u, k), l))
			if !r.Free {
				t.Fatalf("a link paid for is charged again: %+v", r)
			}
			if n, _ := s.LiveReservations(ctx); n != 0 {
				t.Fatalf("a paid link reserved %d credits", n)
			}
			charge(t, r, 2, false)
		}
		// A failed render of a paid link has nothing to give back.
		if err := s.ReleaseRender(ctx, render(t, s, withLink(admission(u, k), l))); err != nil {
			t.Fatal(err)
		}
		if after, _ := s.Ledger(ctx, u.ID); len(after) != len(ledger) {
			t.Fatalf("%d ledger rows after free renders, %d before", len(after), len(ledger))
		}
		if n := spent(t, k); n != 1 {
			t.Fatalf("the key spent %d credits", n)
		}
		// Another link, even of the same key, is another image.
		charge(t, render(t, s, withLink(admission(u, k), link(2, time.Hour))), 1, true)
		// So is another key's link with the same id.
		k2, _ := NewKey(t, s, u.ID, "other")
		charge(t, render(t, s, withLink(admission(u, k2), l)), 0, true)
		AssertLedgerBalanced(t, s)
	})
	t.Run("NeedsNoCreditOrBudgetOncePaid", func(t *testing.T) {
		u, k := renderUser(t, h, 1)
		l := link(3, time.Hour)
		a := withLink(admission(u, k), l)
		a.MonthlyBudget = 1
		charge(t, render(t, s, a), 0, true)
		if _, err := s.AdmitRender(ctx, withLink(a, link(4, time.Hour))); !errors.As(err, new(*account.BudgetExhaustedError)) {
			t.Fatalf("a new link over the budget: %v", err)
		}
		a.MonthlyBudget = 0
		if _, err := s.AdmitRender(ctx, withLink(a, link(4, time.Hour))); !errors.Is(err, account.ErrInsufficientCredits) {
			t.Fatalf("a new link on no credit: %v", err)
		}
		a.MonthlyBudget = 1
		charge(t, render(t, s, a), 0, false)
	})
	t.Run("KeepsToTheRateLimit", func(t *testing.T) {
		u, k := renderUser(t, h, 5)
		a := withLink(admission(u, k), link(5, time.Hour))
		a.RatePerMinute = 1
		charge(t, render(t, s, a), 4, true)
		if _, err := s.AdmitRender(ctx, a); !errors.As(err, new(*account.RateLimitedError)) {
			t.Fatalf("a paid link past the rate limit: %v", err)
		}
	})
	t.Run("RacingServersPayOnce", func(t *testing.T) {
		ss := stores(h, 2)
		u, k := renderUser(t, h, 5)
		l := link(6, time.Hour)
		// Both servers admit the link before either has charged it.
		r1 := render(t, ss[0], withLink(admission(u, k), l))
		r2 := render(t, ss[1], withLink(admission(u, k), l))
		if r1.Free || r2.Free {
			t.Fatalf("unpaid link admitted free: %+v %+v", r1, r2)
		}
		if ch, err := ss[1].ChargeRender(ctx, r2); err != nil || !ch.Charged || ch.Balance != 4 {
			t.Fatalf("the first charge: %+v %v", ch, err)
		}
		if ch, err := ss[0].ChargeRender(ctx, r1); err != nil || ch.Charged || ch.Balance != 4 {
			t.Fatalf("the second charge: %+v %v", ch, err)
		}
		if n, _ := s.LiveReservations(ctx); n != 0 {
			t.Fatalf("%d reservations left", n)
		}
		if n := spent(t, k); n != 1 {
			t.Fatalf("the key spent %d credits", n)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("ExpiredLinksAreForgotten", func(t *testing.T) {
		u, k := renderUser(t, h, 5)
		short := link(7, time.Minute)
		charge(t, render(t, s, withLink(admission(u, k), short)), 4, true)
		charge(t, render(t, s, withLink(admission(u, k), link(8, time.Minute))), 3, true)
		clk.Add(2 * time.Minute)
		// Past its expiry a link is unpaid (the web layer refuses it
		// before, as signature_expired); charged again, it is paid for
		// anew, its record taken over.
		r := render(t, s, withLink(admission(u, k), link(7, time.Hour)))
		if r.Free {
			t.Fatalf("an expired link is still paid for: %+v", r)
		}
		charge(t, r, 2, true)
		if r := render(t, s, withLink(admission(u, k), link(7, time.Hour))); !r.Free {
			t.Fatalf("the link charged anew is not paid for: %+v", r)
		}
		// The sweep forgets the expired record, not the live one.
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if n := h.Int(t, `SELECT count(*) FROM signed_link_charges WHERE api_key_id = ?`, k.ID); n != 1 {
			t.Fatalf("%d links kept, want the live one", n)
		}
	})
	t.Run("KeyDeletedMidRender", func(t *testing.T) {
		u, k := renderUser(t, h, 5)
		r := render(t, s, withLink(admission(u, k), link(9, time.Hour)))
		if err := s.DeleteAPIKey(ctx, u.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		charge(t, r, 4, true)
		AssertLedgerBalanced(t, s)
	})
}
