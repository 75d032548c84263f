package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
)

func (e *testEnv) coupon(nc account.NewCoupon) account.Coupon {
	e.t.Helper()
	c, err := e.store.CreateCoupon(context.Background(), nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// couponState is everything a redemption may change for a user.
type couponState struct {
	credits int64
	ledger  int
	history int
}

func stateOf(t *testing.T, e *testEnv, email string) couponState {
	t.Helper()
	ctx := context.Background()
	u := userOf(t, e, email)
	led, err := e.store.Ledger(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := e.store.Redemptions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return couponState{credits: u.Credits, ledger: len(led), history: len(hist)}
}

func TestCouponsPage(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	t.Run("FullPage", func(t *testing.T) {
		r := b.get("/account/coupons")
		expectStatus(t, r, http.StatusOK)
		if !isFullPage(r.body) {
			t.Fatal("direct load is not a full page")
		}
		d := r.doc(t)
		if cur, _ := d.Find(`#account-tabs a[aria-current="page"]`).Attr("href"); cur != "/account/coupons" {
			t.Fatalf("active tab %q", cur)
		}
		f := d.Find(`form[data-testid="redeem-form"]`)
		if f.AttrOr("action", "") != "/account/coupons/redeem" || f.AttrOr("hx-post", "") != "/account/coupons/redeem" || f.AttrOr("method", "") != "post" {
			t.Fatal("redeem form does not post to /account/coupons/redeem, with and without htmx")
		}
		if f.Find(`input[name="code"]`).Length() != 1 || f.Find(`input[name="_csrf"]`).AttrOr("value", "") != b.csrf {
			t.Fatal("no code input or CSRF token")
		}
		if d.Find(`label[for="coupon-code"]`).Length() != 1 {
			t.Fatal("code input has no label")
		}
		if d.Find(`[data-testid="redemptions-empty"]`).Length() != 1 {
			t.Fatal("no empty history")
		}
		if got := d.Find(`[data-testid="credit-balance-value"]`).Text(); got != "100" {
			t.Fatalf("balance chip %q", got)
		}
	})
	t.Run("HTMXPartial", func(t *testing.T) {
		r := b.get("/account/coupons", "HX-Request", "true")
		expectStatus(t, r, http.StatusOK)
		if isFullPage(r.body) || r.doc(t).Find(`#coupons-panel`).Length() != 1 {
			t.Fatal("htmx tab load is not the panel")
		}
	})
}

func TestRedeemCoupon(t *testing.T) {
	e := newTestEnv(t)
	e.coupon(account.NewCoupon{Code: "WELCOME", Credits: 500})
	e.coupon(account.NewCoupon{Code: "SPRING", Credits: 1})

	t.Run("HTMX", func(t *testing.T) {
		b, email := e.signUp()
		r := b.htmx(http.MethodPost, "/account/coupons/redeem", url.Values{"code": {"  welcome "}})
		expectStatus(t, r, http.StatusOK)
		if isFullPage(r.body) {
			t.Fatal("htmx answered with a full page")
		}
		d := r.doc(t)
		if got := d.Find(`[data-testid="redeem-success"]`).Text(); !strings.Contains(got, "500 credits added with WELCOME") || !strings.Contains(got, "balance is now 600 credits") {
			t.Fatalf("success message %q", got)
		}
		chip := d.Find(`#credit-balance[hx-swap-oob]`)
		if chip.Length() != 1 || chip.Find(`[data-testid="credit-balance-value"]`).Text() != "600" {
			t.Fatalf("balance chip not updated out of band:\n%.2000s", r.body)
		}
		if got := d.Find(`#coupons-panel [data-testid="coupons-balance"]`).Text(); got != "600 credits" {
			t.Fatalf("panel balance %q", got)
		}
		rows := d.Find(`[data-testid="redemption-row"]`)
		if rows.Length() != 1 || rows.Find(`[data-testid="redemption-code"]`).Text() != "WELCOME" || rows.Find(`[data-testid="redemption-credits"]`).Text() != "+500" {
			t.Fatalf("history %q", rows.Text())
		}
		if !strings.Contains(rows.Text(), e.clock.Now().UTC().Format("2 Jan 2006")) {
			t.Fatalf("history row has no date: %q", rows.Text())
		}
		if v := d.Find(`input[name="code"]`).AttrOr("value", "x"); v != "" {
			t.Fatalf("input not cleared after success: %q", v)
		}
		if st := stateOf(t, e, email); st != (couponState{credits: 600, ledger: 2, history: 1}) {
			t.Fatalf("stored %+v", st)
		}
		led, _ := e.store.Ledger(context.Background(), userOf(t, e, email).ID)
		if led[1].Reason != "coupon" || led[1].Delta != 500 {
			t.Fatalf("ledger %+v", led)
		}
	})
	t.Run("PlainPostRedirects", func(t *testing.T) {
		b, email := e.signUp()
		r := b.post("/account/coupons/redeem", url.Values{"code": {"Spring"}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/coupons" {
			t.Fatalf("%d %s", r.StatusCode, r.Header.Get("Location"))
		}
		d := b.get("/account/coupons").doc(t)
		if got := d.Find(`[data-testid="toast"]`).Text(); !strings.Contains(got, "1 credit added with SPRING") || !strings.Contains(got, "101 credits") {
			t.Fatalf("flash %q", got)
		}
		if got := d.Find(`[data-testid="credit-balance-value"]`).Text(); got != "101" {
			t.Fatalf("balance chip %q", got)
		}
		if d.Find(`[data-testid="redemption-row"]`).Length() != 1 {
			t.Fatal("no history row")
		}
		if st := stateOf(t, e, email); st.credits != 101 {
			t.Fatalf("stored %+v", st)
		}
	})
	t.Run("HistoryNewestFirst", func(t *testing.T) {
		b, _ := e.signUp()
		expectStatus(t, b.htmx(http.MethodPost, "/account/coupons/redeem", url.Values{"code": {"spring"}}), http.StatusOK)
		e.clock.Add(time.Hour)
		r := b.htmx(http.MethodPost, "/account/coupons/redeem", url.Values{"code": {"welcome"}})
		codes := r.doc(t).Find(`[data-testid="redemption-code"]`).Map(func(_ int, s *goquery.Selection) string { return s.Text() })
		if strings.Join(codes, ",") != "WELCOME,SPRING" {
			t.Fatalf("history order %v", codes)
		}
	})
}

func TestRedeemCouponRefused(t *testing.T) {
	e := newTestEnv(t)
	now := e.clock.Now()
	e.coupon(account.NewCoupon{Code: "WELCOME", Credits: 500})
	e.coupon(account.NewCoupon{Code: "ONCE", Credits: 5, MaxRedemptions: 1})
	e.coupon(account.NewCoupon{Code: "OLD", Credits: 5, ExpiresAt: now.Add(-time.Second)})
	e.coupon(account.NewCoupon{Code: "RETIRED", Credits: 5})
	if _, err := e.store.DisableCoupon(context.Background(), "RETIRED"); err != nil {
		t.Fatal(err)
	}
	first, _ := e.signUp()
	expectStatus(t, first.post("/account/coupons/redeem", url.Values{"code": {"ONCE"}}), http.StatusSeeOther)
	b, email := e.signUp()
	expectStatus(t, b.post("/account/coupons/redeem", url.Values{"code": {"WELCOME"}}), http.StatusSeeOther)
	b.get("/account/coupons")

	seen := map[string]string{}
	for _, tc := range []struct{ name, code, msg string }{
		{"Unknown", "NOPE", "There's no coupon with the code “NOPE”"},
		{"Disabled", "retired", "The coupon “RETIRED” is no longer valid."},
		{"Expired", "old", "The coupon “OLD” has expired."},
		{"Exhausted", "once", "The coupon “ONCE” has been fully redeemed"},
		{"AlreadyRedeemed", " Welcome ", "You've already redeemed “WELCOME”."},
		{"Empty", "   ", "Enter a coupon code."},
		{"TooLong", strings.Repeat("A", 65), "at most 64 characters"},
		{"ControlCharacter", "WEL\x00COME", "control characters"},
		{"LineBreak", "WEL\nCOME", "control characters"},
		{"InvalidUTF8", "WEL\xffCOME", "valid text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := stateOf(t, e, email)
			refusedBothWays(t, b, "/account/coupons/redeem", url.Values{"code": {tc.code}}, func(htmx bool, r response) {
				d := r.doc(t)
				msg := strings.TrimSpace(d.Find(`[data-testid="redeem-error"]`).Text())
				if !strings.Contains(msg, tc.msg) {
					t.Fatalf("htmx=%v: message %q, want %q", htmx, msg, tc.msg)
				}
				if d.Find(`[data-testid="redeem-success"]`).Length() != 0 || d.Find(`#credit-balance[hx-swap-oob]`).Length() != 0 {
					t.Fatal("a refusal claims success or updates the balance")
				}
				if d.Find(`#coupon-code[aria-invalid="true"]`).Length() != 1 {
					t.Fatal("input not marked invalid")
				}
				if prev, ok := seen[msg]; ok && prev != tc.name && tc.name != "LineBreak" {
					t.Fatalf("%s and %s get the same message %q", prev, tc.name, msg)
				}
				seen[msg] = tc.name
			})
			if after := stateOf(t, e, email); after != before {
				t.Fatalf("a refused redemption changed %+v into %+v", before, after)
			}
		})
	}
	t.Run("TypedCodeKept", func(t *testing.T) {
		r := b.htmx(http.MethodPost, "/account/coupons/redeem", url.Values{"code": {" welcom "}})
		if v := r.doc(t).Find(`#coupon-code`).AttrOr("value", ""); v != "welcom" {
			t.Fatalf("typed code not kept for correction: %q", v)
		}
	})
	if bad, err := e.store.LedgerMismatches(context.Background()); err != nil || len(bad) > 0 {
		t.Fatalf("ledger %v %v", bad, err)
	}
}

// TestRedeemCouponDoubleSubmit: one user firing the same code from many
// tabs at once gets the credits once; the rest are told it was redeemed.
func TestRedeemCouponDoubleSubmit(t *testing.T) {
	e := newTestEnv(t)
	e.coupon(account.NewCoupon{Code: "DOUBLE", Credits: 50})
	b, email := e.signUp()
	var wg sync.WaitGroup
	statuses := make(chan int, 10)
	for range 10 {
		wg.Go(func() {
			form := url.Values{"code": {"DOUBLE"}, "_csrf": {b.csrf}}
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/account/coupons/redeem", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("HX-Request", "true")
			req.Header.Set("X-CSRF-Token", b.csrf)
			res, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusOK] != 1 || counts[http.StatusUnprocessableEntity] != 9 {
		t.Fatalf("statuses %v, want one 200 and nine 422", counts)
	}
	if st := stateOf(t, e, email); st != (couponState{credits: 150, ledger: 2, history: 1}) {
		t.Fatalf("stored %+v", st)
	}
}
