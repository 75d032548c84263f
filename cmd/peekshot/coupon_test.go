package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store/sqlite"
)

// env is a getenv for run: the variables given, nothing else.
func env(vars ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(k string) string { return m[k] }
}

// cli runs the real command in-process against db and returns its output.
func cli(t *testing.T, db string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"coupon"}, args...), env("PEEKSHOT_DB", db), &out, &errOut)
	return out.String(), errOut.String(), err
}

// serverDB creates a database as the server would, and keeps it open (as a
// running server does) until the test ends.
func serverDB(t *testing.T) (string, *sqlite.Store) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "data", "peekshot.db")
	st, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return db, st
}

func couponByCode(t *testing.T, st *sqlite.Store, code string) (account.Coupon, bool) {
	t.Helper()
	list, err := st.Coupons(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Code == code {
			return c, true
		}
	}
	return account.Coupon{}, false
}

func TestCouponCreate(t *testing.T) {
	db, server := serverDB(t)
	ctx := context.Background()
	today := time.Now().UTC().Format(dateLayout)

	t.Run("Unlimited", func(t *testing.T) {
		out, _, err := cli(t, db, "create", "--code", "welcome", "--credits", "500")
		if err != nil {
			t.Fatal(err)
		}
		if want := "Created coupon WELCOME: 500 credits, no limit on redemptions, never expires.\n"; out != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		c, ok := couponByCode(t, server, "WELCOME")
		if !ok || c.Credits != 500 || c.MaxRedemptions != 0 || !c.ExpiresAt.IsZero() {
			t.Fatalf("the server's store sees %+v (found %v)", c, ok)
		}
	})
	t.Run("LimitedAndExpiring", func(t *testing.T) {
		out, _, err := cli(t, db, "create", "-code=Spring-26", "-credits=25", "--max-redemptions", "10", "--expires", "2099-03-31")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "SPRING-26: 25 credits, up to 10 redemptions, works through 2099-03-31 (UTC)") {
			t.Fatalf("output %q", out)
		}
		c, _ := couponByCode(t, server, "SPRING-26")
		// It works through the whole of 31 March, UTC.
		if want := time.Date(2099, 4, 1, 0, 0, 0, 0, time.UTC); !c.ExpiresAt.Equal(want) || c.MaxRedemptions != 10 {
			t.Fatalf("%+v, want expiry %v", c, want)
		}
	})
	t.Run("ExpiresTodayWorksToday", func(t *testing.T) {
		if _, _, err := cli(t, db, "create", "--code", "TODAY", "--credits", "1", "--expires", today); err != nil {
			t.Fatal(err)
		}
		u, err := server.CreateUser(ctx, account.NewUser{Email: "today@example.com", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := server.RedeemCoupon(ctx, u.ID, "today"); err != nil {
			t.Fatalf("a coupon expiring today can't be redeemed today: %v", err)
		}
	})

	before, _ := server.Coupons(ctx)
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"Duplicate", []string{"--code", "WELCOME", "--credits", "5"}, "a coupon with the code WELCOME already exists"},
		{"DuplicateOtherCase", []string{"--code", " Welcome ", "--credits", "5"}, "already exists"},
		{"NoCode", []string{"--credits", "5"}, "--code is required"},
		{"BadCode", []string{"--code", "two words", "--credits", "5"}, `--code "two words" is not a valid code`},
		{"LongCode", []string{"--code", strings.Repeat("A", 65), "--credits", "5"}, "is not a valid code"},
		{"NoCredits", []string{"--code", "X1"}, "--credits is required"},
		{"ZeroCredits", []string{"--code", "X1", "--credits", "0"}, `--credits must be a whole number greater than 0, not "0"`},
		{"NegativeCredits", []string{"--code", "X1", "--credits", "-5"}, "greater than 0"},
		{"WordCredits", []string{"--code", "X1", "--credits", "lots"}, `not "lots"`},
		{"FractionCredits", []string{"--code", "X1", "--credits", "1.5"}, "whole number"},
		{"HugeCredits", []string{"--code", "X1", "--credits", "99999999999"}, "at most 1000000000"},
		{"ZeroMax", []string{"--code", "X1", "--credits", "5", "--max-redemptions", "0"}, "--max-redemptions must be a whole number of at least 1"},
		{"BadDate", []string{"--code", "X1", "--credits", "5", "--expires", "2026-13-01"}, `--expires must be a date like 2026-12-31, not "2026-13-01"`},
		{"OtherDateFormat", []string{"--code", "X1", "--credits", "5", "--expires", "31/12/2026"}, "--expires must be a date like"},
		{"DateWithTime", []string{"--code", "X1", "--credits", "5", "--expires", "2099-01-01T00:00:00Z"}, "--expires must be a date like"},
		{"PastDate", []string{"--code", "X1", "--credits", "5", "--expires", "2020-01-01"}, "--expires 2020-01-01 is in the past"},
		{"UnknownFlag", []string{"--code", "X1", "--credits", "5", "--forever"}, "flag provided but not defined: -forever"},
		{"Positional", []string{"X1", "--credits", "5"}, `unexpected argument "X1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := cli(t, db, append([]string{"create"}, tc.args...)...)
			if err == nil {
				t.Fatalf("accepted; output %q", out)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q, want it to contain %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if out != "" {
				t.Fatalf("a failed create printed %q", out)
			}
		})
	}
	if after, _ := server.Coupons(ctx); len(after) != len(before) {
		t.Fatalf("refused creates stored %d coupons", len(after)-len(before))
	}
}

func TestCouponListAndDisable(t *testing.T) {
	db, server := serverDB(t)
	ctx := context.Background()

	t.Run("Empty", func(t *testing.T) {
		out, _, err := cli(t, db, "list")
		if err != nil || !strings.Contains(out, "No coupons yet") {
			t.Fatalf("%q %v", out, err)
		}
	})
	for _, args := range [][]string{
		{"--code", "WELCOME", "--credits", "500"},
		{"--code", "LAUNCH-WEEK", "--credits", "1000", "--max-redemptions", "2", "--expires", "2099-12-31"},
		{"--code", "OLD", "--credits", "5", "--max-redemptions", "1"},
	} {
		if _, _, err := cli(t, db, append([]string{"create"}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := server.CreateUser(ctx, account.NewUser{Email: "a@example.com", PasswordHash: "h"})
	if _, _, err := server.RedeemCoupon(ctx, u.ID, "launch-week"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.RedeemCoupon(ctx, u.ID, "old"); err != nil {
		t.Fatal(err)
	}

	t.Run("Table", func(t *testing.T) {
		out, _, err := cli(t, db, "list")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		want := [][]string{
			{"CODE", "CREDITS", "REDEEMED/MAX", "EXPIRES", "STATUS"},
			{"OLD", "5", "1/1", "never", "used up"},
			{"LAUNCH-WEEK", "1000", "1/2", "2099-12-31", "active"},
			{"WELCOME", "500", "0/unlimited", "never", "active"},
		}
		if len(lines) != len(want) {
			t.Fatalf("%d lines:\n%s", len(lines), out)
		}
		// Columns are aligned: every column starts at the same offset on every line.
		starts := columnStarts(lines[0])
		for i, line := range lines {
			var cells []string
			for j, s := range starts {
				end := len(line)
				if j+1 < len(starts) {
					end = min(starts[j+1], len(line))
				}
				cells = append(cells, strings.TrimSpace(line[s:end]))
			}
			if strings.Join(cells, "|") != strings.Join(want[i], "|") {
				t.Fatalf("line %d = %q, want cells %q\n%s", i, line, want[i], out)
			}
		}
	})
	t.Run("Disable", func(t *testing.T) {
		out, _, err := cli(t, db, "disable", "welcome")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Coupon WELCOME is disabled") || !strings.HasSuffix(out, "can't be redeemed any more. Nobody had redeemed it.\n") {
			t.Fatalf("output %q", out)
		}
		if _, _, err := server.RedeemCoupon(ctx, u.ID, "WELCOME"); !errors.Is(err, account.ErrCouponDisabled) {
			t.Fatalf("the running server still redeems a disabled coupon: %v", err)
		}
		out, _, _ = cli(t, db, "list")
		if !regexp.MustCompile(`(?m)^WELCOME\s.*\sdisabled$`).MatchString(out) {
			t.Fatalf("list after disable:\n%s", out)
		}
		// Disabling again is harmless.
		if _, _, err := cli(t, db, "disable", "WELCOME"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DisableErrors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			msg  string
		}{
			{[]string{"disable", "NOPE"}, `there is no coupon with the code "NOPE"`},
			{[]string{"disable"}, "give exactly one code"},
			{[]string{"disable", "A", "B"}, "give exactly one code"},
			{[]string{"list", "extra"}, `unexpected argument "extra"`},
			{[]string{"frobnicate"}, `unknown command "frobnicate"`},
			{nil, "say what to do"},
		} {
			if _, _, err := cli(t, db, tc.args...); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.msg)
			}
		}
	})
	t.Run("Help", func(t *testing.T) {
		for _, args := range [][]string{{"help"}, {"create", "-h"}, {"list", "--help"}} {
			out, _, err := cli(t, db, args...)
			if err != nil || !strings.Contains(out, "peekshot coupon create --code CODE --credits N") {
				t.Fatalf("%v: %q %v", args, out, err)
			}
		}
	})
}

// columnStarts finds where each header cell begins.
func columnStarts(header string) []int {
	var starts []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	return starts
}

func TestCouponNeedsExistingDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "typo", "peekshot.db")
	for _, args := range [][]string{{"list"}, {"create", "--code", "A", "--credits", "1"}, {"disable", "A"}} {
		_, _, err := cli(t, db, args...)
		if err == nil || !strings.Contains(err.Error(), "no database at "+db) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Dir(db)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the command created a database where none was")
	}
}

// TestCouponWhileServerWrites runs the CLI while another connection (the
// server) writes to the same file all the time: no "database is locked",
// and both see each other's writes.
func TestCouponWhileServerWrites(t *testing.T) {
	db, server := serverDB(t)
	ctx := context.Background()
	if _, _, err := cli(t, db, "create", "--code", "BUSY", "--credits", "1"); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var writes atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				u, err := server.CreateUser(ctx, account.NewUser{Email: fmt.Sprintf("w%d-%d@example.com", w, i), PasswordHash: "h"})
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := server.RedeemCoupon(ctx, u.ID, "BUSY"); err != nil {
					t.Error(err)
					return
				}
				writes.Add(1)
			}
		})
	}
	for i := range 8 {
		code := fmt.Sprintf("LIVE-%d", i)
		if _, _, err := cli(t, db, "create", "--code", code, "--credits", "3", "--max-redemptions", "5"); err != nil {
			t.Fatalf("create while the server writes: %v", err)
		}
		if out, _, err := cli(t, db, "list"); err != nil || !strings.Contains(out, code) {
			t.Fatalf("list while the server writes: %v\n%s", err, out)
		}
	}
	if _, _, err := cli(t, db, "disable", "LIVE-0"); err != nil {
		t.Fatalf("disable while the server writes: %v", err)
	}
	stop.Store(true)
	wg.Wait()
	if writes.Load() == 0 {
		t.Fatal("the server made no writes during the test")
	}
	if _, ok := couponByCode(t, server, "LIVE-7"); !ok {
		t.Fatal("the server doesn't see the CLI's coupons")
	}
	out, _, _ := cli(t, db, "list")
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^BUSY\s+1\s+%d/unlimited\s`, writes.Load())).MatchString(out) {
		t.Fatalf("the CLI doesn't see the server's %d redemptions:\n%s", writes.Load(), out)
	}
	if bad, err := server.LedgerMismatches(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("ledger %v %v", bad, err)
	}
}

