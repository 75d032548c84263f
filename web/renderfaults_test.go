package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peekshot/peekshot/capture"
	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// faultTimeout is the render deadline of the private Chromium the fault
// tests kill and torment; short, so each test stays fast.
const faultTimeout = 4 * time.Second

// faultPages are the hostile pages of the fault tests. hit receives a value
// each time /slow is requested; /slow answers when the test ends.
func faultPages(t *testing.T, hit chan<- struct{}) http.Handler {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux := http.NewServeMux()
	page := func(path, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		})
	}
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case hit <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	page("/ok", `<!doctype html><body style="margin:0;background:#0000ff"></body>`)
	page("/hang", `<!doctype html><body><img src="/slow"></body>`)
	page("/memory-hog", `<!doctype html><body><script>
const hog = []; for (;;) { hog.push(new Array(1e6).fill(Math.random())) }</script></body>`)
	page("/popups", `<!doctype html><body style="background:#0000ff"><a id="a" href="/popups" target="_blank">x</a><script>
for (let i = 0; i < 50; i++) { window.open("/popups?" + i, "_blank") }
setInterval(() => { window.open("about:blank"); document.getElementById("a").click() }, 10)</script></body>`)
	page("/alert-loop", `<!doctype html><body><script>for (;;) { alert("x"); confirm("y"); prompt("z") }</script></body>`)
	page("/alert-after-load", `<!doctype html><body style="background:#0000ff"><script>
onload = () => setInterval(() => alert(1), 1); onbeforeunload = (e) => { e.preventDefault(); return "stay" }</script></body>`)
	return mux
}

// privateChromium starts a Chromium of the test's own (so the test may kill
// it) whose guard allows exactly the test's page server; its render
// deadline is faultTimeout.
func privateChromium(t *testing.T, pages http.Handler) (*capture.Chromium, string) {
	t.Helper()
	return privateChromiumWith(t, pages, faultTimeout)
}

func privateChromiumWith(t *testing.T, pages http.Handler, timeout time.Duration) (*capture.Chromium, string) {
	t.Helper()
	if _, err := os.Stat(bt.ChromePath()); err != nil {
		t.Fatalf("Chromium not found at %s: install Chromium: apt-get install chromium", bt.ChromePath())
	}
	srv := httptest.NewServer(pages)
	t.Cleanup(srv.Close)
	g := capture.NewGuard(capture.GuardConfig{AllowAddrs: []netip.AddrPort{netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))}})
	c, err := capture.New(context.Background(), capture.Config{ChromePath: bt.ChromePath(), Guard: g, Concurrency: 2, Timeout: timeout})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv.URL
}

// userDataDir is the --user-data-dir of a Chromium process: every process
// of that browser (zygote, renderers, GPU, utilities) carries it.
func userDataDir(t *testing.T, pid int) string {
	t.Helper()
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatalf("read the browser's command line: %v", err)
	}
	for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
		if dir, ok := strings.CutPrefix(string(arg), "--user-data-dir="); ok {
			return dir
		}
	}
	t.Fatalf("browser %d has no --user-data-dir", pid)
	return ""
}

// browserProcesses counts the live (not zombie) processes of the browser
// that uses dir. Chromium's children rewrite their command line as one
// space-separated string, so the argument may end in a space or a NUL.
func browserProcesses(dir string) int {
	want := []byte("--user-data-dir=" + dir)
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		i := bytes.Index(cmdline, want)
		if i < 0 {
			continue
		}
		if end := i + len(want); end < len(cmdline) && cmdline[end] != 0 && cmdline[end] != ' ' {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue
			}
		}
		n++
	}
	return n
}

