// Command peekshot-load measures PeekShot on loopback, in one run (make
// load): the throughput and latency of GET /healthz (the ceiling) and of
// GET /api/v1/me with a valid key, the server's memory at rest and after
// 10,000 and 100,000 API requests, the rendering of one fixed HTML document
// through the API next to the same render done directly with chromedp, and
// the peers: PeekShot against today's settings (a second server with
// PEEKSHOT_RENDER_BASELINE=1 on full Chromium), a direct chromedp renderer
// and a Playwright screenshot server, interleaved, on the same HTML and URL
// pages at 1, 2 and 4 clients. It starts bin/peekshot serve on temporary
// databases and free ports, signs up and creates keys through the real
// forms, and prints tables with each figure beside its target
// (docs/performance.md explains them).
//
// peekshot-load serve-direct is the direct chromedp peer's server, which the
// run starts in a process of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peekshot/peekshot/capture"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peekshot-load:", err)
		os.Exit(1)
	}
}

// settings are the knobs of a run; the defaults keep it within about ten
// minutes.
type settings struct {
	bin            string // the server binary
	chrome         string // the browser of the server, the direct renders and the peers
	baselineChrome string // the browser of today's settings
	playwrightDir  string // the Playwright peer (package.json, server.js)
	sections       map[string]bool
	conns          int           // connections of the HTTP phases
	duration       time.Duration // time on each HTTP endpoint (three rounds)
	memRequests    int           // /me requests of the memory phase
	renders        int           // renders of each one-at-a-time phase
	renderPause    time.Duration // idle time between those renders
	renderFor      time.Duration // length of each render throughput phase
	peers          peerSettings
	databaseURL    string // PostgreSQL for the server, instead of a SQLite file
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "serve-direct" {
		flags := flag.NewFlagSet("peekshot-load serve-direct", flag.ContinueOnError)
		chrome := flags.String("chrome", capture.DefaultChromePath(), "browser binary")
		chromeFlags := flags.String("flags", "[]", "the browser's flags, a JSON array of --name or --name=value")
		if err := flags.Parse(args[1:]); err != nil {
			return err
		}
		return serveDirect(ctx, *chrome, *chromeFlags, stdout)
	}
	var s settings
	var sections, clients string
	flags := flag.NewFlagSet("peekshot-load", flag.ContinueOnError)
	flags.StringVar(&s.bin, "bin", "bin/peekshot", "the PeekShot binary to start")
	flags.StringVar(&s.chrome, "chrome", envOr("PEEKSHOT_CHROME", capture.DefaultChromePath()), "browser of PeekShot, the direct renders and the peers")
	flags.StringVar(&s.baselineChrome, "baseline-chrome", capture.FullChromiumPath, "browser of today's settings (the peers' baseline)")
	flags.StringVar(&s.playwrightDir, "playwright-dir", "cmd/peekshot-load/playwright", "the Playwright peer; npm ci installs playwright-core there when it is missing")
	flags.StringVar(&sections, "sections", "http,renders,peers", "sections to run, of http, renders and peers")
	flags.IntVar(&s.conns, "conns", 64, "connections for the HTTP phases")
	flags.DurationVar(&s.duration, "duration", 6*time.Second, "time spent on each HTTP endpoint, in three rounds")
	flags.IntVar(&s.memRequests, "mem-requests", 100_000, "API requests of the memory phase (RSS is also read at a tenth)")
	flags.IntVar(&s.renders, "renders", 30, "renders of each one-at-a-time render phase")
	flags.DurationVar(&s.renderPause, "render-pause", 500*time.Millisecond, "idle time between one-at-a-time renders")
	flags.DurationVar(&s.renderFor, "render-duration", 8*time.Second, "length of each render throughput phase")
	flags.IntVar(&s.peers.rounds, "peers-rounds", 3, "rounds of the peers section")
	flags.DurationVar(&s.peers.each, "peers-duration", 3*time.Second, "back to back renders per contender, page and number of clients, in each round")
	flags.StringVar(&clients, "peers-clients", "1,2,4", "numbers of clients of the peers section")
	flags.StringVar(&s.databaseURL, "database-url", "", "PostgreSQL (postgres://…) for the server instead of a SQLite file in a temporary folder")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}
	s.sections = make(map[string]bool)
	for _, name := range strings.Split(sections, ",") {
		if name != "http" && name != "renders" && name != "peers" {
			return fmt.Errorf("-sections: unknown section %q", name)
		}
		s.sections[name] = true
	}
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-peers-clients: %q is not a number of clients", c)
		}
		s.peers.clients = append(s.peers.clients, n)
	}
	if s.sections["peers"] && (s.peers.rounds < 3 || !slices.Contains(s.peers.clients, 1) || !slices.Contains(s.peers.clients, 2)) {
		return errors.New("the peers section needs at least 3 rounds (-peers-rounds) and 1 and 2 clients (-peers-clients) for its targets")
	}

	srv, err := startServer(ctx, s.bin, s.chrome, s.databaseEnv()...)
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
	if s.sections["http"] {
		if err := httpSection(ctx, s, r, srv, key, idle); err != nil {
			return err
		}
	}
	if err := srv.addCredits(ctx); err != nil {
		return fmt.Errorf("add credits for the renders: %w", err)
	}
	if s.sections["renders"] {
		if err := rendersSection(ctx, s, r, srv, key); err != nil {
			return err
		}
	}
	if s.sections["peers"] {
		if err := peersSection(ctx, s, r, srv, key); err != nil {
			return err
		}
	}
	r.summary()
	return nil
}