// TestBinary builds the real binary and runs it as an operator would.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "peekshot")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db, server := serverDB(t)
	exe := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "PEEKSHOT_DB="+db)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		// Servers of other tests may run meanwhile: the warning about them
		// is right, and not what this test is about.
		return out.String(), withoutServerWarning(errOut.String()), code
	}

	out, stderr, code := exe("coupon", "create", "--code", "WELCOME", "--credits", "500", "--max-redemptions", "3")
	if code != 0 || !strings.HasPrefix(out, "Created coupon WELCOME") || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if _, ok := couponByCode(t, server, "WELCOME"); !ok {
		t.Fatal("coupon not in the database")
	}
	out, stderr, code = exe("coupon", "create", "--code", "WELCOME", "--credits", "500")
	if code == 0 || out != "" || stderr != "peekshot: coupon create: a coupon with the code WELCOME already exists (codes are case-insensitive); choose another code\n" {
		t.Fatalf("duplicate: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	out, stderr, code = exe("coupon", "list")
	if code != 0 || !strings.Contains(out, "WELCOME") || !strings.Contains(out, "0/3") {
		t.Fatalf("list: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// TestRedeemedText: how often a disabled coupon was redeemed reads as a
// sentence ("It was redeemed never." did not).
func TestRedeemedText(t *testing.T) {
	for n, want := range map[int64]string{0: "Nobody had redeemed it.", 1: "It was redeemed once.", 2: "It was redeemed 2 times.", 1500: "It was redeemed 1500 times."} {
		if got := redeemedText(n); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
}

// withoutServerWarning drops the warning the coupon commands give when a
// server runs on another database.
func withoutServerWarning(stderr string) string {
	var kept []string
	warning := false
	for _, line := range strings.SplitAfter(stderr, "\n") {
		switch {
		case strings.HasPrefix(line, "peekshot: warning: no server is running on"):
			warning = true
		case warning && strings.HasPrefix(line, "  "):
		default:
			warning = false
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}
