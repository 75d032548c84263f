package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newCoupon(t testing.TB, s *Store, nc NewCoupon) Coupon {
	t.Helper()
	c, err := s.CreateCoupon(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameCoupon compares coupons with times compared as instants.
func sameCoupon(a, b Coupon) bool {
	return a.ID == b.ID && a.Code == b.Code && a.Credits == b.Credits && a.MaxRedemptions == b.MaxRedemptions &&
		a.Redemptions == b.Redemptions && a.ExpiresAt.Equal(b.ExpiresAt) && a.DisabledAt.Equal(b.DisabledAt) &&
		a.CreatedAt.Equal(b.CreatedAt)
}

// snapshot is everything a redemption may change, to prove a refused one
// changed nothing.
type snapshot struct {
	credits     int64
	ledgerRows  int
	redemptions int64 // the coupon's counter
	history     int   // the user's redemptions
}

func snap(t testing.TB, s *Store, userID int64, code string) snapshot {
	t.Helper()
	ctx := context.Background()
	var sn snapshot
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
		if c.Code == NormalizeCouponCode(code) {
			sn.redemptions = c.Redemptions
		}
	}
	return sn
}

func TestCreateCoupon(t *testing.T) {
	s, clk := openTest(t)
	ctx := context.Background()
	expires := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := s.CreateCoupon(ctx, NewCoupon{Code: "  welcome-50 ", Credits: 50, MaxRedemptions: 10, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Stored", func(t *testing.T) {
		if c.Code != "WELCOME-50" || c.Credits != 50 || c.MaxRedemptions != 10 || !c.ExpiresAt.Equal(expires) || !c.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("%+v", c)
		}
		list, err := s.Coupons(ctx)
		if err != nil || len(list) != 1 || !sameCoupon(list[0], c) {
			t.Fatalf("list %+v %v, want %+v", list, err, c)
		}
	})
	t.Run("ErrCouponExists", func(t *testing.T) {
		for _, code := range []string{"WELCOME-50", "Welcome-50", " welcome-50"} {
			if _, err := s.CreateCoupon(ctx, NewCoupon{Code: code, Credits: 1}); !errors.Is(err, ErrCouponExists) {
				t.Fatalf("%q: %v", code, err)
			}
		}
	})
	t.Run("ErrCouponInvalid", func(t *testing.T) {
		for name, nc := range map[string]NewCoupon{
			"EmptyCode":       {Code: "  ", Credits: 1},
			"LongCode":        {Code: strings.Repeat("A", MaxCouponCodeLen+1), Credits: 1},
			"SpaceInCode":     {Code: "TWO WORDS", Credits: 1},
			"NonASCIICode":    {Code: "CAFÉ", Credits: 1},
			"ControlInCode":   {Code: "A\x00B", Credits: 1},
			"ZeroCredits":     {Code: "ZERO", Credits: 0},
			"NegativeCredits": {Code: "NEG", Credits: -5},
			"HugeCredits":     {Code: "HUGE", Credits: MaxCouponCredits + 1},
			"NegativeMax":     {Code: "MAX", Credits: 1, MaxRedemptions: -1},
		} {
			t.Run(name, func(t *testing.T) {
				if _, err := s.CreateCoupon(ctx, nc); !errors.Is(err, ErrCouponInvalid) {
					t.Fatalf("err = %v", err)
				}
			})
		}
		if list, _ := s.Coupons(ctx); len(list) != 1 {
			t.Fatalf("%d coupons stored", len(list))
		}
	})
	t.Run("LongestCode", func(t *testing.T) {
		if _, err := s.CreateCoupon(ctx, NewCoupon{Code: strings.Repeat("z", MaxCouponCodeLen), Credits: MaxCouponCredits}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ListNewestFirst", func(t *testing.T) {
		list, _ := s.Coupons(ctx)
		if len(list) != 2 || list[0].Code != strings.Repeat("Z", MaxCouponCodeLen) || list[1].Code != "WELCOME-50" {
			t.Fatalf("%+v", list)
		}
	})
}

func TestDisableCoupon(t *testing.T) {
	s, clk := openTest(t)
	ctx := context.Background()
	newCoupon(t, s, NewCoupon{Code: "SPRING", Credits: 5})
	got, err := s.DisableCoupon(ctx, " spring ")
	if err != nil || got.DisabledAt.IsZero() || !got.DisabledAt.Equal(clk.Now()) {
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
		if _, err := s.DisableCoupon(ctx, "NOPE"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestRedeemCoupon covers every outcome of a redemption; each refused one
// must leave the balance, the ledger, the coupon and the history as they were.
func TestRedeemCoupon(t *testing.T) {
	s, clk := openTest(t)
	ctx := context.Background()
	now := clk.Now()
	newCoupon(t, s, NewCoupon{Code: "WELCOME", Credits: 500})
	newCoupon(t, s, NewCoupon{Code: "ONCE", Credits: 7, MaxRedemptions: 1})
	newCoupon(t, s, NewCoupon{Code: "SOON", Credits: 3, ExpiresAt: now.Add(time.Hour)})
	newCoupon(t, s, NewCoupon{Code: "GONE", Credits: 3, ExpiresAt: now})
	newCoupon(t, s, NewCoupon{Code: "OFF", Credits: 3})
	if _, err := s.DisableCoupon(ctx, "OFF"); err != nil {
		t.Fatal(err)
	}
	alice, bob := newUser(t, s), newUser(t, s)

	t.Run("Success", func(t *testing.T) {
		c, balance, err := s.RedeemCoupon(ctx, alice.ID, "  welcome ")
		if err != nil {
			t.Fatal(err)
		}
		if c.Code != "WELCOME" || c.Credits != 500 || c.Redemptions != 1 || balance != SignupCredits+500 {
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
		assertLedgerBalanced(t, s)
	})
	t.Run("ExpiresAtIsExclusive", func(t *testing.T) {
		// SOON works until one second before its expiry.
		clk.Add(time.Hour - time.Second)
		defer clk.Add(-(time.Hour - time.Second))
		if _, _, err := s.RedeemCoupon(ctx, alice.ID, "soon"); err != nil {
			t.Fatalf("a second before expiry: %v", err)
		}
	})
	if _, _, err := s.RedeemCoupon(ctx, bob.ID, "ONCE"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		user User
		code string
		want error
		at   time.Duration // clock offset
	}{
		{"ErrCouponUnknown", alice, "NOSUCHCODE", ErrCouponUnknown, 0},
		{"ErrCouponUnknownEmpty", alice, "   ", ErrCouponUnknown, 0},
		{"ErrCouponDisabled", alice, "off", ErrCouponDisabled, 0},
		{"ErrCouponExpiredAtTheInstant", alice, "GONE", ErrCouponExpired, 0},
		{"ErrCouponExpiredLater", bob, "SOON", ErrCouponExpired, time.Hour},
		{"ErrCouponExhausted", alice, "ONCE", ErrCouponExhausted, 0},
		{"ErrCouponRedeemed", alice, "WELCOME", ErrCouponRedeemed, 0},
		{"ErrCouponRedeemedOtherCase", alice, "Welcome", ErrCouponRedeemed, 0},
		{"ErrCouponRedeemedBeatsExhausted", bob, "once", ErrCouponRedeemed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.Add(tc.at)
			defer clk.Add(-tc.at)
			before := snap(t, s, tc.user.ID, tc.code)
			c, balance, err := s.RedeemCoupon(ctx, tc.user.ID, tc.code)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if c != (Coupon{}) || balance != 0 {
				t.Fatalf("a refusal returned coupon %+v balance %d", c, balance)
			}
			if after := snap(t, s, tc.user.ID, tc.code); after != before {
				t.Fatalf("a refused redemption changed %+v into %+v", before, after)
			}
		})
	}
	t.Run("UnknownUser", func(t *testing.T) {
		if _, _, err := s.RedeemCoupon(ctx, 987654, "WELCOME"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a missing user redeeming: %v, want ErrNotFound", err)
		}
		if c := snap(t, s, alice.ID, "WELCOME"); c.redemptions != 1 {
			t.Fatalf("failed redemption counted: %d", c.redemptions)
		}
	})
	assertLedgerBalanced(t, s)
}

// TestRedeemCouponRace: max_redemptions is never exceeded, and a user
// redeems a coupon once, however many requests arrive at the same moment.
func TestRedeemCouponRace(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()

	// race runs fn from n goroutines released together and counts outcomes.
	race := func(t *testing.T, n int, fn func(i int) error, refusal error) (ok int64) {
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
		return wins.Load()
	}

	t.Run("FiftyUsersMaxTen", func(t *testing.T) {
		c := newCoupon(t, s, NewCoupon{Code: "TEN", Credits: 25, MaxRedemptions: 10})
		users := make([]User, 50)
		for i := range users {
			users[i] = newUser(t, s)
		}
		ok := race(t, len(users), func(i int) error {
			_, _, err := s.RedeemCoupon(ctx, users[i].ID, "ten")
			return err
		}, ErrCouponExhausted)
		if ok != 10 {
			t.Fatalf("%d redemptions succeeded, want exactly 10", ok)
		}
		if got := snap(t, s, users[0].ID, c.Code).redemptions; got != 10 {
			t.Fatalf("coupon counter %d", got)
		}
		var credited int
		for _, u := range users {
			switch bal, _ := s.Credits(ctx, u.ID); bal {
			case SignupCredits + 25:
				credited++
			case SignupCredits:
			default:
				t.Fatalf("user %d has %d credits", u.ID, bal)
			}
		}
		if credited != 10 {
			t.Fatalf("%d users credited", credited)
		}
		assertLedgerBalanced(t, s)
	})
	t.Run("OneUserTwentyTimes", func(t *testing.T) {
		newCoupon(t, s, NewCoupon{Code: "JUSTONCE", Credits: 40})
		u := newUser(t, s)
		ok := race(t, 20, func(int) error {
			_, _, err := s.RedeemCoupon(ctx, u.ID, "JustOnce")
			return err
		}, ErrCouponRedeemed)
		if ok != 1 {
			t.Fatalf("%d redemptions succeeded, want exactly 1", ok)
		}
		if bal, _ := s.Credits(ctx, u.ID); bal != SignupCredits+40 {
			t.Fatalf("balance %d", bal)
		}
		if hist, _ := s.Redemptions(ctx, u.ID); len(hist) != 1 {
			t.Fatalf("%d history rows", len(hist))
		}
		assertLedgerBalanced(t, s)
	})
	t.Run("TwoProcessesOneFile", func(t *testing.T) {
		// The server and the operator's CLI (or two servers) open the same
		// file: the limit holds across connections, not only within one.
		other, err := Open(ctx, s.Path(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		newCoupon(t, s, NewCoupon{Code: "SHARED", Credits: 2, MaxRedemptions: 10})
		users := make([]User, 40)
		for i := range users {
			users[i] = newUser(t, s)
		}
		ok := race(t, len(users), func(i int) error {
			st := s
			if i%2 == 1 {
				st = other
			}
			_, _, err := st.RedeemCoupon(ctx, users[i].ID, "SHARED")
			return err
		}, ErrCouponExhausted)
		if ok != 10 {
			t.Fatalf("%d redemptions succeeded across two stores, want exactly 10", ok)
		}
		assertLedgerBalanced(t, s)
	})
}

// TestLedgerInvariant: every change of a balance is a ledger row written
// with it, so a balance always equals its ledger sum and never goes below
// zero, while sign-ups, coupons and renders race.
func TestLedgerInvariant(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	newCoupon(t, s, NewCoupon{Code: "BOOST", Credits: 3, MaxRedemptions: 5})
	newCoupon(t, s, NewCoupon{Code: "FOREVER", Credits: 1})
	users := make([]User, 8)
	for i := range users {
		users[i] = newUser(t, s)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, u := range users {
		wg.Go(func() {
			<-start
			for j := range SignupCredits + 20 {
				if _, err := s.ChargeRender(ctx, u.ID, 0); err != nil && !errors.Is(err, ErrInsufficientCredits) {
					t.Error(err)
				}
				if j == i*3 {
					for _, code := range []string{"BOOST", "FOREVER", "BOOST"} {
						_, _, err := s.RedeemCoupon(ctx, u.ID, code)
						if err != nil && !errors.Is(err, ErrCouponExhausted) && !errors.Is(err, ErrCouponRedeemed) {
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
			email := "racer" + string(rune('a'+i)) + "@example.com"
			if _, err := s.CreateUser(ctx, NewUser{Email: email, PasswordHash: "h"}); err != nil {
				t.Error(err)
			}
		}
	})
	close(start)
	wg.Wait()
	assertLedgerBalanced(t, s)

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
			reasons[e.Reason]++
			if e.Reason == "render" {
				renders++
				if e.Delta != -1 {
					t.Fatalf("render delta %d", e.Delta)
				}
			}
			if sum < 0 {
				t.Fatalf("user %d's running balance went to %d at ledger row %d", u.ID, sum, e.ID)
			}
		}
		bal, _ := s.Credits(ctx, u.ID)
		if bal != sum || bal < 0 {
			t.Fatalf("user %d: balance %d, ledger sum %d", u.ID, bal, sum)
		}
		if reasons["signup"] != 1 || reasons["coupon"] < 1 || reasons["coupon"] > 2 {
			t.Fatalf("user %d: ledger reasons %v", u.ID, reasons)
		}
		boosted += reasons["coupon"] - 1
		// Every credit granted was spent: the loop outlasts the balance.
		if bal != 0 || renders != SignupCredits+1+int64(3*(reasons["coupon"]-1)) {
			t.Fatalf("user %d: balance %d after %d renders, reasons %v", u.ID, bal, renders, reasons)
		}
	}
	if boosted != 5 {
		t.Fatalf("BOOST credited %d users, its limit is 5", boosted)
	}
	t.Run("SchemaRefusesNegative", func(t *testing.T) {
		if _, err := s.write.Exec(`UPDATE users SET credits = credits - 1 WHERE id = ?`, users[0].ID); err == nil || !isCheckViolation(err) {
			t.Fatalf("schema allowed a negative balance: %v", err)
		}
	})
	t.Run("DeletedUserTakesLedger", func(t *testing.T) {
		if err := s.DeleteUser(ctx, users[0].ID); err != nil {
			t.Fatal(err)
		}
		if led, _ := s.Ledger(ctx, users[0].ID); len(led) != 0 {
			t.Fatalf("%d ledger rows outlived the account", len(led))
		}
		assertLedgerBalanced(t, s)
		// The deleted user's redemption still counts against the limit.
		var redeemed int64
		s.read.QueryRow(`SELECT redemptions FROM coupons WHERE code = 'BOOST'`).Scan(&redeemed)
		if redeemed != 5 {
			t.Fatalf("BOOST counter %d after an account deletion", redeemed)
		}
	})
}

func TestCreatedOnlyOnFirstOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created() {
		t.Fatal("a new database is not reported as created")
	}
	s.Close()
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Created() {
		t.Fatal("an existing database is reported as created")
	}
}
