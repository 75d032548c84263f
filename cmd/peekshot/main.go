// Command peekshot runs the PeekShot server (peekshot serve), manages
// coupons (peekshot coupon …) and, for operators, API keys (peekshot
// keys …).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "peekshot:", err)
		os.Exit(1)
	}
}

const usage = `Usage:
  peekshot serve                     start the server (configured by the variables below)
  peekshot coupon create --code CODE --credits N [--max-redemptions N] [--expires YYYY-MM-DD]
  peekshot coupon list
  peekshot coupon disable CODE
  peekshot keys list --email EMAIL   an account's API keys, masked
  peekshot keys deactivate --id ID   turn one off at once, on every server
  peekshot help                      this text; "peekshot COMMAND --help" for one command
`

const serveUsage = `Usage: peekshot serve

Starts the PeekShot server: the dashboard and the API on PEEKSHOT_ADDR, with
its SQLite database at PEEKSHOT_DB, or on PostgreSQL at PEEKSHOT_DATABASE_URL
(created or migrated on start).
It stops gracefully on Ctrl+C or SIGTERM.
`

// envVar is one variable of the environment that configures PeekShot;
// def says its default, read from the configuration an empty environment
// gives, so help can't drift from loadConfig.
type envVar struct {
	name, meaning string
	def           func(config) string
}

var envVars = []envVar{
	{"PEEKSHOT_ADDR", "address to listen on; 0.0.0.0:8080 listens on every interface", func(c config) string { return c.Addr }},
	{"PEEKSHOT_DB", "SQLite database; its folder keeps session.key", func(c config) string { return c.DB }},
	{"PEEKSHOT_DATABASE_URL", "postgres://… puts everything on PostgreSQL instead, for many instances (then PEEKSHOT_SESSION_SECRET is required)", func(config) string { return "unset: SQLite" }},
	{"PEEKSHOT_SESSION_SECRET", "signs sessions and CSRF tokens (at least 32 characters)", func(config) string { return "generated into session.key" }},
	{"PEEKSHOT_CHROME", "Chromium binary used for rendering", func(c config) string { return c.Chrome }},
	{"PEEKSHOT_ALLOW_PRIVATE_TARGETS", "1 lets the API render loopback and private addresses", func(config) string { return "0" }},
	{"PEEKSHOT_RATE_LIMIT", "render requests per key per minute", func(c config) string { return strconv.Itoa(c.RateLimit) }},
	{"PEEKSHOT_RENDER_CONCURRENCY", "renders at the same time", func(c config) string { return strconv.Itoa(c.RenderConcurrency) }},
	{"PEEKSHOT_LOG_FORMAT", "text or json", func(c config) string { return c.LogFormat }},
	{"PEEKSHOT_METRICS_ADDR", "address of a listener of its own for Prometheus metrics at /metrics, e.g. 127.0.0.1:9090", func(config) string { return "unset: off" }},
	{"PEEKSHOT_TRUSTED_PROXIES", "proxies (addresses or CIDR ranges, by commas) whose X-Forwarded-For names the client, for keys' allowed IPs", func(config) string { return "none" }},
	{"PEEKSHOT_SECRET_SCANNING_KEYS", "JSON file of the public keys that sign secret-scanning alerts (GitHub's format), for POST /api/v1/secret-scanning/github", func(config) string { return "unset: alerts refused" }},
}

// writeUsage prints a command's usage and, for the server and the top
// level, the environment variables with their defaults.
func writeUsage(w io.Writer, text string, withEnv bool) {
	fmt.Fprint(w, text)
	if !withEnv {
		return
	}
	defaults, _ := loadConfig(func(string) string { return "" })
	fmt.Fprint(w, "\nEnvironment:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	for _, v := range envVars {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.name, v.def(defaults), v.meaning)
	}
	tw.Flush()
}

// isHelpFlag reports whether an argument is -h, -help or --help.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// asksHelp reports whether a command's arguments ask for help: a help flag
// anywhere before "--", or the word help in one of the first positions
// (peekshot help, peekshot serve help, peekshot coupon create help), where
// it can't be the value of a flag.
func asksHelp(args []string, positions int) bool {
	for i, a := range args {
		if a == "--" {
			return false
		}
		if isHelpFlag(a) || a == "help" && i < positions {
			return true
		}
	}
	return false
}

// run is the whole program, with its environment passed in so tests can
// run it in-process. Help is answered before the configuration is read, so
// it works whatever the environment says and touches nothing.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		writeUsage(stderr, usage, true)
		return fmt.Errorf("missing command")
	}
	if asksHelp(args[:1], 1) {
		writeUsage(stdout, usage, true)
		return nil
	}
	switch args[0] {
	case "serve":
		if asksHelp(args[1:], 1) {
			writeUsage(stdout, serveUsage, true)
			return nil
		}
		if len(args) > 1 {
			return fmt.Errorf("serve: unexpected argument %q: serve is configured by environment variables (see peekshot serve --help)", args[1])
		}
	case "coupon":
		if asksHelp(args[1:], 2) {
			fmt.Fprint(stdout, couponUsage)
			return nil
		}
	case "keys":
		if asksHelp(args[1:], 2) {
			fmt.Fprint(stdout, keysUsage)
			return nil
		}
	default:
		writeUsage(stderr, usage, true)
		return fmt.Errorf("unknown command %q", args[0])
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "serve":
		return serve(ctx, cfg, stdout)
	case "keys":
		return keys(ctx, cfg, args[1:], stdout, stderr)
	}
	return coupon(ctx, cfg, args[1:], stdout, stderr)
}
