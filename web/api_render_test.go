package web

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/image/webp"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/capture"
	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// The render tests share one Chromium and one page server on loopback that
// the guard allows (exactly its address and port); a second loopback
// server, not allowed, stands for an internal service.
var chrome struct {
	once     sync.Once
	r        *capture.Chromium
	pages    *httptest.Server
	internal *httptest.Server
	hits     atomic.Int64 // requests that reached the internal server
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chrome.r != nil {
		chrome.r.Close()
		chrome.pages.Close()
		chrome.internal.Close()
	}
	os.Exit(code)
}

const testPageTimeout = 6 * time.Second

func sharedChromium(t *testing.T) *capture.Chromium {
	t.Helper()
	if _, err := os.Stat(bt.ChromePath()); err != nil {
		t.Fatalf("Chromium not found at %s: install it with `make chromium` (Debian: apt-get install chromium-headless-shell chromium)", bt.ChromePath())
	}
	chrome.once.Do(func() {
		chrome.internal = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chrome.hits.Add(1)
			w.Write([]byte("secret"))
		}))
		chrome.pages = httptest.NewServer(testPages(chrome.internal.URL))
		g := capture.NewGuard(capture.GuardConfig{AllowAddrs: []netip.AddrPort{
			netip.MustParseAddrPort(strings.TrimPrefix(chrome.pages.URL, "http://")),
		}})
		chrome.r, chrome.err = capture.New(context.Background(), capture.Config{
			ChromePath: bt.ChromePath(), Guard: g, Concurrency: 2, Timeout: testPageTimeout,
		})
	})
	if chrome.err != nil {
		t.Fatalf("start Chromium: %v", chrome.err)
	}
	return chrome.r
}

// testPages are the pages the render tests point the API at.
func testPages(internal string) http.Handler {
	mux := http.NewServeMux()
	html := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		}
	}
	// Red page with a 100×100 blue square in the top-left corner.
	mux.Handle("/red", html(`<!doctype html><style>html,body{margin:0;background:#ff0000}
		#b{position:absolute;left:0;top:0;width:100px;height:100px;background:#0000ff}</style><div id="b"></div>`))
	// 3000 px tall: green at the top, yellow at the bottom.
	mux.Handle("/tall", html(`<!doctype html><style>html,body{margin:0}
		div{height:1500px}</style><div style="background:#00ff00"></div><div style="background:#ffff00"></div>`))
	// Never finishes loading: the image request hangs until the test ends.
	mux.Handle("/hang", html(`<!doctype html><body style="background:#fff"><img src="/hang-forever">`))
	mux.HandleFunc("/hang-forever", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	// Tries to reach an internal service in every way a page can.
	mux.Handle("/ssrf", html(`<!doctype html><body style="background:#00ff00">
		<img src="`+internal+`/img"><script src="`+internal+`/js"></script>
		<iframe src="`+internal+`/frame"></iframe>
		<img src="http://169.254.169.254/latest/meta-data/">
		<script>fetch("`+internal+`/fetch").catch(()=>{})</script>`))
	mux.HandleFunc("/redirect-inside", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal+"/redirected", http.StatusFound)
	})
	return mux
}

func pixel(t *testing.T, img image.Image, x, y int) color.RGBA {
	t.Helper()
	r, g, b, _ := img.At(x, y).RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
}

func near(c, want color.RGBA, tol int) bool {
	d := func(a, b uint8) int {
		if a > b {
			return int(a - b)
		}
		return int(b - a)
	}
	return d(c.R, want.R) <= tol && d(c.G, want.G) <= tol && d(c.B, want.B) <= tol
}

var (
	red    = color.RGBA{255, 0, 0, 255}
	blue   = color.RGBA{0, 0, 255, 255}
	green  = color.RGBA{0, 255, 0, 255}
	yellow = color.RGBA{255, 255, 0, 255}
)

