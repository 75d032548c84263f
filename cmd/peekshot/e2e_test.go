package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	bt "github.com/peekshot/peekshot/internal/browsertest"
	"github.com/peekshot/peekshot/store/sqlite"
)

// syncBuffer collects what serve writes from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listening = regexp.MustCompile(`msg="PeekShot is listening" addr=(\S+)`)

// startServer runs the real `peekshot serve` in-process on a free loopback
// port with its database at db, and stops it when the test ends. It
// returns the server's base URL and everything it printed.
func startServer(t *testing.T, db string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	getenv := env("PEEKSHOT_DB", db, "PEEKSHOT_ADDR", "127.0.0.1:0", "PEEKSHOT_CHROME", bt.ChromePath())
	go func() { done <- run(ctx, []string{"serve"}, getenv, out, out) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if stopped {
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop within 20 s of its context ending")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			return "http://" + m[1], out
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("serve stopped before listening: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start listening within 30 s:\n%s", out)
		}
	}
}

// firstStartHintFor is what serve prints on a fresh database at db.
func firstStartHintFor(db string) string {
	return "No coupons yet. Create one with: PEEKSHOT_DB=" + db + " bin/peekshot coupon create --code WELCOME --credits 500\n"
}

// TestServeFirstStartHint: serve greets a fresh database with how to create
// a coupon (TestBrowserRedeemCLICoupon checks that on its fresh database),
// and says nothing of it on a database that already existed.
func TestServeFirstStartHint(t *testing.T) {
	t.Run("ExistingDatabase", func(t *testing.T) {
		db, _ := serverDB(t)
		_, out := startServer(t, db)
		if strings.Contains(out.String(), "No coupons yet") {
			t.Fatalf("hint printed for an existing database:\n%s", out)
		}
	})
	t.Run("DefaultPath", func(t *testing.T) {
		got := firstStartHint(config{DB: filepath.Join("data", "peekshot.db")})
		if got != "No coupons yet. Create one with: bin/peekshot coupon create --code WELCOME --credits 500\n" {
			t.Fatalf("%q", got)
		}
	})
}

