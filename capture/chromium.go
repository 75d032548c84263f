package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The browsers PeekShot renders with by default, in order of preference
// (SPEC §5). Debian's chromium-headless-shell is the old headless shell,
// without the browser UI that full Chromium runs even when headless: a
// render costs it less than half the CPU. Its real binary is used, because
// the /usr/bin/chromium-headless-shell script starts it without exec, so
// stopping the script would leave the browser running.
const (
	HeadlessShellPath = "/usr/lib/chromium/chromium-headless-shell"
	FullChromiumPath  = "/usr/bin/chromium"
)

// DefaultChromePath is the browser Config.ChromePath defaults to:
// chromium-headless-shell where it is installed, else chromium.
func DefaultChromePath() string {
	if st, err := os.Stat(HeadlessShellPath); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return HeadlessShellPath
	}
	return FullChromiumPath
}

// BaselineEnv set to 1 makes New render with Config.Baseline.
const BaselineEnv = "PEEKSHOT_RENDER_BASELINE"

// Defaults of Config.
const (
	DefaultConcurrency       = 2
	DefaultTimeout           = 30 * time.Second
	DefaultMaxJobsPerBrowser = 500
	// DefaultUnresponsiveAfter is how long a page's main thread may go
	// without answering before the job is stopped (ErrPageUnresponsive):
	// far longer than any task of a page that means to finish, and well
	// before DefaultTimeout.
	DefaultUnresponsiveAfter = 8 * time.Second
)

const (
	// browserStartTimeout bounds one Chromium start.
	browserStartTimeout = 30 * time.Second
	// slowTabOpen is how long opening a tab may take before the browser is
	// considered stuck and replaced.
	slowTabOpen = 10 * time.Second
)

// Config configures Chromium.
type Config struct {
	ChromePath        string        // default DefaultChromePath()
	Concurrency       int           // concurrent renders, default 2
	QueueSize         int           // jobs that may wait for a slot, default 8×Concurrency; beyond that ErrBusy
	AccountQueueSize  int           // jobs one account (Job.Account) may have waiting, default QueueSize/4; beyond that ErrAccountBusy
	Timeout           time.Duration // per job, counting queue wait and render, default 30s
	UnresponsiveAfter time.Duration // stop a page whose main thread does not answer for this long, default 8s
	MaxJobsPerBrowser int           // restart Chromium after this many jobs, default 500
	Guard             *Guard        // SSRF guard, required
	Logger            *slog.Logger  // default: discard

	// Baseline renders with the settings before issue 10 (a spare renderer
	// process kept warm; the browser's own favicon fetch waited for before
	// the capture), so that the load run can compare them with today's in
	// one run (with PEEKSHOT_CHROME=/usr/bin/chromium for the browser of
	// then). New also sets it when PEEKSHOT_RENDER_BASELINE=1, which is how
	// the load run asks bin/peekshot for it. Not for production.
	Baseline bool
}

// Chromium renders jobs with one long-lived headless Chromium, a new tab (in
// its own browser context) per job, a fixed number of render slots and a
// bounded queue that is fair between accounts (see queue). It restarts the
// browser when it crashes and after MaxJobsPerBrowser jobs. It is safe for
// concurrent use.
type Chromium struct {
	cfg   Config
	log   *slog.Logger
	proxy *proxy

	queue *queue // the render slots and the jobs waiting for them

	stop           chan struct{}   // closed by Close: queued jobs give up
	shutdown       context.Context // canceled when Close stops waiting for jobs
	cancelShutdown context.CancelFunc

	mu       sync.Mutex
	closed   bool
	cur      *chromiumProcess          // takes new jobs; nil while none runs
	starting chan struct{}             // non-nil while a browser starts; closed when done
	startErr error                     // error of the last start
	browsers map[*chromiumProcess]bool // every browser process not yet stopped
	starts   int                       // browsers started so far
	workDir  string                    // this process's Chromium files (see workdir.go)
	version  string                    // product and version of the last browser started
	sandbox  bool                      // start Chromium with its sandbox
	jobs     sync.WaitGroup            // Render calls in flight
	warmed   *sync.Cond                // signalled when a tab opened ahead of demand is done
	bg       sync.WaitGroup            // starts, watchers, retirements, late tab closes
}

