package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
)

func newCoupon(t testing.TB, s store.Coupons, nc account.NewCoupon) account.Coupon {
	t.Helper()
	c, err := s.CreateCoupon(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameCoupon compares coupons with times compared as instants.
func sameCoupon(a, b account.Coupon) bool {
	return a.ID == b.ID && a.Code == b.Code && a.Credits == b.Credits && a.MaxRedemptions == b.MaxRedemptions &&
		a.Redemptions == b.Redemptions && a.ExpiresAt.Equal(b.ExpiresAt) && a.DisabledAt.Equal(b.DisabledAt) &&
		a.CreatedAt.Equal(b.CreatedAt)
}

// couponSnapshot is everything a redemption may change, to prove a
// refused one changed nothing.
type couponSnapshot struct {
	credits     int64
	ledgerRows  int
	redemptions int64 // the coupon's counter
	history     int   // the user's redemptions
}

func snapCoupon(t testing.TB, s store.Store, userID int64, code string) couponSnapshot {
	t.Helper()
	ctx := context.Background()
	var sn couponSnapshot
	var err error
	if sn.credits, err = s.Credits(ctx, userID); err != nil {
		t.Fatal(err)
	}
	led, err := s.Ledger(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	sn.ledgerRows = len(led)
	hist, err := s.Redemptions(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	sn.history = len(hist)
	cs, err := s.Coupons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Code == account.NormalizeCouponCode(code) {
			sn.redemptions = c.Redemptions
		}
	}
	return sn
}

func testCoupons(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	expires := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := s.CreateCoupon(ctx, account.NewCoupon{Code: "  welcome-50 ", Credits: 50, MaxRedemptions: 10, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Stored", func(t *testing.T) {
		if c.ID == 0 || c.Code != "WELCOME-50" || c.Credits != 50 || c.MaxRedemptions != 10 || c.Redemptions != 0 ||
			!c.ExpiresAt.Equal(expires) || !c.DisabledAt.IsZero() || !c.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("%+v", c)
		}
		if c.Status(clk.Now()) != account.CouponActive {
			t.Fatalf("status %v", c.Status(clk.Now()))
		}
		list, err := s.Coupons(ctx)
		if err != nil || len(list) != 1 || !sameCoupon(list[0], c) {
			t.Fatalf("list %+v %v, want %+v", list, err, c)
		}
	})
	t.Run("ErrCouponExists", func(t *testing.T) {
		for _, code := range []string{"WELCOME-50", "Welcome-50", " welcome-50"} {
			if _, err := s.CreateCoupon(ctx, account.NewCoupon{Code: code, Credits: 1}); !errors.Is(err, account.ErrCouponExists) {
				t.Fatalf("%q: %v", code, err)
			}
		}
	})
	t.Run("ErrCouponInvalid", func(t *testing.T) {
		for name, nc := range map[string]account.NewCoupon{
			"EmptyCode":       {Code: "  ", Credits: 1},
			"LongCode":        {Code: strings.Repeat("A", account.MaxCouponCodeLen+1), Credits: 1},
			"SpaceInCode":     {Code: "TWO WORDS", Credits: 1},
			"NonASCIICode":    {Code: "CAFÉ", Credits: 1},
			"ControlInCode":   {Code: "A\x00B", Credits: 1},
			"ZeroCredits":     {Code: "ZERO", Credits: 0},
			"NegativeCredits": {Code: "NEG", Credits: -5},
			"HugeCredits":     {Code: "HUGE", Credits: account.MaxCouponCredits + 1},
			"NegativeMax":     {Code: "MAX", Credits: 1, MaxRedemptions: -1},
		} {
			t.Run(name, func(t *testing.T) {
				if _, err := s.CreateCoupon(ctx, nc); !errors.Is(err, account.ErrCouponInvalid) {
					t.Fatalf("err = %v", err)
				}
			})
		}
		if list, _ := s.Coupons(ctx); len(list) != 1 {
			t.Fatalf("%d coupons stored", len(list))
		}
	})
	t.Run("LongestCode", func(t *testing.T) {
		if _, err := s.CreateCoupon(ctx, account.NewCoupon{Code: strings.Repeat("z", account.MaxCouponCodeLen), Credits: account.MaxCouponCredits}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ListNewestFirst", func(t *testing.T) {
		list, _ := s.Coupons(ctx)
		if len(list) != 2 || list[0].Code != strings.Repeat("Z", account.MaxCouponCodeLen) || list[1].Code != "WELCOME-50" {
			t.Fatalf("%+v", list)
		}
	})
	t.Run("Disable", func(t *testing.T) {
		newCoupon(t, s, account.NewCoupon{Code: "SPRING", Credits: 5})
		got, err := s.DisableCoupon(ctx, " spring ")
		if err != nil || got.Code != "SPRING" || !got.DisabledAt.Equal(clk.Now()) || got.Status(clk.Now()) != account.CouponDisabled {
			t.Fatalf("%+v %v", got, err)
		}
		t.Run("Idempotent", func(t *testing.T) {
			clk.Add(time.Hour)
			again, err := s.DisableCoupon(ctx, "SPRING")
			if err != nil || !again.DisabledAt.Equal(got.DisabledAt) {
				t.Fatalf("second disable moved the time: %+v %v", again, err)
			}
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			if _, err := s.DisableCoupon(ctx, "NOPE"); !errors.Is(err, account.ErrNotFound) {
				t.Fatalf("err = %v", err)
			}
		})
		t.Run("Listed", func(t *testing.T) {
			list, _ := s.Coupons(ctx)
			if len(list) != 3 || list[0].Code != "SPRING" || !list[0].DisabledAt.Equal(got.DisabledAt) {
				t.Fatalf("%+v", list)
			}
		})
	})
}

// testRedeemCoupon covers every outcome of a redemption; each refused one
// must leave the balance, the ledger, the coupon and the history as they
// were.
func testRedeemCoupon(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	now := clk.Now()
	newCoupon(t, s, account.NewCoupon{Code: "WELCOME", Credits: 500})
	newCoupon(t, s, account.NewCoupon{Code: "ONCE", Credits: 7, MaxRedemptions: 1})
	newCoupon(t, s, account.NewCoupon{Code: "SOON", Credits: 3, ExpiresAt: now.Add(time.Hour)})
	newCoupon(t, s, account.NewCoupon{Code: "GONE", Credits: 3, ExpiresAt: now})
	newCoupon(t, s, account.NewCoupon{Code: "OFF", Credits: 3})
	if _, err := s.DisableCoupon(ctx, "OFF"); err != nil {
		t.Fatal(err)
	}
	alice, bob := NewUser(t, s), NewUser(t, s)

	t.Run("Success", func(t *testing.T) {
		c, balance, err := s.RedeemCoupon(ctx, alice.ID, "  welcome ")
		if err != nil {
			t.Fatal(err)
		}
		if c.Code != "WELCOME" || c.Credits != 500 || c.Redemptions != 1 || balance != account.SignupCredits+500 {
			t.Fatalf("coupon %+v balance %d", c, balance)
		}
		if got, _ := s.Credits(ctx, alice.ID); got != balance {
			t.Fatalf("stored balance %d, returned %d", got, balance)
		}
		led, _ := s.Ledger(ctx, alice.ID)
		if len(led) != 2 || led[1].Delta != 500 || led[1].Reason != "coupon" || !led[1].CreatedAt.Equal(now) {
			t.Fatalf("ledger %+v", led)
		}
		hist, _ := s.Redemptions(ctx, alice.ID)
		if len(hist) != 1 || hist[0].Code != "WELCOME" || hist[0].Credits != 500 || !hist[0].CreatedAt.Equal(now) {
			t.Fatalf("history %+v", hist)
		}
		if hist, _ := s.Redemptions(ctx, bob.ID); len(hist) != 0 {
			t.Fatalf("bob's history shows alice's redemption: %+v", hist)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("ExpiresAtIsExclusive", func(t *testing.T) {
		// SOON works until one second before its expiry.
		clk.Add(time.Hour - time.Second)
		defer clk.Add(-(time.Hour - time.Second))
		if _, _, err := s.RedeemCoupon(ctx, alice.ID, "soon"); err != nil {
			t.Fatalf("a second before expiry: %v", err)
		}
	})
	t.Run("HistoryNewestFirst", func(t *testing.T) {
		hist, _ := s.Redemptions(ctx, alice.ID)
		if len(hist) != 2 || hist[0].Code != "SOON" || hist[1].Code != "WELCOME" {
			t.Fatalf("history %+v", hist)
		}
	})
	if _, _, err := s.RedeemCoupon(ctx, bob.ID, "ONCE"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		user account.User
		code string
		want error
		at   time.Duration // clock offset
	}{
		{"ErrCouponUnknown", alice, "NOSUCHCODE", account.ErrCouponUnknown, 0},
		{"ErrCouponUnknownEmpty", alice, "   ", account.ErrCouponUnknown, 0},
		{"ErrCouponDisabled", alice, "off", account.ErrCouponDisabled, 0},
		{"ErrCouponExpiredAtTheInstant", alice, "GONE", account.ErrCouponExpired, 0},
		{"ErrCouponExpiredLater", bob, "SOON", account.ErrCouponExpired, time.Hour},
		{"ErrCouponExhausted", alice, "ONCE", account.ErrCouponExhausted, 0},
		{"ErrCouponRedeemed", alice, "WELCOME", account.ErrCouponRedeemed, 0},
		{"ErrCouponRedeemedOtherCase", alice, "Welcome", account.ErrCouponRedeemed, 0},
		{"ErrCouponRedeemedBeatsExhausted", bob, "once", account.ErrCouponRedeemed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.Add(tc.at)
			defer clk.Add(-tc.at)
			before := snapCoupon(t, s, tc.user.ID, tc.code)
			c, balance, err := s.RedeemCoupon(ctx, tc.user.ID, tc.code)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if c != (account.Coupon{}) || balance != 0 {
				t.Fatalf("a refusal returned coupon %+v balance %d", c, balance)
			}
			if after := snapCoupon(t, s, tc.user.ID, tc.code); after != before {
				t.Fatalf("a refused redemption changed %+v into %+v", before, after)
			}
		})
	}
	t.Run("UnknownUser", func(t *testing.T) {
		if _, _, err := s.RedeemCoupon(ctx, 987654, "WELCOME"); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("a missing user redeeming: %v, want ErrNotFound", err)
		}
		if c := snapCoupon(t, s, alice.ID, "WELCOME"); c.redemptions != 1 {
			t.Fatalf("failed redemption counted: %d", c.redemptions)
		}
	})
	AssertLedgerBalanced(t, s)
}

// testRedeemCouponRace: max_redemptions is never exceeded, and a user
// redeems a coupon once, however many requests arrive at the same moment
// on however many servers.
func testRedeemCouponRace(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	ss := stores(h, 2)
	t.Run("FiftyUsersMaxTen", func(t *testing.T) {
		c := newCoupon(t, s, account.NewCoupon{Code: "TEN", Credits: 25, MaxRedemptions: 10})
		users := make([]account.User, 50)
		for i := range users {
			users[i] = NewUser(t, s)
		}
		ok := race(t, len(users), func(i int) error {
			_, _, err := ss[i%len(ss)].RedeemCoupon(ctx, users[i].ID, "ten")
			return err
		}, account.ErrCouponExhausted)
		if ok != 10 {
			t.Fatalf("%d redemptions succeeded over %d stores, want exactly 10", ok, len(ss))
		}
		if got := snapCoupon(t, s, users[0].ID, c.Code).redemptions; got != 10 {
			t.Fatalf("coupon counter %d", got)
		}
		var credited int
		for _, u := range users {
			switch bal, _ := s.Credits(ctx, u.ID); bal {
			case account.SignupCredits + 25:
				credited++
			case account.SignupCredits:
			default:
				t.Fatalf("user %d has %d credits", u.ID, bal)
			}
		}
		if credited != 10 {
			t.Fatalf("%d users credited", credited)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("OneUserTwentyTimes", func(t *testing.T) {
		newCoupon(t, s, account.NewCoupon{Code: "JUSTONCE", Credits: 40})
		u := NewUser(t, s)
		ok := race(t, 20, func(i int) error {
			_, _, err := ss[i%len(ss)].RedeemCoupon(ctx, u.ID, "JustOnce")
			return err
		}, account.ErrCouponRedeemed)
		if ok != 1 {
			t.Fatalf("%d redemptions succeeded, want exactly 1", ok)
		}
		if bal, _ := s.Credits(ctx, u.ID); bal != account.SignupCredits+40 {
			t.Fatalf("balance %d", bal)
		}
		if hist, _ := s.Redemptions(ctx, u.ID); len(hist) != 1 {
			t.Fatalf("%d history rows", len(hist))
		}
		AssertLedgerBalanced(t, s)
	})
}

// testLedgerInvariant: every change of a balance is a ledger row written
// with it, so a balance always equals its ledger sum and never goes below
// zero, while sign-ups, coupons and renders race on two servers.
func testLedgerInvariant(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	ss := stores(h, 2)
	newCoupon(t, s, account.NewCoupon{Code: "BOOST", Credits: 3, MaxRedemptions: 5})
	newCoupon(t, s, account.NewCoupon{Code: "FOREVER", Credits: 1})
	// Each user starts with a few credits (the rest spent, with its
	// ledger row) and renders until nothing is left.
	const credits = 12
	users := make([]account.User, 8)
	keys := make([]account.APIKey, len(users))
	for i := range users {
		users[i], keys[i] = renderUser(t, h, credits)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, u := range users {
		wg.Go(func() {
			<-start
			st := ss[i%len(ss)]
			for j := range credits + 20 {
				r, err := st.AdmitRender(ctx, admission(u, keys[i]))
				switch {
				case errors.Is(err, account.ErrInsufficientCredits):
				case err != nil:
					t.Error(err)
				case j%7 == 3: // a failed render
					if err := st.ReleaseRender(ctx, r); err != nil {
						t.Error(err)
					}
				default:
					if _, err := st.ChargeRender(ctx, r); err != nil {
						t.Error(err)
					}
				}
				if j == i {
					for _, code := range []string{"BOOST", "FOREVER", "BOOST"} {
						_, _, err := st.RedeemCoupon(ctx, u.ID, code)
						if err != nil && !errors.Is(err, account.ErrCouponExhausted) && !errors.Is(err, account.ErrCouponRedeemed) {
							t.Error(err)
						}
					}
				}
			}
		})
	}
	wg.Go(func() {
		<-start
		for i := range 10 {
			if _, err := ss[i%len(ss)].CreateUser(ctx, account.NewUser{Email: fmt.Sprintf("racer%d@example.com", i), PasswordHash: "h"}); err != nil {
				t.Error(err)
			}
		}
	})
	close(start)
	wg.Wait()
	AssertLedgerBalanced(t, s)
	if n, _ := s.LiveReservations(ctx); n != 0 {
		t.Fatalf("%d reservations left", n)
	}

	var boosted int
	for _, u := range users {
		led, err := s.Ledger(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var sum, renders int64
		reasons := map[string]int{}
		for _, e := range led {
			sum += e.Delta
			if e.Reason == "render" && e.Delta == -1 {
				renders++
			}
			reasons[e.Reason]++
			if sum < 0 {
				t.Fatalf("user %d's running balance went to %d at ledger row %d", u.ID, sum, e.ID)
			}
		}
		bal, _ := s.Credits(ctx, u.ID)
		if bal != sum || bal < 0 {
			t.Fatalf("user %d: balance %d, ledger sum %d", u.ID, bal, sum)
		}
		coupons := reasons["coupon"]
		if reasons["signup"] != 1 || coupons < 1 || coupons > 2 {
			t.Fatalf("user %d: ledger reasons %v", u.ID, reasons)
		}
		boosted += coupons - 1
		// Every credit granted was spent: the loop outlasts the balance.
		if bal != 0 || renders != credits+1+int64(3*(coupons-1)) {
			t.Fatalf("user %d: balance %d after %d renders, reasons %v", u.ID, bal, renders, reasons)
		}
	}
	if boosted != 5 {
		t.Fatalf("BOOST credited %d users, its limit is 5", boosted)
	}
	t.Run("DeletedUserTakesLedger", func(t *testing.T) {
		if err := s.DeleteUser(ctx, users[0].ID); err != nil {
			t.Fatal(err)
		}
		if led, _ := s.Ledger(ctx, users[0].ID); len(led) != 0 {
			t.Fatalf("%d ledger rows outlived the account", len(led))
		}
		AssertLedgerBalanced(t, s)
		// The deleted user's redemption still counts against the limit.
		if n := h.Int(t, `SELECT redemptions FROM coupons WHERE code = 'BOOST'`); n != 5 {
			t.Fatalf("BOOST counter %d after an account deletion", n)
		}
	})
}
