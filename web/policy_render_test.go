package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/peekshot/peekshot/capture"
	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// A key's allowed sites with real renders: two host names on loopback,
// both resolved to 127.0.0.1 by the guard's resolver (the guard allows
// exactly the page server's address and port), told apart by the page
// server by their Host header. Nothing else resolves.

// loopbackNames resolves its names to 127.0.0.1.
type loopbackNames map[string]bool

func (n loopbackNames) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if n[strings.ToLower(host)] {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// namedSites is the page server: each host name its own pages, and a
// count of the requests each name got.
type namedSites struct {
	mu    sync.Mutex
	pages map[string]http.HandlerFunc // host + path
	hits  map[string]int              // host
}

func (s *namedSites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	s.mu.Lock()
	s.hits[host]++
	f := s.pages[host+r.URL.Path]
	s.mu.Unlock()
	if f == nil {
		http.NotFound(w, r)
		return
	}
	f(w, r)
}

func (s *namedSites) hitsOf(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[host]
}

// policyRenderEnv starts a Chromium of its own whose guard resolves names
// to a loopback page server, a server rendering with it, and returns them
// with the sites and a function that makes a URL of a name on them.
func policyRenderEnv(t *testing.T, names ...string) (*testEnv, *namedSites, func(host, path string) string) {
	t.Helper()
	sites := &namedSites{pages: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	srv := httptest.NewServer(sites)
	t.Cleanup(srv.Close)
	addr := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	known := loopbackNames{}
	for _, n := range names {
		known[n] = true
	}
	r, err := capture.New(context.Background(), capture.Config{
		ChromePath: bt.ChromePath(), Concurrency: 2, Timeout: testPageTimeout,
		Guard: capture.NewGuard(capture.GuardConfig{AllowAddrs: []netip.AddrPort{addr}, Resolver: known}),
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	e := newTestEnv(t, withRenderer(r), withConfig(func(c *Config) { c.RateLimit = 1000 }))
	return e, sites, func(host, path string) string { return fmt.Sprintf("http://%s:%d%s", host, addr.Port(), path) }
}

func TestPolicyAllowedSitesRealRenders(t *testing.T) {
	const allowed, other, www, api = "allowed.test", "other.test", "www.allowed.test", "api.allowed.test"
	e, sites, at := policyRenderEnv(t, allowed, other, www, api)
	html := func(host, path, body string) {
		sites.mu.Lock()
		defer sites.mu.Unlock()
		sites.pages[host+path] = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		}
	}
	redirect := func(host, path, to string) {
		sites.mu.Lock()
		defer sites.mu.Unlock()
		sites.pages[host+path] = func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
	}
	const redPage = `<!doctype html><body style="margin:0;background:#ff0000">`
	for _, h := range []string{allowed, other, www, api} {
		html(h, "/red", redPage)
	}
	sites.mu.Lock()
	sites.pages[other+"/square.svg"] = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100" fill="#0000ff"/></svg>`)
	}
	sites.mu.Unlock()
	toOther := at(other, "/red")
	redirect(allowed, "/redirect", toOther)
	redirect(allowed, "/redirect-www", at(www, "/red"))
	locationPage := fmt.Sprintf(`%s<script>location = %q</script>`, redPage, toOther)
	metaPage := fmt.Sprintf(`<!doctype html><meta http-equiv="refresh" content="0;url=%s">%s`, toOther, redPage)
	imagePage := fmt.Sprintf(`%s<img src=%q style="display:block">`, redPage, at(other, "/square.svg"))
	html(allowed, "/location", locationPage)
	html(allowed, "/meta", metaPage)
	html(allowed, "/image", imagePage)

	b, email := e.signUp()
	key, _ := createPolicyKey(t, b, createValues(formVals("allowed_targets", allowed)), true)
	wild, _ := createPolicyKey(t, b, createValues(formVals("allowed_targets", "*."+allowed)), true)
	shot := func(key, u string) response {
		return e.apiCall(http.MethodPost, "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 200, "height": 150}`, u))
	}
	fromHTML := func(key, page string) response {
		return e.apiCall(http.MethodPost, "/api/v1/html-to-image", key, fmt.Sprintf(`{"html": %q, "width": 200, "height": 150}`, page))
	}
	// free checks that a refused render cost nothing and kept nothing.
	free := func(t *testing.T, before int64) {
		t.Helper()
		if c := balanceOf(t, e, email); c != before {
			t.Fatalf("a refused render was charged: %d credits, %d before", c, before)
		}
		if n, _ := e.store.LiveReservations(context.Background()); n != 0 {
			t.Fatalf("%d reservations left", n)
		}
	}

	t.Run("AllowedHostRenders", func(t *testing.T) {
		before := balanceOf(t, e, email)
		r := shot(key, at(allowed, "/red"))
		expectStatus(t, r, http.StatusOK)
		if c := pixel(t, decodeImage(t, "png", []byte(r.body)), 100, 75); !near(c, red, 0) {
			t.Fatalf("pixel %v", c)
		}
		if c := balanceOf(t, e, email); c != before-1 {
			t.Fatalf("balance %d, want %d", c, before-1)
		}
	})
	t.Run("AnotherHostRefusedUpFront", func(t *testing.T) {
		before, hits := balanceOf(t, e, email), sites.hitsOf(other)
		msg := expectAPIError(t, shot(key, toOther), http.StatusForbidden, "target_not_allowed").Error.Message
		if !strings.Contains(msg, `"other.test"`) {
			t.Fatalf("message %q should name the host", msg)
		}
		free(t, before)
		if sites.hitsOf(other) != hits {
			t.Fatal("the refused host was asked for its page")
		}
	})
	for _, tc := range []struct {
		name string
		do   func() response
	}{
		{"RedirectToAnotherHost", func() response { return shot(key, at(allowed, "/redirect")) }},
		{"LocationToAnotherHost", func() response { return shot(key, at(allowed, "/location")) }},
		{"MetaRefreshToAnotherHost", func() response { return shot(key, at(allowed, "/meta")) }},
		{"HTMLLocationToAnotherHost", func() response { return fromHTML(key, locationPage) }},
		{"HTMLMetaRefreshToAnotherHost", func() response { return fromHTML(key, metaPage) }},
		{"WildcardRedirectToAnotherHost", func() response { return shot(wild, at(www, "/redirect-other")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redirect(www, "/redirect-other", toOther)
			before, hits := balanceOf(t, e, email), sites.hitsOf(other)
			msg := expectAPIError(t, tc.do(), http.StatusForbidden, "target_not_allowed").Error.Message
			if !strings.Contains(msg, toOther) || !strings.Contains(msg, `"other.test"`) || !strings.Contains(msg, "Nothing was charged") {
				t.Fatalf("message %q should say where the page went and that nothing was charged", msg)
			}
			free(t, before)
			if n := sites.hitsOf(other) - hits; n != 0 {
				t.Fatalf("the refused host got %d requests", n)
			}
		})
	}
	t.Run("RedirectWithinTheWildcard", func(t *testing.T) {
		redirect(www, "/to-api", at(api, "/red"))
		for _, u := range []string{at(www, "/to-api"), at(www, "/red")} {
			expectStatus(t, shot(wild, u), http.StatusOK)
		}
		// The wildcard does not cover the domain itself.
		expectAPIError(t, shot(wild, at(allowed, "/red")), http.StatusForbidden, "target_not_allowed")
		expectAPIError(t, shot(key, at(allowed, "/redirect-www")), http.StatusForbidden, "target_not_allowed")
	})
	t.Run("SubresourcesFromAnotherHostRender", func(t *testing.T) {
		for name, do := range map[string]func() response{
			"screenshots":   func() response { return shot(key, at(allowed, "/image")) },
			"html-to-image": func() response { return fromHTML(key, imagePage) },
		} {
			t.Run(name, func(t *testing.T) {
				before, hits := balanceOf(t, e, email), sites.hitsOf(other)
				r := do()
				expectStatus(t, r, http.StatusOK)
				img := decodeImage(t, "png", []byte(r.body))
				if c := pixel(t, img, 50, 50); !near(c, blue, 0) {
					t.Fatalf("the image from %s is not in the render: %v", other, c)
				}
				if c := pixel(t, img, 150, 120); !near(c, red, 0) {
					t.Fatalf("the page is not in the render: %v", c)
				}
				if sites.hitsOf(other) == hits {
					t.Fatal("the image was not loaded from the other host")
				}
				if c := balanceOf(t, e, email); c != before-1 {
					t.Fatalf("balance %d, want %d", c, before-1)
				}
			})
		}
	})
	t.Run("WithoutAListAnyHostRenders", func(t *testing.T) {
		open, _ := createKeyHTMX(t, b, "any site")
		expectStatus(t, shot(open, at(allowed, "/redirect")), http.StatusOK)
		expectStatus(t, fromHTML(open, locationPage), http.StatusOK)
	})
}