func decodeImage(t *testing.T, format string, data []byte) image.Image {
	t.Helper()
	var img image.Image
	var err error
	switch format {
	case "png":
		img, err = png.Decode(bytes.NewReader(data))
	case "jpeg":
		img, err = jpeg.Decode(bytes.NewReader(data))
	case "webp":
		img, err = webp.Decode(bytes.NewReader(data))
	}
	if err != nil {
		t.Fatalf("decode %s: %v (got %d bytes: %.60q)", format, err, len(data), data)
	}
	return img
}

func renderEnv(t *testing.T, opts ...envOption) (*testEnv, string, string) {
	t.Helper()
	r := sharedChromium(t)
	e := newTestEnv(t, append([]envOption{withRenderer(r), withConfig(func(c *Config) { c.RateLimit = 1000 })}, opts...)...)
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "renders")
	return e, key, email
}

func TestAPIRendersURL(t *testing.T) {
	e, key, email := renderEnv(t)
	for _, tc := range []struct {
		format, ct string
		tol        int
	}{{"png", "image/png", 0}, {"jpeg", "image/jpeg", 40}, {"webp", "image/webp", 40}} {
		t.Run(tc.format, func(t *testing.T) {
			r := e.apiCall("POST", "/api/v1/screenshots", key,
				fmt.Sprintf(`{"url": %q, "width": 640, "height": 400, "format": %q, "quality": 90}`, chrome.pages.URL+"/red", tc.format))
			expectStatus(t, r, 200)
			if r.Header.Get("Content-Type") != tc.ct {
				t.Fatalf("Content-Type %q", r.Header.Get("Content-Type"))
			}
			img := decodeImage(t, tc.format, []byte(r.body))
			if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 400 {
				t.Fatalf("size %v", b)
			}
			if c := pixel(t, img, 50, 50); !near(c, blue, tc.tol) {
				t.Fatalf("pixel in the blue square is %v", c)
			}
			if c := pixel(t, img, 400, 300); !near(c, red, tc.tol) {
				t.Fatalf("background pixel is %v", c)
			}
		})
	}
	u, _ := e.store.UserByEmail(context.Background(), email)
	if u.Credits != 97 {
		t.Fatalf("3 renders left %d credits", u.Credits)
	}
	if led, _ := e.store.Ledger(context.Background(), u.ID); len(led) != 4 || led[3].Reason != "render" || led[3].Delta != -1 {
		t.Fatalf("ledger %+v", led)
	}
}

func TestAPIRendersHTMLAndFullPage(t *testing.T) {
	e, key, _ := renderEnv(t)
	t.Run("HTML", func(t *testing.T) {
		r := e.apiCall("POST", "/api/v1/html-to-image", key,
			`{"html": "<body style=\"margin:0;background:#0000ff\"><div style=\"width:50px;height:50px;background:#ff0000\"></div></body>", "width": 300, "height": 200, "device_scale_factor": 2}`)
		expectStatus(t, r, 200)
		img := decodeImage(t, "png", []byte(r.body))
		if b := img.Bounds(); b.Dx() != 600 || b.Dy() != 400 {
			t.Fatalf("size at 2× %v", b)
		}
		if c := pixel(t, img, 40, 40); !near(c, red, 0) {
			t.Fatalf("red box pixel %v", c)
		}
		if c := pixel(t, img, 500, 300); !near(c, blue, 0) {
			t.Fatalf("background pixel %v", c)
		}
	})
	t.Run("FullPage", func(t *testing.T) {
		r := e.apiCall("POST", "/api/v1/screenshots", key,
			fmt.Sprintf(`{"url": %q, "width": 400, "height": 300, "full_page": true}`, chrome.pages.URL+"/tall"))
		expectStatus(t, r, 200)
		img := decodeImage(t, "png", []byte(r.body))
		if b := img.Bounds(); b.Dx() != 400 || b.Dy() != 3000 {
			t.Fatalf("full page size %v, want 400×3000", b)
		}
		if c := pixel(t, img, 200, 10); !near(c, green, 0) {
			t.Fatalf("top pixel %v", c)
		}
		if c := pixel(t, img, 200, 2990); !near(c, yellow, 0) {
			t.Fatalf("bottom pixel %v", c)
		}
	})
}