// settles polls cond for up to d.
func settles(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// TestAPIRendererCrash kills Chromium in the middle of a render made
// through the API: that request gets 503 renderer_unavailable (with
// Retry-After) and costs nothing, the next one succeeds on a restarted
// browser, and nothing of the killed browser is left running.
func TestAPIRendererCrash(t *testing.T) {
	hit := make(chan struct{}, 1)
	c, pages := privateChromium(t, faultPages(t, hit))
	e := newTestEnv(t, withRenderer(c), withConfig(func(cfg *Config) { cfg.RateLimit = 1000 }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "crash")

	pid := c.BrowserPID()
	dir := userDataDir(t, pid)
	done := make(chan response, 1)
	go func() {
		done <- e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q}`, pages+"/slow"))
	}()
	select {
	case <-hit:
	case <-time.After(faultTimeout):
		t.Fatal("the render never reached the page")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var r response
	select {
	case r = <-done:
	case <-time.After(faultTimeout + 2*time.Second):
		t.Fatal("the request did not end after Chromium was killed")
	}
	expectAPIError(t, r, http.StatusServiceUnavailable, "renderer_unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if u := userOf(t, e, email); u.Credits != 100 {
		t.Fatalf("the crashed render cost credits: %d left", u.Credits)
	}

	next := e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 200, "height": 100}`, pages+"/ok"))
	expectStatus(t, next, http.StatusOK)
	if c := pixel(t, decodeImage(t, "png", []byte(next.body)), 10, 10); !near(c, blue, 0) {
		t.Fatalf("render after the restart: pixel %v", c)
	}
	if next.Header.Get("X-Credits-Remaining") != "99" {
		t.Fatalf("X-Credits-Remaining %q after one paid render", next.Header.Get("X-Credits-Remaining"))
	}
	if now := c.BrowserPID(); now == pid || now == 0 {
		t.Fatalf("browser PID %d after the crash of %d", now, pid)
	}
	if !settles(5*time.Second, func() bool { return browserProcesses(dir) == 0 }) {
		t.Fatalf("%d processes of the killed browser are still running", browserProcesses(dir))
	}
}

// TestAPIHostilePages sends pages that never load, hog memory, open popups
// or loop on alert() through the API, two at a time as production runs
// them: each request ends within its deadline with an image or a clear
// 503/504 (never a 500), a failed render costs nothing, and afterwards no
// tab and no extra Chromium process is left behind.
func TestAPIHostilePages(t *testing.T) {
	c, pages := privateChromium(t, faultPages(t, make(chan struct{}, 1)))
	e := newTestEnv(t, withRenderer(c), withConfig(func(cfg *Config) { cfg.RateLimit = 1000 }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "hostile")

	// A first render warms the browser up, so its baseline includes the
	// processes every render needs.
	expectStatus(t, e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 100, "height": 100}`, pages+"/ok")), http.StatusOK)
	tabs, err := c.OpenTabs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := userDataDir(t, c.BrowserPID())
	procs := browserProcesses(dir)
	t.Logf("baseline: %d tabs, %d Chromium processes", tabs, procs)

	paths := []string{"/hang", "/memory-hog", "/popups", "/alert-loop", "/alert-after-load"}
	var mu sync.Mutex
	paid := 0
	var wg sync.WaitGroup
	for _, path := range paths {
		wg.Go(func() {
			start := time.Now()
			r := e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 200, "height": 200}`, pages+path))
			took := time.Since(start)
			t.Logf("%s: %d after %v", path, r.StatusCode, took.Round(time.Millisecond))
			// Queued behind the other pages, a job's deadline counts its
			// wait; spinning pages need a moment more to close.
			if took > faultTimeout+3*time.Second {
				t.Errorf("%s took %v; the render deadline is %v", path, took, faultTimeout)
			}
			switch r.StatusCode {
			case http.StatusOK:
				mu.Lock()
				paid++
				mu.Unlock()
			case http.StatusGatewayTimeout:
				expectAPIError(t, r, r.StatusCode, "render_timeout")
			case http.StatusServiceUnavailable:
				expectAPIError(t, r, r.StatusCode, "renderer_unavailable")
			default:
				t.Errorf("%s: %d, want an image, 503 or 504\n%s", path, r.StatusCode, r.body)
			}
			if path == "/hang" && r.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("a page that never loads answered %d, want 504", r.StatusCode)
			}
		})
	}
	wg.Wait()
	if u := userOf(t, e, email); u.Credits != int64(100-1-paid) {
		t.Fatalf("balance %d after %d paid renders: failed renders cost credits", u.Credits, 1+paid)
	}
	var n int
	if !settles(5*time.Second, func() bool { n, err = c.OpenTabs(context.Background()); return err == nil && n <= tabs }) {
		t.Fatalf("%d tabs open after the hostile pages, %d before (%v)", n, tabs, err)
	}
	// The memory hog may have crashed the whole browser; then count the
	// processes of the one that replaced it.
	if now := userDataDir(t, c.BrowserPID()); now != dir {
		if !settles(5*time.Second, func() bool { return browserProcesses(dir) == 0 }) {
			t.Fatalf("%d processes of the replaced browser are still running", browserProcesses(dir))
		}
		dir = now
	}
	if !settles(10*time.Second, func() bool { return browserProcesses(dir) <= procs }) {
		t.Fatalf("%d Chromium processes after the hostile pages, %d before", browserProcesses(dir), procs)
	}
	expectStatus(t, e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 100, "height": 100}`, pages+"/ok")), http.StatusOK)
}
