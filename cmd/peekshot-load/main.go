// Command peekshot-load measures PeekShot on loopback, in one run (make
// load): the throughput and latency of GET /healthz (the ceiling) and of
// GET /api/v1/me with a valid key, the server's memory at rest and after
// 10,000 and 100,000 API requests, and the rendering of one fixed HTML
// document through the API next to the same render done directly with
// chromedp. It starts bin/peekshot serve on a temporary database and a free
// port, signs up and creates a key through the real forms, and prints a
// table with each figure beside its target (docs/performance.md explains
// them).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peekshot-load:", err)
		os.Exit(1)
	}
}

// settings are the knobs of a run; the defaults keep it under two minutes.
type settings struct {
	bin         string        // the server binary
	chrome      string        // Chromium, for the server and the direct renders
	conns       int           // connections of the HTTP phases
	duration    time.Duration // time on each HTTP endpoint (three rounds)
	memRequests int           // /me requests of the memory phase
	renders     int           // renders of each one-at-a-time phase
	renderPause time.Duration // idle time between those renders
	renderFor   time.Duration // length of each render throughput phase
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var s settings
	flags := flag.NewFlagSet("peekshot-load", flag.ContinueOnError)
	flags.StringVar(&s.bin, "bin", "bin/peekshot", "the PeekShot binary to start")
	flags.StringVar(&s.chrome, "chrome", envOr("PEEKSHOT_CHROME", "/usr/bin/chromium"), "Chromium binary")
	flags.IntVar(&s.conns, "conns", 64, "connections for the HTTP phases")
	flags.DurationVar(&s.duration, "duration", 6*time.Second, "time spent on each HTTP endpoint, in three rounds")
	flags.IntVar(&s.memRequests, "mem-requests", 100_000, "API requests of the memory phase (RSS is also read at a tenth)")
	flags.IntVar(&s.renders, "renders", 30, "renders of each one-at-a-time render phase")
	flags.DurationVar(&s.renderPause, "render-pause", 500*time.Millisecond, "idle time between one-at-a-time renders")
	flags.DurationVar(&s.renderFor, "render-duration", 8*time.Second, "length of each render throughput phase")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}

	srv, err := startServer(ctx, s.bin, s.chrome)
	if err != nil {
		return err
	}
	defer srv.stop()
	r := &report{out: stdout}
	r.header(srv)

	// At rest: Chromium has started (it is a separate process, not counted)
	// and nothing has been asked yet.
	time.Sleep(2 * time.Second)
	idle, err := srv.rss()
	if err != nil {
		return err
	}
	key, err := srv.signUpWithKey()
	if err != nil {
		return fmt.Errorf("create an account and a key: %w", err)
	}

	// Memory: RSS after a tenth of the requests and after all of them.
	me := getRequest(srv.url+"/api/v1/me", key)
	tenth, err := srv.rssAfter(ctx, me, s.conns, s.memRequests/10)
	if err != nil {
		return err
	}
	all, err := srv.rssAfter(ctx, me, s.conns, s.memRequests-s.memRequests/10)
	if err != nil {
		return err
	}

	// Throughput: the ceiling and the authenticated endpoint, in alternating
	// rounds, so that a passing disturbance of the machine weighs on both.
	health, meRes, err := srv.httpRounds(ctx, getRequest(srv.url+"/healthz", ""), me, s)
	if err != nil {
		return err
	}
	r.http(s, health, meRes)
	r.memory(s, idle, tenth, all)

	// Rendering through PeekShot, then directly.
	if err := srv.addCredits(ctx); err != nil {
		return fmt.Errorf("add credits for the renders: %w", err)
	}
	api := renderRequest(srv.url, key)
	peek, err := renderPhases(ctx, s, func(ctx context.Context) error { return api.do(ctx) })
	if err != nil {
		return fmt.Errorf("renders through PeekShot: %w", err)
	}
	direct, err := newDirectRenderer(ctx, srv, s.chrome)
	if err != nil {
		return fmt.Errorf("start the direct renderer: %w", err)
	}
	defer direct.close()
	straight, err := renderPhases(ctx, s, direct.render)
	if err != nil {
		return fmt.Errorf("direct renders: %w", err)
	}
	r.renders(s, peek, straight, direct.version)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
