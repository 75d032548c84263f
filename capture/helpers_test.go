package capture

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/webp"
)

// The browser tests share one Chromium and one allowed page server, because
// starting Chromium is the slowest part of the suite. Tests that need their
// own settings (limits, crashes, Close) start their own.
var shared struct {
	once sync.Once
	c    *Chromium
	srv  *httptest.Server
	mux  *http.ServeMux
	err  error

	mu    sync.Mutex
	tests int // prefixes handed out, so that -count=N can register again
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.Close()
		shared.srv.Close()
	}
	os.Exit(code)
}

// requireChromium fails (never skips) when the browser is missing: the
// browser tests are part of the product's tests.
func requireChromium(t testing.TB) {
	t.Helper()
	requireBrowser(t, DefaultChromePath())
}

// requireBrowser fails when the browser at path is missing, saying which
// Debian package has it.
func requireBrowser(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		pkg := "chromium"
		if path == HeadlessShellPath {
			pkg = "chromium-headless-shell"
		}
		t.Fatalf("%s is missing: install it with apt-get install %s (%v)", path, pkg, err)
	}
}

// testLogger shows the renderer's logs only with -v and on failure.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CAPTURE_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// sharedRenderer returns the shared Chromium, a mux of the test's own on an
// allowed loopback server, and the base URL of that mux (it lives under a
// path prefix, so pages should use relative links).
func sharedRenderer(t testing.TB) (*Chromium, *http.ServeMux, string) {
	t.Helper()
	requireChromium(t)
	shared.once.Do(func() {
		shared.mux = http.NewServeMux()
		shared.srv = httptest.NewServer(shared.mux)
		g := NewGuard(GuardConfig{AllowAddrs: []netip.AddrPort{netip.MustParseAddrPort(strings.TrimPrefix(shared.srv.URL, "http://"))}})
		shared.c, shared.err = New(context.Background(), Config{Guard: g, Concurrency: 2, Timeout: 15 * time.Second, Logger: testLogger(t)})
	})
	if shared.err != nil {
		t.Fatalf("start Chromium: %v", shared.err)
	}
	shared.mu.Lock()
	shared.tests++
	prefix := fmt.Sprintf("/t%d", shared.tests)
	shared.mu.Unlock()
	mux := http.NewServeMux()
	shared.mux.Handle(prefix+"/", http.StripPrefix(prefix, mux))
	return shared.c, mux, shared.srv.URL + prefix
}

// newRenderer starts a private Chromium for tests that change its settings
// or kill it, with a page server whose address the guard allows.
func newRenderer(t *testing.T, cfg Config, h http.Handler) (*Chromium, string) {
	t.Helper()
	requireChromium(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if cfg.Guard == nil {
		cfg.Guard = NewGuard(GuardConfig{AllowAddrs: []netip.AddrPort{netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))}})
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv.URL
}

func servePage(mux *http.ServeMux, path, html string) {
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	})
}

func decode(t *testing.T, img Image) image.Image {
	t.Helper()
	var (
		m   image.Image
		err error
	)
	r := bytes.NewReader(img.Data)
	switch img.ContentType {
	case "image/png":
		m, err = png.Decode(r)
	case "image/jpeg":
		m, err = jpeg.Decode(r)
	case "image/webp":
		m, err = webp.Decode(r)
	default:
		t.Fatalf("unexpected content type %q", img.ContentType)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", img.ContentType, err)
	}
	if b := m.Bounds(); b.Dx() != img.Width || b.Dy() != img.Height {
		t.Fatalf("Image says %dx%d, data is %dx%d", img.Width, img.Height, b.Dx(), b.Dy())
	}
	return m
}

var (
	red   = color.RGBA{255, 0, 0, 255}
	blue  = color.RGBA{0, 0, 255, 255}
	green = color.RGBA{0, 128, 0, 255}
	white = color.RGBA{255, 255, 255, 255}
)

// wantColor checks the pixel at x,y within tol per channel (lossy formats
// need some).
func wantColor(t *testing.T, m image.Image, x, y int, want color.RGBA, tol int) {
	t.Helper()
	r, g, b, _ := m.At(x, y).RGBA()
	got := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
	exp := [3]int{int(want.R), int(want.G), int(want.B)}
	for i := range got {
		if d := got[i] - exp[i]; d > tol || d < -tol {
			t.Errorf("pixel (%d,%d) = rgb%v, want rgb%v ±%d", x, y, got, exp, tol)
			return
		}
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openTabs reads the tab count, waiting until it settles at want.
func tabsSettleAt(t *testing.T, c *Chromium, want int) {
	t.Helper()
	var n int
	ok := waitFor(3*time.Second, func() bool {
		var err error
		n, err = c.OpenTabs(context.Background())
		return err == nil && n == want
	})
	if !ok {
		t.Fatalf("open tabs = %d, want %d", n, want)
	}
}

func goroutineCount() int {
	runtime.GC()
	return runtime.NumGoroutine()
}
