package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/peekshot/peekshot/account"
)

const couponUsage = `Usage:
  peekshot coupon create --code CODE --credits N [--max-redemptions N] [--expires YYYY-MM-DD]
  peekshot coupon list
  peekshot coupon disable CODE

Coupons add credits to the accounts that redeem them, once per account.
Codes are case-insensitive: 1 to 64 letters (A-Z), digits, '-' or '_'.
--expires is the last day (UTC) the coupon works.

The commands work on the database in PEEKSHOT_DB (default data/peekshot.db,
relative to the current folder), also while the server runs. Give them the
server's own PEEKSHOT_DB: on another database the server never sees the
coupons. They warn when the only server running uses another database.
`

// dateLayout is how the operator writes and reads expiry dates.
const dateLayout = "2006-01-02"

// coupon runs `peekshot coupon …` on the database the server uses.
func coupon(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("coupon: say what to do: create, list or disable (see peekshot coupon --help)")
	}
	switch args[0] {
	case "create", "list", "disable":
		if cfg.DatabaseURL == "" { // a PostgreSQL database is named, not found
			warnOtherServer(stderr, cfg.DB, runningServers())
		}
	}
	switch args[0] {
	case "create":
		return couponCreate(ctx, cfg, args[1:], stdout)
	case "list":
		return couponList(ctx, cfg, args[1:], stdout)
	case "disable":
		return couponDisable(ctx, cfg, args[1:], stdout)
	}
	return fmt.Errorf("coupon: unknown command %q: use create, list or disable", args[0])
}

// parseFlags parses a subcommand's flags; extra arguments are refused.
// It reports help=true when -h was asked for (the usage is then printed).
func parseFlags(flags *flag.FlagSet, args []string, stdout io.Writer) (help bool, err error) {
	flags.SetOutput(io.Discard)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, couponUsage)
			return true, nil
		}
		return false, fmt.Errorf("coupon %s: %w (see peekshot coupon help)", flags.Name(), err)
	}
	return false, nil
}

