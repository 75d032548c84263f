// Command peekshot runs the PeekShot server (peekshot serve) and manages
// coupons (peekshot coupon …).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
  peekshot serve                     start the server (configured by PEEKSHOT_* variables)
  peekshot coupon create --code CODE --credits N [--max-redemptions N] [--expires YYYY-MM-DD]
  peekshot coupon list
  peekshot coupon disable CODE
`

// run is the whole program, with its environment passed in so tests can
// run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("missing command")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "serve":
		return serve(ctx, cfg, stdout)
	case "coupon":
		return coupon(ctx, cfg, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
