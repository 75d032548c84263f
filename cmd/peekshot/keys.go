package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/peekshot/peekshot/account"
)

const keysUsage = `Usage:
  peekshot keys list --email EMAIL
  peekshot keys deactivate --id ID

Incident response without a browser: list an account's API keys (masked:
never the key itself), and deactivate one by the id the list shows. Every
running server refuses a deactivated key within a second (403
api_key_inactive). The account's activity log records key.deactivated by
the operator, and its owner can activate the key again in Account → API
Keys: if the key leaked, ask them to rotate or delete it.

Exit status: 0 when the key is deactivated, also when it already was
inactive or has expired (then the message says that nothing changed);
1 when nothing could be done: no such account or key, a bad flag, or no
database.

The commands work on the server's database: PostgreSQL when
PEEKSHOT_DATABASE_URL is set, else the SQLite file in PEEKSHOT_DB (default
data/peekshot.db, relative to the current folder), also while the server
runs.
`

// keys runs `peekshot keys …` on the database the server uses.
func keys(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("keys: say what to do: list or deactivate")
	}
	var run func(context.Context, config, *flag.FlagSet, io.Writer) error
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "list":
		run = keysList(flags.String("email", "", "the account's email"))
	case "deactivate":
		run = keysDeactivate(flags.String("id", "", "the key's id, as peekshot keys list shows it"))
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: unknown command %q: use list or deactivate", args[0])
	}
	flags.SetOutput(io.Discard)
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, keysUsage)
			return nil
		}
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys %s: %w", args[0], err)
	}
	if flags.NArg() > 0 {
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys %s: unexpected argument %q: give it with a flag", args[0], flags.Arg(0))
	}
	if cfg.DatabaseURL == "" { // a PostgreSQL database is named, not found
		warnOtherServer(stderr, cfg.DB, runningServers())
	}
	if err := run(ctx, cfg, flags, stdout); err != nil {
		return fmt.Errorf("keys %s: %w", args[0], err)
	}
	return nil
}

// keysList lists the keys of the account with the email given.
func keysList(email *string) func(context.Context, config, *flag.FlagSet, io.Writer) error {
	return func(ctx context.Context, cfg config, _ *flag.FlagSet, stdout io.Writer) error {
		addr := strings.ToLower(strings.TrimSpace(*email))
		if addr == "" {
			return errors.New("--email is required: whose keys to list, e.g. --email someone@example.com")
		}
		st, err := openDatabase(ctx, cfg, true)
		if err != nil {
			return err
		}
		defer st.Close()
		u, err := st.UserByEmail(ctx, addr)
		if errors.Is(err, account.ErrNotFound) {
			return fmt.Errorf("there is no account with the email %q", addr)
		}
		if err != nil {
			return err
		}
		list, err := st.APIKeys(ctx, u.ID)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintf(stdout, "%s (account %d) has no API keys.\n", u.Email, u.ID)
			return nil
		}
		fmt.Fprintf(stdout, "%s (account %d) has %s; times are UTC.\n\n", u.Email, u.ID, plural(len(list), "API key", "API keys"))
		now := time.Now()
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLABEL\tKEY\tSTATUS\tSCOPES\tCREATED\tLAST USED\tREQUESTS")
		for _, k := range list {
			lastUsed := "never"
			if !k.LastUsedAt.IsZero() {
				lastUsed = minuteText(k.LastUsedAt)
			}
			scopes := make([]string, len(k.Policy.Scopes))
			for i, s := range k.Policy.Scopes {
				scopes[i] = string(s)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", k.ID, labelText(k.Label), k.Masked(), statusText(k, now),
				strings.Join(scopes, ","), minuteText(k.CreatedAt), lastUsed, k.RequestCount)
		}
		return tw.Flush()
	}
}

// keysDeactivate deactivates the key with the id given, whoever owns it,
// as the operator.
func keysDeactivate(id *string) func(context.Context, config, *flag.FlagSet, io.Writer) error {
	return func(ctx context.Context, cfg config, _ *flag.FlagSet, stdout io.Writer) error {
		if *id == "" {
			return errors.New("--id is required: the key's id, as peekshot keys list --email EMAIL shows it")
		}
		keyID, err := strconv.ParseInt(*id, 10, 64)
		if err != nil || keyID <= 0 {
			return fmt.Errorf("--id must be a key's id, a whole number greater than 0, not %q", *id)
		}
		st, err := openDatabase(ctx, cfg, true)
		if err != nil {
			return err
		}
		defer st.Close()
		k, err := st.APIKeyByID(ctx, keyID)
		if errors.Is(err, account.ErrNotFound) {
			return fmt.Errorf("there is no API key with the id %d (it may have been deleted); peekshot keys list --email EMAIL shows an account's keys", keyID)
		}
		if err != nil {
			return err
		}
		owner, err := st.UserByID(ctx, k.UserID)
		if err != nil {
			return err
		}
		which := fmt.Sprintf("Key %d (%s, %s) of %s", k.ID, k.Masked(), labelText(k.Label), owner.Email)
		now := time.Now()
		switch k.Status(now) {
		case account.KeyExpired:
			fmt.Fprintf(stdout, "%s has been expired since %s and is refused for good: nothing changed.\n", which, minuteText(k.EndsAt()))
			return nil
		case account.KeyInactive:
			fmt.Fprintf(stdout, "%s was already deactivated: nothing changed.\n", which)
			return nil
		}
		ctx = account.WithActor(ctx, account.Actor{Kind: account.ActorOperator})
		if _, err := st.SetAPIKeyActive(ctx, k.UserID, k.ID, false); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is deactivated: every running server refuses it within a second (403 api_key_inactive).\n", which)
		fmt.Fprint(stdout, "The account's activity log shows it; the owner can activate it again in Account → API Keys.\n")
		return nil
	}
}

// statusText is a key's status as the list shows it.
func statusText(k account.APIKey, now time.Time) string {
	switch k.Status(now) {
	case account.KeyInactive:
		return "inactive"
	case account.KeyExpiring:
		return "expires " + minuteText(k.ExpiresAt)
	case account.KeyRetiring:
		return "retires " + minuteText(k.RetiresAt)
	case account.KeyExpired:
		return "expired"
	}
	return "active"
}

func minuteText(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

// labelText is a label as a terminal shows it safely: no control
// characters (a label is typed by its owner and could move the cursor or
// break the table), at most 32 characters.
func labelText(label string) string {
	clean := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, label)
	clean = strings.TrimSpace(clean)
	if clean == "" {
		return "(untitled)"
	}
	if r := []rune(clean); len(r) > 32 {
		clean = string(r[:31]) + "…"
	}
	return strconv.Quote(clean)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