// chromiumProcess is one Chromium process and the chromedp context that drives it.
type chromiumProcess struct {
	ctx         context.Context // chromedp browser context; done when the browser stops
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	session     *chromedp.Browser
	pid         int
	dir         string // its profile and TMPDIR, removed when it stops

	// Guarded by Chromium.mu.
	jobs     int    // jobs started on it
	inflight int    // jobs running on it
	retiring bool   // takes no new jobs; stops when inflight reaches 0
	stopping bool   // stopped on purpose, not crashed
	warm     []*tab // tabs opened ahead of demand (see warm.go)
	warming  int    // tabs being opened ahead of demand

	releaseOnce sync.Once
}

// lost reports whether the connection to the browser process is gone.
func (b *chromiumProcess) lost() bool {
	select {
	case <-b.session.LostConnection:
		return true
	case <-b.ctx.Done():
		return true
	default:
		return false
	}
}

// release kills the process (if it still runs), waits for it and removes its
// profile and temporary files.
func (b *chromiumProcess) release() {
	b.releaseOnce.Do(func() {
		b.cancel()
		b.allocCancel()
		if b.dir != "" {
			removeBrowserDir(b.dir)
		}
	})
}

// New checks the configuration and starts Chromium, so that a missing or
// broken browser is reported at start-up rather than on the first request.
func New(ctx context.Context, cfg Config) (*Chromium, error) {
	if cfg.Guard == nil {
		return nil, errors.New("capture: Config.Guard is required")
	}
	if cfg.ChromePath == "" {
		cfg.ChromePath = DefaultChromePath()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 8 * cfg.Concurrency
	}
	if cfg.AccountQueueSize <= 0 {
		cfg.AccountQueueSize = max(cfg.QueueSize/4, 1)
	}
	if cfg.UnresponsiveAfter <= 0 {
		cfg.UnresponsiveAfter = DefaultUnresponsiveAfter
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxJobsPerBrowser <= 0 {
		cfg.MaxJobsPerBrowser = DefaultMaxJobsPerBrowser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if os.Getenv(BaselineEnv) == "1" {
		cfg.Baseline = true
	}
	if cfg.Baseline {
		cfg.Logger.Warn("rendering with the settings before issue 10, for a load run's comparison only", "env", BaselineEnv)
	}
	path, err := exec.LookPath(cfg.ChromePath)
	if err != nil {
		return nil, fmt.Errorf("Chromium not found at %s: install it with `apt-get install chromium-headless-shell chromium` or set PEEKSHOT_CHROME", cfg.ChromePath)
	}
	cfg.ChromePath = path

	workDir, err := newWorkDir()
	if err != nil {
		return nil, err
	}
	p, err := startProxy(cfg.Guard, cfg.Logger)
	if err != nil {
		_ = os.RemoveAll(workDir)
		return nil, err
	}
	shutdown, cancelShutdown := context.WithCancel(context.Background())
	c := &Chromium{
		cfg:            cfg,
		log:            cfg.Logger,
		proxy:          p,
		queue:          newQueue(cfg.Concurrency, cfg.QueueSize, cfg.AccountQueueSize),
		stop:           make(chan struct{}),
		shutdown:       shutdown,
		cancelShutdown: cancelShutdown,
		browsers:       make(map[*chromiumProcess]bool),
		workDir:        workDir,
		sandbox:        os.Geteuid() != 0,
	}
	c.warmed = sync.NewCond(&c.mu)
	c.mu.Lock()
	started := c.startLocked()
	c.mu.Unlock()
	select {
	case <-started:
	case <-ctx.Done():
	}
	c.mu.Lock()
	ok, startErr := c.cur != nil, c.startErr
	c.mu.Unlock()
	if !ok {
		c.Close()
		if startErr == nil {
			startErr = ctx.Err()
		}
		return nil, startErr
	}
	return c, nil
}

// Render renders job. Its errors wrap ErrForbiddenTarget, ErrTimeout,
// ErrUnavailable, ErrBusy or ErrTargetUnreachable, or are an *OptionError.
func (c *Chromium) Render(ctx context.Context, job Job) (Image, error) {
	if err := job.validate(); err != nil {
		return Image{}, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Image{}, errShutDown
	}
	c.jobs.Add(1)
	c.mu.Unlock()
	defer c.jobs.Done()

	jobCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	stopOnShutdown := context.AfterFunc(c.shutdown, cancel)
	defer stopOnShutdown()

	// The target is checked before the job queues or opens a tab, so a
	// refused URL is answered at once and costs nothing.
	if job.URL != "" {
		if err := c.cfg.Guard.CheckURL(jobCtx, job.URL); err != nil {
			return Image{}, c.jobError(err, ctx, jobCtx, nil)
		}
		if host := hostOf(job.URL); job.AllowHost != nil && !job.AllowHost(host) {
			return Image{}, &NotAllowedError{Host: host}
		}
	}

	if err := c.queue.acquire(jobCtx, job.Account, c.stop); err != nil {
		return Image{}, c.jobError(err, ctx, jobCtx, nil)
	}
	defer c.queue.release(job.Account)

	b, err := c.acquire(jobCtx)
	if err != nil {
		return Image{}, c.jobError(err, ctx, jobCtx, nil)
	}
	defer c.releaseBrowser(b)

	img, err := c.renderOn(jobCtx, b, job)
	if err != nil {
		return Image{}, c.jobError(err, ctx, jobCtx, b)
	}
	return img, nil
}

var errShutDown = fmt.Errorf("%w: the renderer is shut down", ErrUnavailable)

// jobError maps a failure to the sentinel that explains it best. A dead
// browser wins over a deadline, because it is why the deadline passed.
func (c *Chromium) jobError(err error, callerCtx, jobCtx context.Context, b *chromiumProcess) error {
	switch {
	case errors.Is(err, ErrForbiddenTarget), errors.Is(err, ErrUnavailable),
		errors.Is(err, ErrTargetUnreachable), errors.Is(err, ErrBusy),
		errors.Is(err, ErrPageUnresponsive), errors.Is(err, ErrTargetNotAllowed):
		return err
	case b != nil && b.lost():
		return fmt.Errorf("%w: Chromium stopped during the render", ErrUnavailable)
	case c.shutdown.Err() != nil:
		return errShutDown
	case errors.Is(callerCtx.Err(), context.Canceled):
		return fmt.Errorf("render: %w", context.Canceled)
	case jobCtx.Err() != nil:
		return fmt.Errorf("%w after %s", ErrTimeout, c.cfg.Timeout)
	}
	var oe *OptionError
	if errors.As(err, &oe) {
		return err
	}
	return fmt.Errorf("render: %w", err)
}

// acquire returns a running browser for one job, starting one if needed.
// The caller must call releaseBrowser.
func (c *Chromium) acquire(ctx context.Context) (*chromiumProcess, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errShutDown
		}
		if b := c.cur; b != nil && !b.lost() {
			b.jobs++
			b.inflight++
			if b.jobs >= c.cfg.MaxJobsPerBrowser {
				// Let the jobs on it finish while a fresh one starts.
				c.log.Info("replacing Chromium", "reason", "job limit reached", "jobs", b.jobs, "pid", b.pid)
				b.retiring = true
				c.cur = nil
				c.startLocked()
			}
			c.mu.Unlock()
			return b, nil
		}
		c.cur = nil
		started := c.startLocked()
		c.mu.Unlock()

		select {
		case <-started:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		failed := c.cur == nil && c.startErr != nil
		err := c.startErr
		c.mu.Unlock()
		if failed {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

func (c *Chromium) releaseBrowser(b *chromiumProcess) {
	c.mu.Lock()
	b.inflight--
	retire := b.retiring && b.inflight == 0 && !b.stopping
	if retire {
		b.stopping = true
	}
	c.mu.Unlock()
	if retire {
		c.log.Info("stopping a replaced Chromium", "pid", b.pid)
		c.bg.Go(b.release)
	}
}

// retire stops giving jobs to b, for example because it looks stuck.
func (c *Chromium) retire(b *chromiumProcess, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.retiring || b.stopping {
		return
	}
	c.log.Warn("replacing Chromium", "reason", reason, "pid", b.pid)
	b.retiring = true
	if c.cur == b {
		c.cur = nil
		c.startLocked()
	}
}

// startLocked starts a browser in the background unless one is starting,
// and returns a channel that is closed when that start is done. c.mu must
// be held.
func (c *Chromium) startLocked() <-chan struct{} {
	if c.starting != nil {
		return c.starting
	}
	done := make(chan struct{})
	c.starting = done
	c.bg.Go(func() {
		b, err := c.launch()
		c.mu.Lock()
		defer c.mu.Unlock()
		defer close(done)
		c.starting = nil
		c.startErr = err
		if err != nil {
			c.log.Error("Chromium did not start", "err", err)
			return
		}
		if c.closed {
			b.stopping = true
			c.bg.Go(b.release)
			return
		}
		c.cur = b
		c.topUpLocked(b)
	})
	return done
}

// launch starts one Chromium process and its watcher.
func (c *Chromium) launch() (*chromiumProcess, error) {
	c.mu.Lock()
	sandbox := c.sandbox
	c.mu.Unlock()
	b, err := c.launchWith(sandbox)
	if err != nil && sandbox {
		// Containers often lack what the sandbox needs (user namespaces).
		c.log.Warn("Chromium did not start with its sandbox; starting it without", "err", err)
		c.mu.Lock()
		c.sandbox = false
		c.mu.Unlock()
		b, err = c.launchWith(false)
	}
	return b, err
}

func (c *Chromium) launchWith(sandbox bool) (*chromiumProcess, error) {
	dir, err := newBrowserDir(c.workDir)
	if err != nil {
		return nil, err
	}
	if err := writeProfilePreferences(filepath.Join(dir, "profile")); err != nil {
		removeBrowserDir(dir)
		return nil, err
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), c.allocatorOptions(sandbox, dir)...)
	logf := func(format string, args ...any) { c.log.Debug("chromedp: " + fmt.Sprintf(format, args...)) }
	bctx, bcancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))

	// The first Run binds the browser's life to its context, so it must not
	// carry a deadline; the start is bounded from the side instead.
	errc := make(chan error, 1)
	go func() { errc <- chromedp.Do(bctx) }()
	select {
	case err = <-errc:
	case <-time.After(browserStartTimeout):
		bcancel()
		allocCancel()
		<-errc
		err = fmt.Errorf("no answer after %s", browserStartTimeout)
	}
	if err != nil {
		bcancel()
		allocCancel()
		removeBrowserDir(dir)
		return nil, fmt.Errorf("start Chromium (%s): %w", c.cfg.ChromePath, err)
	}
	session := chromedp.FromContext(bctx).Browser
	b := &chromiumProcess{ctx: bctx, cancel: bcancel, allocCancel: allocCancel, session: session, dir: dir}
	if p := session.Process(); p != nil {
		b.pid = p.Pid
	}
	vctx, cancel := context.WithTimeout(bctx, browserStartTimeout)
	v, err := chromedp.CallBrowser(vctx, browser.GetVersion, cdp.Empty{})
	cancel()
	if err != nil {
		b.release()
		return nil, fmt.Errorf("start Chromium (%s): ask its version: %w", c.cfg.ChromePath, err)
	}
	c.mu.Lock()
	c.browsers[b] = true
	c.starts++
	c.version = v.Product
	c.mu.Unlock()
	c.bg.Go(func() { c.watch(b) })
	c.log.Info("Chromium started", "pid", b.pid, "version", v.Product)
	return b, nil
}

// watch waits for b to stop, cleans up after it and, when it stopped
// without being asked (a crash, a kill, the OOM killer), starts a new one at
// once so that the next job does not pay for the start.
func (c *Chromium) watch(b *chromiumProcess) {
	<-b.ctx.Done()
	b.release()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warmed.Broadcast() // jobs waiting for one of its tabs give up
	delete(c.browsers, b)
	current := c.cur == b
	if current {
		c.cur = nil
	}
	if b.stopping || c.closed {
		return
	}
	c.log.Error("Chromium stopped unexpectedly", "pid", b.pid)
	if current {
		c.startLocked()
	}
}

func (c *Chromium) allocatorOptions(sandbox bool, dir string) []chromedp.ExecAllocatorOption {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(c.cfg.ChromePath),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		// The sandbox contains a page that exploits the renderer; it cannot
		// run as root, which is where the tests and many containers run.
		chromedp.Flag("no-sandbox", !sandbox),
		// The browser gets no secrets from our environment.
		chromedp.NoInheritEnv,
	}
	for _, name := range []string{"HOME", "PATH", "TMPDIR", "LANG", "LC_ALL", "TZ", "FONTCONFIG_FILE", "FONTCONFIG_PATH"} {
		if v, ok := os.LookupEnv(name); ok {
			opts = append(opts, chromedp.Env(name+"="+v))
		}
	}
	for _, f := range []string{
		"headless", "disable-gpu", "disable-background-networking",
		"disable-component-update", "disable-sync", "no-first-run", "disable-quic",
		"hide-scrollbars", "mute-audio", "no-default-browser-check", "disable-default-apps",
		"disable-extensions", "disable-breakpad", "disable-client-side-phishing-detection",
		"disable-domain-reliability", "disable-hang-monitor", "disable-prompt-on-repost",
		"disable-background-timer-throttling", "disable-backgrounding-occluded-windows",
		"disable-renderer-backgrounding", "disable-dev-shm-usage", "metrics-recording-only",
		"use-mock-keychain", "deny-permission-prompts", "block-new-web-contents",
		"disable-notifications",
	} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	// The WebUI omnibox popups are web pages that every new window (so
	// every job) would load in renderers of their own: most of what a tab
	// cost before they were turned off.
	disabled := "Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,LensOverlay,NetworkTimeServiceQuerying,ChromeWhatsNewUI,PrivacySandboxSettings4," +
		"WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup," +
		// Remote ICE candidates named *.local would be resolved with
		// multicast DNS, a packet to the local network that no proxy sees;
		// without this feature they go to the resolver below, which
		// refuses them.
		"WebRtcHideLocalIpsWithMdns"
	if !c.cfg.Baseline {
		// Chromium keeps a spare renderer process warm for the next site,
		// and with a browser context per job that spare is never the one
		// used: 3.8 renderer processes started per URL render, not one.
		// Each job still gets a renderer of its own, in its own context.
		disabled += ",SpareRendererForSitePerProcess"
	}
	return append(opts,
		chromedp.Flag("password-store", "basic"),
		// Colours come out as the page asks, so tests can compare pixels.
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("disable-features", disabled),
		// Every request, loopback included, goes through the guarded proxy.
		chromedp.Flag("proxy-server", c.proxy.URL()),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		// Chromium resolves no name itself, so no DNS query leaves it: the
		// proxy resolves every host it is asked for (through the guard).
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE "+proxyHost),
		// WebRTC sends no UDP, only TCP through the proxy (see
		// webrtcPreferences for full Chromium, which ignores this switch).
		chromedp.Flag("force-webrtc-ip-handling-policy", webrtcPolicy),
		// A page that hogs memory crashes its own renderer early instead of
		// starving the machine.
		chromedp.Flag("js-flags", "--max-old-space-size=512"),
	)
}