func TestAPIRenderSSRF(t *testing.T) {
	e, key, email := renderEnv(t)
	before := chrome.hits.Load()
	t.Run("DirectPrivateTargets", func(t *testing.T) {
		for _, target := range []string{
			chrome.internal.URL + "/",
			"http://127.0.0.1:1/", "http://localhost/", "http://0x7f000001/", "http://127.1/",
			"http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]/",
		} {
			r := e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q}`, target))
			expectAPIError(t, r, 403, "forbidden_target")
		}
	})
	t.Run("SubresourcesBlocked", func(t *testing.T) {
		r := e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 300, "height": 200}`, chrome.pages.URL+"/ssrf"))
		expectStatus(t, r, 200)
		if c := pixel(t, decodeImage(t, "png", []byte(r.body)), 290, 190); !near(c, green, 0) {
			t.Fatalf("page not rendered: %v", c)
		}
	})
	t.Run("RedirectInsideBlocked", func(t *testing.T) {
		r := e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q}`, chrome.pages.URL+"/redirect-inside"))
		expectAPIError(t, r, 403, "forbidden_target")
	})
	t.Run("HTMLCannotReachInside", func(t *testing.T) {
		r := e.apiCall("POST", "/api/v1/html-to-image", key,
			fmt.Sprintf(`{"html": "<body style='background:#00ff00'><img src='%s/html'><script>fetch('%s/fetch')</script>", "width": 200, "height": 100}`, chrome.internal.URL, chrome.internal.URL))
		expectStatus(t, r, 200)
	})
	if hits := chrome.hits.Load() - before; hits != 0 {
		t.Fatalf("the internal server was reached %d times", hits)
	}
	u, _ := e.store.UserByEmail(context.Background(), email)
	if u.Credits != 98 {
		t.Fatalf("refused renders cost credits: %d left after 2 successes", u.Credits)
	}
}

func TestAPIRenderTimeout(t *testing.T) {
	e, key, email := renderEnv(t)
	tabs, err := chrome.r.OpenTabs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q}`, chrome.pages.URL+"/hang"))
	took := time.Since(start)
	expectAPIError(t, r, 504, "render_timeout")
	if took > testPageTimeout+3*time.Second {
		t.Fatalf("504 after %v, deadline %v", took, testPageTimeout)
	}
	// The tab is closed in the background right after the deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := chrome.r.OpenTabs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n <= tabs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tabs open after the timeout, %d before", n, tabs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if u, _ := e.store.UserByEmail(context.Background(), email); u.Credits != 100 {
		t.Fatalf("timeout cost credits: %d", u.Credits)
	}
}

func TestAPIConcurrentRendersNeverOverspend(t *testing.T) {
	e, key, email := renderEnv(t)
	u, _ := e.store.UserByEmail(context.Background(), email)
	for range account.SignupCredits - 5 {
		if _, err := e.store.ChargeRender(context.Background(), account.Reservation{UserID: u.ID}); err != nil {
			t.Fatal(err)
		}
	}
	var ok, broke, other atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			r := e.apiCall("POST", "/api/v1/html-to-image", key, fmt.Sprintf(`{"html": "<p>%d</p>", "width": 200, "height": 100}`, i))
			switch r.StatusCode {
			case 200:
				ok.Add(1)
			case 402:
				broke.Add(1)
			default:
				other.Add(1)
				t.Errorf("status %d: %s", r.StatusCode, r.body)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || broke.Load() != 15 || other.Load() != 0 {
		t.Fatalf("ok %d, 402 %d, other %d; want exactly 5 renders", ok.Load(), broke.Load(), other.Load())
	}
	u, _ = e.store.UserByEmail(context.Background(), email)
	if u.Credits != 0 {
		t.Fatalf("balance %d", u.Credits)
	}
	led, _ := e.store.Ledger(context.Background(), u.ID)
	var sum int64
	for _, l := range led {
		sum += l.Delta
	}
	if sum != u.Credits {
		t.Fatalf("ledger sums to %d, balance %d", sum, u.Credits)
	}
	if bad, _ := e.store.LedgerMismatches(context.Background()); len(bad) != 0 {
		t.Fatalf("mismatches %v", bad)
	}
}