func couponCreate(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("create", flag.ContinueOnError)
	code := flags.String("code", "", "the code users type (case-insensitive)")
	credits := flags.String("credits", "", "credits the coupon adds")
	maxRedemptions := flags.String("max-redemptions", "", "how many accounts may redeem it (default: no limit)")
	expires := flags.String("expires", "", "last day it works, YYYY-MM-DD (UTC; default: never)")
	if help, err := parseFlags(flags, args, stdout); help || err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("coupon create: unexpected argument %q: give the code with --code", flags.Arg(0))
	}
	nc, err := newCouponFromFlags(*code, *credits, *maxRedemptions, *expires, time.Now())
	if err != nil {
		return fmt.Errorf("coupon create: %w", err)
	}
	st, err := openDatabase(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.CreateCoupon(ctx, nc)
	if errors.Is(err, account.ErrCouponExists) {
		return fmt.Errorf("coupon create: a coupon with the code %s already exists (codes are case-insensitive); choose another code", nc.Code)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created coupon %s: %s, %s, %s.\n", c.Code, creditsText(c.Credits), limitText(c), expiryText(c))
	return nil
}

// newCouponFromFlags checks what the operator typed, with a message naming
// the flag for each mistake.
func newCouponFromFlags(code, credits, maxRedemptions, expires string, now time.Time) (account.NewCoupon, error) {
	var nc account.NewCoupon
	nc.Code = account.NormalizeCouponCode(code)
	if nc.Code == "" {
		return nc, errors.New("--code is required, e.g. --code WELCOME")
	}
	if account.CheckCouponCode(nc.Code) != nil {
		return nc, fmt.Errorf("--code %q is not a valid code: use 1 to %d letters (A-Z), digits, '-' or '_'", code, account.MaxCouponCodeLen)
	}
	if credits == "" {
		return nc, errors.New("--credits is required: how many credits the coupon adds, e.g. --credits 500")
	}
	n, err := strconv.ParseInt(credits, 10, 64)
	if err != nil || n <= 0 {
		return nc, fmt.Errorf("--credits must be a whole number greater than 0, not %q", credits)
	}
	if n > account.MaxCouponCredits {
		return nc, fmt.Errorf("--credits must be at most %d, not %s", account.MaxCouponCredits, credits)
	}
	nc.Credits = n
	if maxRedemptions != "" {
		m, err := strconv.ParseInt(maxRedemptions, 10, 64)
		if err != nil || m <= 0 {
			return nc, fmt.Errorf("--max-redemptions must be a whole number of at least 1, not %q (leave it out for no limit)", maxRedemptions)
		}
		nc.MaxRedemptions = m
	}
	if expires != "" {
		day, err := time.ParseInLocation(dateLayout, expires, time.UTC)
		if err != nil {
			return nc, fmt.Errorf("--expires must be a date like 2026-12-31, not %q", expires)
		}
		today := now.UTC().Truncate(24 * time.Hour)
		if day.Before(today) {
			return nc, fmt.Errorf("--expires %s is in the past (today is %s UTC), so the coupon could never be redeemed", expires, today.Format(dateLayout))
		}
		// The coupon works through the whole of that day, UTC.
		nc.ExpiresAt = day.AddDate(0, 0, 1)
	}
	return nc, nil
}

func couponList(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("list", flag.ContinueOnError)
	if help, err := parseFlags(flags, args, stdout); help || err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("coupon list: unexpected argument %q", flags.Arg(0))
	}
	st, err := openDatabase(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer st.Close()
	coupons, err := st.Coupons(ctx)
	if err != nil {
		return err
	}
	if len(coupons) == 0 {
		fmt.Fprintln(stdout, "No coupons yet. Create one with: peekshot coupon create --code WELCOME --credits 500")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tCREDITS\tREDEEMED/MAX\tEXPIRES\tSTATUS")
	for _, c := range coupons {
		limit := "unlimited"
		if c.MaxRedemptions > 0 {
			limit = strconv.FormatInt(c.MaxRedemptions, 10)
		}
		expires := "never"
		if !c.ExpiresAt.IsZero() {
			expires = lastDay(c)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%s\t%s\t%s\n", c.Code, c.Credits, c.Redemptions, limit, expires, couponStatus(c, now))
	}
	return tw.Flush()
}

func couponDisable(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("disable", flag.ContinueOnError)
	if help, err := parseFlags(flags, args, stdout); help || err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return errors.New("coupon disable: give exactly one code, e.g. peekshot coupon disable WELCOME")
	}
	code := account.NormalizeCouponCode(flags.Arg(0))
	st, err := openDatabase(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.DisableCoupon(ctx, code)
	if errors.Is(err, account.ErrNotFound) {
		return fmt.Errorf("coupon disable: there is no coupon with the code %q (see peekshot coupon list)", code)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Coupon %s is disabled (since %s) and can't be redeemed any more. %s\n",
		c.Code, c.DisabledAt.UTC().Format("2006-01-02 15:04 UTC"), redeemedText(c.Redemptions))
	return nil
}

func couponStatus(c account.Coupon, now time.Time) string {
	switch c.Status(now) {
	case account.CouponDisabled:
		return "disabled"
	case account.CouponExpired:
		return "expired"
	case account.CouponExhausted:
		return "used up"
	}
	return "active"
}

// lastDay is the last day (UTC) a coupon can be redeemed.
func lastDay(c account.Coupon) string {
	return c.ExpiresAt.Add(-time.Nanosecond).UTC().Format(dateLayout)
}

func creditsText(n int64) string {
	if n == 1 {
		return "1 credit"
	}
	return strconv.FormatInt(n, 10) + " credits"
}

func limitText(c account.Coupon) string {
	switch c.MaxRedemptions {
	case 0:
		return "no limit on redemptions"
	case 1:
		return "1 redemption at most"
	}
	return "up to " + strconv.FormatInt(c.MaxRedemptions, 10) + " redemptions"
}

func expiryText(c account.Coupon) string {
	if c.ExpiresAt.IsZero() {
		return "never expires"
	}
	return "works through " + lastDay(c) + " (UTC)"
}

// redeemedText says how often a coupon was redeemed, as a sentence.
func redeemedText(n int64) string {
	switch n {
	case 0:
		return "Nobody had redeemed it."
	case 1:
		return "It was redeemed once."
	}
	return "It was redeemed " + strconv.FormatInt(n, 10) + " times."
}

// firstStartHint is what serve prints when it created the database, so a
// new operator knows how to hand out credits.
func firstStartHint(cfg config) string {
	env := ""
	switch {
	case cfg.DatabaseURL != "":
		env = "PEEKSHOT_DATABASE_URL=… "
	case cfg.DB != filepath.Join("data", "peekshot.db"):
		env = "PEEKSHOT_DB=" + cfg.DB + " "
	}
	return "No coupons yet. Create one with: " + env + "bin/peekshot coupon create --code WELCOME --credits 500\n"
}