// webrtcPolicy is the WebRTC IP handling policy of every page: no UDP that
// does not go through a proxy. PeekShot's proxy carries no UDP, so WebRTC
// can only use TCP through it, where the guard checks every address.
const webrtcPolicy = "disable_non_proxied_udp"

// webrtcPreferences sets webrtcPolicy as a profile preference. The headless
// shell takes the policy from --force-webrtc-ip-handling-policy, which full
// Chromium does not know (it has no such switch), while full Chromium reads
// the preference, also in the browser contexts each job gets.
const webrtcPreferences = `{"webrtc":{"ip_handling_policy":"` + webrtcPolicy + `"}}`

// writeProfilePreferences writes the preferences of a new profile before its
// browser starts.
func writeProfilePreferences(profile string) error {
	dir := filepath.Join(profile, "Default")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write Chromium preferences: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Preferences"), []byte(webrtcPreferences), 0o600); err != nil {
		return fmt.Errorf("write Chromium preferences: %w", err)
	}
	return nil
}

// Close waits for jobs in flight (up to the job timeout), then stops every
// browser, removes their temporary profiles and stops the proxy.
func (c *Chromium) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	c.mu.Unlock()

	done := make(chan struct{})
	go func() { c.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.Timeout):
		c.log.Warn("render jobs still running at shutdown; cancelling them")
		c.cancelShutdown()
		<-done
	}
	c.cancelShutdown()

	c.mu.Lock()
	var all []*chromiumProcess
	for b := range c.browsers {
		b.stopping = true
		all = append(all, b)
	}
	c.mu.Unlock()
	for _, b := range all {
		b.release()
	}
	c.bg.Wait()
	err := c.proxy.Close()
	_ = os.RemoveAll(c.workDir)
	return err
}