// TestBrowserRedeemCLICoupon is the coupon story end to end: the operator
// creates a coupon with the real CLI while the real server runs on the same
// database; a new user redeems it in Chromium and sees the balance change
// without a reload, then renames themself and deletes the account.
// PEEKSHOT_SCREENSHOTS=dir keeps a picture of each step.
func TestBrowserRedeemCLICoupon(t *testing.T) {
	db := filepath.Join(t.TempDir(), "data", "peekshot.db")
	base, serverOut := startServer(t, db)
	if !strings.Contains(serverOut.String(), firstStartHintFor(db)) {
		t.Fatalf("no first-start hint on a fresh database:\n%s", serverOut)
	}
	out, _, err := cli(t, db, "create", "--code", "LAUNCH-250", "--credits", "250", "--max-redemptions", "100")
	if err != nil {
		t.Fatalf("coupon create while the server runs: %v", err)
	}
	if !strings.Contains(out, "Created coupon LAUNCH-250") {
		t.Fatalf("create said %q", out)
	}

	shots := os.Getenv("PEEKSHOT_SCREENSHOTS")
	pg := bt.NewPage(t)
	ctx := pg.Ctx
	step, text, eval := pg.Step, pg.Text, pg.Eval
	noSidewaysScroll := func() {
		t.Helper()
		if wide := eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); wide != "0" {
			t.Fatalf("the page scrolls sideways by %spx", wide)
		}
	}
	const email, password = "ada@example.com", "correct horse battery"

	step("sign up",
		chromedp.Navigate(base+"/signup"),
		bt.Type(`#f-email`, email),
		bt.Type(`#f-name`, "Ada"),
		bt.Type(`#f-password`, password),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
	)
	step("open Redeem Coupon",
		bt.Click(`[data-testid="tab-coupons"]`),
		bt.WaitVisible(`[data-testid="redemptions-empty"]`),
		bt.Screenshot(shots, "coupons"),
	)
	if got := text(`[data-testid="credit-balance-value"]`); got != "100" {
		t.Fatalf("balance before redeeming: %q", got)
	}
	// A marker on the window: it survives only if the page is never reloaded.
	eval(`window.__sameDocument = "yes"`)

	step("redeem the CLI's coupon",
		bt.Type(`[data-testid="coupon-code"]`, " launch-250 "),
		bt.Click(`[data-testid="redeem-submit"]`),
		bt.WaitVisible(`[data-testid="redeem-success"]`),
		bt.Until(`document.querySelector('[data-testid="credit-balance-value"]').textContent === '350'`),
		bt.Screenshot(shots, "coupons-redeemed"),
	)
	if got := text(`[data-testid="redeem-success"]`); got != "250 credits added with LAUNCH-250. Your balance is now 350 credits." {
		t.Fatalf("success message %q", got)
	}
	if eval(`String(window.__sameDocument)`) != "yes" {
		t.Fatal("the page reloaded to show the new balance")
	}
	if got := text(`[data-testid="redemption-row"] [data-testid="redemption-code"]`); got != "LAUNCH-250" {
		t.Fatalf("history row code %q", got)
	}
	if got := text(`[data-testid="redemption-row"] [data-testid="redemption-credits"]`); got != "+250" {
		t.Fatalf("history row credits %q", got)
	}

	step("redeem it again",
		bt.Type(`[data-testid="coupon-code"]`, "LAUNCH-250"),
		bt.Click(`[data-testid="redeem-submit"]`),
		bt.WaitVisible(`[data-testid="redeem-error"]`),
		bt.Screenshot(shots, "coupons-error"),
	)
	if got := text(`[data-testid="redeem-error"]`); !strings.Contains(got, "already redeemed") {
		t.Fatalf("second redemption says %q", got)
	}
	if got := text(`[data-testid="credit-balance-value"]`); got != "350" {
		t.Fatalf("balance after a refused redemption: %q", got)
	}
	step("phone width", chromedp.EmulateViewport(390, 844), bt.WaitVisible(`[data-testid="redemption-row"]`), bt.Screenshot(shots, "coupons-phone"))
	noSidewaysScroll()
	step("desktop width", chromedp.EmulateViewport(1280, 900))

	step("open Profile",
		bt.Click(`[data-testid="tab-profile"]`),
		bt.WaitVisible(`[data-testid="profile-panel"]`),
	)
	if got := text(`[data-testid="profile-credits"]`); got != "350" {
		t.Fatalf("profile credits %q", got)
	}
	eval(`document.getElementById('f-name').value = ""`)
	step("change the name",
		bt.Type(`#f-name`, "Ada Lovelace"),
		bt.Click(`[data-testid="name-submit"]`),
		bt.Until(`document.querySelector('[data-testid="profile-name"]').textContent.trim() === 'Ada Lovelace'`),
		bt.Until(`[...document.querySelectorAll('[data-testid="toast"]')].some(t => t.textContent.includes('Ada Lovelace'))`),
		bt.Screenshot(shots, "profile"),
	)
	if eval(`String(window.__sameDocument)`) != "yes" {
		t.Fatal("the page reloaded to change the name")
	}
	step("profile on a phone", chromedp.EmulateViewport(390, 844), bt.WaitVisible(`[data-testid="danger-zone"]`), bt.Screenshot(shots, "profile-phone"))
	noSidewaysScroll()
	step("desktop width again", chromedp.EmulateViewport(1280, 900))

	step("a wrong password deletes nothing",
		bt.Type(`[data-testid="delete-password"]`, "not my password"),
		bt.Click(`[data-testid="delete-account-submit"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Click(`[data-testid="confirm-ok"]`),
		bt.WaitVisible(`[data-testid="error-delete"]`),
		bt.Screenshot(shots, "profile-delete-refused"),
	)
	if got := text(`[data-testid="error-delete"]`); !strings.Contains(got, "incorrect") {
		t.Fatalf("wrong password says %q", got)
	}
	step("delete asks first",
		bt.Type(`[data-testid="delete-password"]`, password),
		bt.Click(`[data-testid="delete-account-submit"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Screenshot(shots, "profile-confirm-delete"),
	)
	if got := text(`#confirm-body`); !strings.Contains(got, email) || !strings.Contains(got, "350 credits") {
		t.Fatalf("dialog says %q", got)
	}
	step("delete the account", bt.Click(`[data-testid="confirm-ok"]`))
	step("land on sign-up", bt.WaitVisible(`[data-testid="signup-form"]`), bt.WaitVisible(`[data-testid="toast"]`))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != base+"/signup" {
		t.Fatalf("after deletion the browser is at %s", loc)
	}
	if got := text(`[data-testid="toast"]`); !strings.Contains(got, "Your account was deleted") {
		t.Fatalf("after deletion: %q", got)
	}
	st, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.UserByEmail(context.Background(), email); err == nil {
		t.Fatal("the account is still in the database")
	}
	if list, _ := st.Coupons(context.Background()); len(list) != 1 || list[0].Redemptions != 1 {
		t.Fatalf("coupon after the story: %+v", list)
	}
}