// databaseEnv is the environment that puts a server on -database-url:
// every server of the run shares it, and the session secret PostgreSQL
// requires.
func (s settings) databaseEnv() []string {
	if s.databaseURL == "" {
		return nil
	}
	return []string{"PEEKSHOT_DATABASE_URL=" + s.databaseURL, "PEEKSHOT_SESSION_SECRET=peekshot-load-run-session-secret-0123456789"}
}

// httpSection measures memory and HTTP throughput.
func httpSection(ctx context.Context, s settings, r *report, srv *server, key string, idle int64) error {
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
	return nil
}

// rendersSection renders the fixed document through PeekShot, then
// directly.
func rendersSection(ctx context.Context, s settings, r *report, srv *server, key string) error {
	api := renderRequest(srv.url, key)
	peek, err := renderPhases(ctx, s, func(ctx context.Context) error { return api.do(ctx) })
	if err != nil {
		return fmt.Errorf("renders through PeekShot: %w", err)
	}
	flags, err := directFlags(srv.pid())
	if err != nil {
		return err
	}
	direct, err := newDirectRenderer(s.chrome, flags)
	if err != nil {
		return fmt.Errorf("start the direct renderer: %w", err)
	}
	defer direct.close()
	job := renderJob{HTML: fixedDocument, Width: renderWidth, Height: renderHeight}
	straight, err := renderPhases(ctx, s, func(ctx context.Context) error { _, err := direct.render(ctx, job); return err })
	if err != nil {
		return fmt.Errorf("direct renders: %w", err)
	}
	r.renders(s, peek, straight, direct.version)
	return nil
}

// peersSection starts today's settings and the two peers next to srv and
// measures them all.
func peersSection(ctx context.Context, s settings, r *report, srv *server, key string) error {
	base, err := startServer(ctx, s.bin, s.baselineChrome, append(s.databaseEnv(), capture.BaselineEnv+"=1")...)
	if err != nil {
		return fmt.Errorf("today's settings: %w", err)
	}
	defer base.stop()
	baseKey, err := base.signUpWithKey()
	if err != nil {
		return fmt.Errorf("today's settings: create an account and a key: %w", err)
	}
	if err := base.addCredits(ctx); err != nil {
		return fmt.Errorf("today's settings: add credits: %w", err)
	}
	flags, err := directFlags(srv.pid())
	if err != nil {
		return err
	}
	direct, directSrv, err := startDirectPeer(ctx, s.chrome, flags)
	if err != nil {
		return err
	}
	defer directSrv.stop()
	playwright, playwrightSrv, err := startPlaywrightPeer(ctx, s.playwrightDir, s.chrome)
	if err != nil {
		return err
	}
	defer playwrightSrv.stop()

	pageURL, closePages, err := servePages()
	if err != nil {
		return err
	}
	defer closePages()
	pages := []peerPage{
		{"HTML", renderJob{HTML: fixedDocument, Width: renderWidth, Height: renderHeight}},
		{"URL", renderJob{URL: pageURL, Width: renderWidth, Height: renderHeight}},
	}
	today := peekshotContender("today's PeekShot", base, baseKey)
	contenders := []*contender{peekshotContender("PeekShot", srv, key), today, direct, playwright}
	pr, err := runPeers(ctx, s.peers, pages, contenders)
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	r.peers(s.peers, pr)
	r.peerTargets(pr, today.name, direct.name, playwright.name)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