// OpenTabs counts the page targets of every running browser, except the
// tabs opened ahead of demand (it waits for those being opened). Tests use
// it to prove that jobs leave no tab behind.
func (c *Chromium) OpenTabs(ctx context.Context) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, warmTimeout)
	defer cancel()
	if err := c.waitWarm(wctx); err != nil {
		return 0, fmt.Errorf("list tabs: %w", err)
	}
	c.mu.Lock()
	var all []*chromiumProcess
	warm := make(map[target.ID]bool)
	for b := range c.browsers {
		all = append(all, b)
		for _, t := range b.warm {
			warm[t.targetID] = true
		}
	}
	c.mu.Unlock()
	if len(all) == 0 {
		return 0, fmt.Errorf("%w: no browser is running", ErrUnavailable)
	}
	n := 0
	for _, b := range all {
		res, err := cdp.Call(ctx, b.session, target.GetTargets, target.GetTargetsParams{})
		if err != nil {
			return 0, fmt.Errorf("list tabs: %w", err)
		}
		for _, info := range res.TargetInfos {
			if info.Type == "page" && !warm[info.TargetID] {
				n++
			}
		}
	}
	return n, nil
}

// Browser is the browser binary c renders with and its product and
// version as the browser reports them (e.g. "HeadlessChrome/156.0.8078.114"),
// for the start-up log.
func (c *Chromium) Browser() (path, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.ChromePath, c.version
}

// BrowserPID is the process id of the browser that takes new jobs, or 0.
// Load and crash tests use it.
func (c *Chromium) BrowserPID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0
	}
	return c.cur.pid
}

// Stats is a snapshot of the renderer's load, for health checks and load
// tests.
type Stats struct {
	Running    int // jobs holding a render slot
	Waiting    int // jobs queued for a slot
	Restarts   int // browser starts after the first (crashes, job limit)
	BrowserPID int // the browser that takes new jobs, or 0
}

// Stats returns the current load of c.
func (c *Chromium) Stats() Stats {
	running, waiting := c.queue.counts()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Running: running, Waiting: waiting, Restarts: max(c.starts-1, 0)}
	if c.cur != nil {
		s.BrowserPID = c.cur.pid
	}
	return s
}
