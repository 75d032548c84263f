package capture

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// blockingHandler holds each request until the test ends.
func blockingHandler(t *testing.T, hit chan<- struct{}) http.HandlerFunc {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(w http.ResponseWriter, r *http.Request) {
		if hit != nil {
			select {
			case hit <- struct{}{}:
			default:
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

// TestHostilePages renders pages that never load, loop on dialogs, open
// windows, hog memory or spin; each must end within the deadline with a
// timeout or an unavailable error (or an image), and leave no tab behind.
func TestHostilePages(t *testing.T) {
	const timeout = 2 * time.Second
	mux := http.NewServeMux()
	mux.HandleFunc("/hang", blockingHandler(t, nil))
	servePage(mux, "/hang-subresource", `<!doctype html><body><img src="/hang"></body>`)
	servePage(mux, "/alert-loop", `<!doctype html><body><script>for (;;) { alert("x"); confirm("y"); prompt("z") }</script></body>`)
	servePage(mux, "/alert-after-load", `<!doctype html><body style="background:#0000ff"><script>
onload = () => setInterval(() => { alert(1) }, 1)
onbeforeunload = (e) => { e.preventDefault(); return "stay" }</script></body>`)
	servePage(mux, "/popups", `<!doctype html><body><a id="a" href="/popups" target="_blank">x</a><script>
for (let i = 0; i < 50; i++) { window.open("/popups?" + i, "_blank"); }
setInterval(() => { window.open("about:blank"); document.getElementById("a").click() }, 10)
</script></body>`)
	servePage(mux, "/memory-hog", `<!doctype html><body><script>
const hog = []; for (;;) { hog.push(new Array(1e6).fill(Math.random())) }
</script></body>`)
	servePage(mux, "/spin", `<!doctype html><body><script>for (;;) {}</script></body>`)
	servePage(mux, "/spin-after-load", `<!doctype html><body><script>onload = () => { for (;;) {} }</script></body>`)

	c, base := newRenderer(t, Config{Timeout: timeout, Concurrency: 2}, mux)
	baseline, err := c.OpenTabs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The pages run two at a time (the render slots), as in production.
	t.Run("pages", func(t *testing.T) {
		for _, path := range []string{"/hang", "/hang-subresource", "/alert-loop", "/alert-after-load", "/popups", "/memory-hog", "/spin", "/spin-after-load"} {
			t.Run(path, func(t *testing.T) {
				t.Parallel()
				hostilePage(t, c, base, path, timeout)
			})
		}
	})
	tabsSettleAt(t, c, baseline)
	t.Run("still works afterwards", func(t *testing.T) {
		if _, err := c.Render(context.Background(), Job{HTML: colourPage, Options: Options{Width: 100, Height: 100}}); err != nil {
			t.Fatal(err)
		}
		tabsSettleAt(t, c, baseline)
	})
}

func hostilePage(t *testing.T, c *Chromium, base, path string, timeout time.Duration) {
	start := time.Now()
	img, err := c.Render(context.Background(), Job{URL: base + path, Options: Options{Width: 200, Height: 200}})
	elapsed := time.Since(start)
	switch {
	case err == nil:
		decode(t, img)
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrUnavailable):
	default:
		t.Fatalf("err = %v, want an image, ErrTimeout or ErrUnavailable", err)
	}
	t.Logf("%s: %v after %v", path, err, elapsed.Round(time.Millisecond))
	// Closing a tab whose renderer spins needs a moment more, and on a
	// busy machine the spinning pages hold both cores.
	slack := time.Second
	if strings.Contains(path, "spin") || strings.Contains(path, "alert-loop") {
		slack = 2 * time.Second
	}
	if elapsed > timeout+slack {
		t.Errorf("took %v, deadline is %v", elapsed, timeout)
	}
	if path == "/hang" && !errors.Is(err, ErrTimeout) {
		t.Errorf("a page that never loads must time out, got %v", err)
	}
}

func TestQueueAndConcurrencyLimits(t *testing.T) {
	t.Run("busy when the queue is full", func(t *testing.T) {
		hit := make(chan struct{}, 1)
		mux := http.NewServeMux()
		mux.HandleFunc("/slow", blockingHandler(t, hit))
		c, base := newRenderer(t, Config{Concurrency: 1, QueueSize: 1, Timeout: 3 * time.Second}, mux)

		errs := make(chan error, 2)
		go func() { _, err := c.Render(context.Background(), Job{URL: base + "/slow"}); errs <- err }()
		<-hit // the first job runs
		go func() { _, err := c.Render(context.Background(), Job{URL: base + "/slow"}); errs <- err }()
		if !waitFor(time.Second, func() bool { return c.Stats().Waiting == 1 }) {
			t.Fatalf("the second job is not queued: %+v", c.Stats())
		}
		if s := c.Stats(); s.Running != 1 {
			t.Fatalf("stats %+v, want one running", s)
		}

		start := time.Now()
		_, err := c.Render(context.Background(), Job{URL: base + "/slow"})
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("third job: err = %v, want ErrBusy", err)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Errorf("ErrBusy took %v, want at once", d)
		}
		for range 2 {
			if err := <-errs; !errors.Is(err, ErrTimeout) {
				t.Errorf("held jobs: err = %v, want ErrTimeout", err)
			}
		}
	})

	t.Run("never more than Concurrency at once", func(t *testing.T) {
		var now, peak atomic.Int64
		mux := http.NewServeMux()
		mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
			n := now.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(500 * time.Millisecond)
			now.Add(-1)
			fmt.Fprint(w, colourPage)
		})
		c, base := newRenderer(t, Config{Concurrency: 2, Timeout: 20 * time.Second}, mux)
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				if _, err := c.Render(context.Background(), Job{URL: fmt.Sprintf("%s/count?%d", base, i), Options: Options{Width: 100, Height: 100}}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if p := peak.Load(); p != 2 {
			t.Fatalf("peak concurrency %d, want 2", p)
		}
	})

	t.Run("queue wait counts against the deadline", func(t *testing.T) {
		// Two jobs that each hold the only slot for the whole timeout,
		// started together: the one that waits must not get a full timeout
		// of its own after the wait, so both end within about one timeout.
		const timeout = 1500 * time.Millisecond
		mux := http.NewServeMux()
		mux.HandleFunc("/slow", blockingHandler(t, nil))
		c, base := newRenderer(t, Config{Concurrency: 1, Timeout: timeout}, mux)
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, err := c.Render(context.Background(), Job{URL: base + "/slow"})
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("err = %v, want ErrTimeout", err)
				}
			})
		}
		wg.Wait()
		if d := time.Since(start); d > timeout+time.Second {
			t.Errorf("both jobs took %v; the queued one must count its wait (timeout %v)", d, timeout)
		}
	})

	t.Run("caller cancellation", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("/slow", blockingHandler(t, nil))
		c, base := newRenderer(t, Config{Timeout: 10 * time.Second}, mux)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Render(ctx, Job{URL: base + "/slow"})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout for the caller's deadline", err)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("took %v", d)
		}
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		if _, err := c.Render(ctx, Job{URL: base + "/slow"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestBrowserCrashRecovery(t *testing.T) {
	hit := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", blockingHandler(t, hit))
	servePage(mux, "/ok", colourPage)
	c, base := newRenderer(t, Config{Timeout: 10 * time.Second}, mux)

	pid := c.BrowserPID()
	if pid == 0 {
		t.Fatal("no browser PID")
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Render(context.Background(), Job{URL: base + "/slow"}); errc <- err }()
	<-hit
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the job did not notice the crash")
	}

	img, err := c.Render(context.Background(), Job{URL: base + "/ok", Options: Options{Width: 100, Height: 100}})
	if err != nil {
		t.Fatalf("render after the crash: %v", err)
	}
	wantColor(t, decode(t, img), 10, 10, blue, 0)
	if next := c.BrowserPID(); next == pid || next == 0 {
		t.Errorf("browser PID %d after the crash of %d", next, pid)
	}
	if s := c.Stats(); s.Restarts != 1 || s.BrowserPID != c.BrowserPID() {
		t.Errorf("stats after one crash: %+v", s)
	}
	if !waitFor(3*time.Second, func() bool { return !processExists(pid) }) {
		t.Errorf("the killed browser %d is still there", pid)
	}
}

func TestRestartAfterMaxJobs(t *testing.T) {
	hits := make(chan struct{}, 4)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/held", func(w http.ResponseWriter, r *http.Request) {
		hits <- struct{}{}
		<-release
		fmt.Fprint(w, colourPage)
	})
	servePage(mux, "/ok", colourPage)
	c, base := newRenderer(t, Config{Concurrency: 2, MaxJobsPerBrowser: 2, Timeout: 10 * time.Second}, mux)
	first := c.BrowserPID()

	// Two jobs use up the first browser's allowance while they run.
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := c.Render(context.Background(), Job{URL: base + "/held"}); errs <- err }()
	}
	<-hits
	<-hits
	if !waitFor(5*time.Second, func() bool { p := c.BrowserPID(); return p != 0 && p != first }) {
		t.Fatal("no new browser started after the job limit")
	}
	if !processExists(first) {
		t.Fatal("the old browser stopped before its jobs finished")
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a job on the retiring browser failed: %v", err)
		}
	}
	if _, err := c.Render(context.Background(), Job{URL: base + "/ok"}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return !processExists(first) }) {
		t.Fatal("the retired browser is still running")
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	requireChromium(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, colourPage) }))
	defer srv.Close()
	before := goroutineCount()

	g := NewGuard(GuardConfig{AllowAddrs: []netip.AddrPort{netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))}})
	c, err := New(context.Background(), Config{Guard: g, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pid := c.BrowserPID()
	dataDir := userDataDir(t, pid)
	for range 3 {
		if _, err := c.Render(context.Background(), Job{URL: srv.URL, Options: Options{Width: 100, Height: 100}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if processExists(pid) {
		t.Errorf("browser %d still running after Close", pid)
	}
	if n := processesUsing(dataDir); n != 0 {
		t.Errorf("%d Chromium helper processes left", n)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("profile %s not removed: %v", dataDir, err)
	}
	if _, err := c.Render(context.Background(), Job{HTML: "<p>"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Render after Close: %v, want ErrUnavailable", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	srv.CloseClientConnections()
	var after int
	if !waitFor(3*time.Second, func() bool { after = goroutineCount(); return after <= before+2 }) {
		t.Errorf("goroutines: %d before New, %d after Close", before, after)
	}
}

func TestNewFailsClearlyWithoutChromium(t *testing.T) {
	_, err := New(context.Background(), Config{ChromePath: "/nonexistent/chromium", Guard: NewGuard(GuardConfig{})})
	if err == nil || !strings.Contains(err.Error(), "Chromium not found at /nonexistent/chromium") || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("New without a guard must fail")
	}
}

// processExists reports whether pid is a live (not zombie) process.
func processExists(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// userDataDir reads the browser's --user-data-dir from its command line.
func userDataDir(t *testing.T, pid int) string {
	t.Helper()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		if dir, ok := strings.CutPrefix(arg, "--user-data-dir="); ok {
			return dir
		}
	}
	t.Fatal("no --user-data-dir")
	return ""
}

// processesUsing counts live processes started with the profile dir.
func processesUsing(dir string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), "--user-data-dir="+dir+"\x00") {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			if processExists(pid) {
				n++
			}
		}
	}
	return n
}
