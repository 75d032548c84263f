package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// A job's AllowHost (a key's allowed sites, SPEC §6) holds for the page
// itself wherever it goes: the job's URL, redirects and every navigation
// the page makes, for URL and HTML jobs alike. Sub-resources are not asked.
// The tests need two host names on loopback: the guard's resolver answers
// 127.0.0.1 for the *.test names below, and the guard allows exactly the
// page server's address and port, so both names reach the one server,
// which tells them apart by the Host header.

// namesResolver resolves the names it knows to loopback, and nothing else.
type namesResolver struct{ names map[string]bool }

func (r namesResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if r.names[strings.ToLower(host)] {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// hostPages serves each host its own pages and counts what each host was
// asked for.
type hostPages struct {
	mu    sync.Mutex
	pages map[string]http.HandlerFunc // "host/path"
	hits  map[string]int              // "host/path"
}

func (h *hostPages) handle(host, path string, f http.HandlerFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pages[host+path] = f
}

func (h *hostPages) html(host, path, body string) {
	h.handle(host, path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	})
}

// hitsOf counts the requests a host got, on every path.
func (h *hostPages) hitsOf(host string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for k, v := range h.hits {
		if strings.HasPrefix(k, host+"/") {
			n += v
		}
	}
	return n
}

func (h *hostPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	key := strings.ToLower(host) + r.URL.Path
	h.mu.Lock()
	h.hits[key]++
	f := h.pages[key]
	h.mu.Unlock()
	if f == nil {
		http.NotFound(w, r)
		return
	}
	f(w, r)
}

// allowHostRenderer starts a Chromium whose guard resolves names to one
// loopback page server, and returns it, the pages and a function giving
// a URL of a name on that server.
func allowHostRenderer(t *testing.T, names ...string) (*Chromium, *hostPages, func(host, path string) string) {
	t.Helper()
	requireChromium(t)
	pages := &hostPages{pages: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	srv := httptest.NewServer(pages)
	t.Cleanup(srv.Close)
	addr := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	g := NewGuard(GuardConfig{AllowAddrs: []netip.AddrPort{addr}, Resolver: namesResolver{known}})
	c, err := New(context.Background(), Config{Guard: g, Concurrency: 2, Timeout: 15 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, pages, func(host, path string) string { return fmt.Sprintf("http://%s:%d%s", host, addr.Port(), path) }
}

// onlyHosts allows exactly the names given, as a key's list does for
// names without a wildcard.
func onlyHosts(hosts ...string) func(string) bool {
	return func(h string) bool {
		for _, a := range hosts {
			if strings.EqualFold(h, a) {
				return true
			}
		}
		return false
	}
}

func TestAllowHost(t *testing.T) {
	const allowed, other = "allowed.test", "other.test"
	c, pages, at := allowHostRenderer(t, allowed, other, "www.allowed.test")
	allow := onlyHosts(allowed, "www.allowed.test")
	for _, h := range []string{allowed, other, "www.allowed.test"} {
		pages.html(h, "/blue", colourPage)
	}
	// A 100×100 blue image, from whichever host serves it.
	blueSquare := `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100" fill="#0000ff"/></svg>`
	pages.handle(other, "/square.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, blueSquare)
	})

	render := func(t *testing.T, job Job) (Image, error) {
		t.Helper()
		if job.Options.Width == 0 {
			job.Options = Options{Width: 120, Height: 120, DelayMS: 200}
		}
		job.AllowHost = allow
		return c.Render(context.Background(), job)
	}
	// refused checks a job ended at once as not allowed, naming the host
	// and, when the page went there, where.
	refused := func(t *testing.T, err error, wantURL string) {
		t.Helper()
		var na *NotAllowedError
		if !errors.As(err, &na) || !errors.Is(err, ErrTargetNotAllowed) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want a *NotAllowedError at once", err)
		}
		if na.Host != other {
			t.Fatalf("refused host %q, want %q", na.Host, other)
		}
		if !strings.HasPrefix(na.URL, wantURL) {
			t.Fatalf("refused URL %q, want %q", na.URL, wantURL)
		}
	}

	t.Run("TheJobsURL", func(t *testing.T) {
		before := pages.hitsOf(other)
		_, err := render(t, Job{URL: at(other, "/blue")})
		refused(t, err, "")
		if pages.hitsOf(other) != before {
			t.Fatal("a page refused up front was asked for")
		}
	})
	t.Run("AllowedRenders", func(t *testing.T) {
		img, err := render(t, Job{URL: at(allowed, "/blue")})
		if err != nil {
			t.Fatal(err)
		}
		wantColor(t, decode(t, img), 10, 10, blue, 0)
		// No AllowHost: any host the guard lets through.
		img, err = c.Render(context.Background(), Job{URL: at(other, "/blue"), Options: Options{Width: 120, Height: 120}})
		if err != nil {
			t.Fatal(err)
		}
		wantColor(t, decode(t, img), 10, 10, blue, 0)
	})

	t.Run("Redirects", func(t *testing.T) {
		redirect := func(path, to string, status int) {
			pages.handle(allowed, path, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", to)
				w.WriteHeader(status)
			})
		}
		redirect("/found", at(other, "/blue"), http.StatusFound)
		redirect("/moved", at(other, "/blue"), http.StatusMovedPermanently)
		redirect("/temporary", at(other, "/blue"), http.StatusTemporaryRedirect)
		redirect("/see-other", at(other, "/blue"), http.StatusSeeOther)
		// Through an allowed host first, with a relative hop.
		redirect("/chain", at("www.allowed.test", "/hop"), http.StatusFound)
		pages.handle("www.allowed.test", "/hop", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, at(other, "/blue"), http.StatusFound)
		})
		pages.handle(allowed, "/refresh-header", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Refresh", "0; url="+at(other, "/blue"))
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<body style="background:#ff0000">`)
		})
		for _, path := range []string{"/found", "/moved", "/temporary", "/see-other", "/chain", "/refresh-header"} {
			t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
				before := pages.hitsOf(other)
				_, err := render(t, Job{URL: at(allowed, path)})
				refused(t, err, at(other, "/blue"))
				if n := pages.hitsOf(other) - before; n != 0 {
					t.Fatalf("the refused host was asked %d times", n)
				}
			})
		}
		t.Run("ToAnAllowedHost", func(t *testing.T) {
			redirect("/to-www", at("www.allowed.test", "/blue"), http.StatusFound)
			img, err := render(t, Job{URL: at(allowed, "/to-www")})
			if err != nil {
				t.Fatal(err)
			}
			wantColor(t, decode(t, img), 10, 10, blue, 0)
		})
	})

	t.Run("PageNavigations", func(t *testing.T) {
		target := at(other, "/blue")
		ways := map[string]string{
			"meta refresh": `<meta http-equiv="refresh" content="0;url=%s">`,
			"location":     `<script>location = %q</script>`,
			"later":        `<script>setTimeout(() => { location.href = %q }, 30)</script>`,
			"link click":   `<a id="a" href="%s">x</a><script>document.getElementById("a").click()</script>`,
			"form":         `<form id="f" method="post" action="%s"></form><script>document.getElementById("f").submit()</script>`,
			"frame":        `<iframe srcdoc="<script>top.location = '%s'</script>"></iframe>`,
			"replace":      `<script>location.replace(%q)</script>`,
			"prefetched":   `<link rel="prefetch" href="%[1]s"><script>setTimeout(() => { location.href = %[1]q }, 100)</script>`,
		}
		for way, tmpl := range ways {
			html := `<!doctype html><body style="background:#ff0000">` + fmt.Sprintf(tmpl, target)
			path := "/navigates-" + strings.ReplaceAll(way, " ", "-")
			pages.html(allowed, path, html)
			for kind, job := range map[string]Job{"url": {URL: at(allowed, path)}, "html": {HTML: html}} {
				t.Run(way+"/"+kind, func(t *testing.T) {
					_, err := render(t, job)
					refused(t, err, target)
				})
			}
		}
		t.Run("ToAnAllowedHost", func(t *testing.T) {
			for i, tmpl := range []string{`<script>location = %q</script>`, `<meta http-equiv="refresh" content="0;url=%s">`} {
				html := fmt.Sprintf(tmpl, at("www.allowed.test", "/blue"))
				path := fmt.Sprintf("/navigates-allowed-%d", i)
				pages.html(allowed, path, html)
				for kind, job := range map[string]Job{"url": {URL: at(allowed, path)}, "html": {HTML: html}} {
					img, err := render(t, job)
					if err != nil {
						t.Fatalf("%s %s: %v", kind, html, err)
					}
					wantColor(t, decode(t, img), 10, 10, blue, 0)
				}
			}
		})
	})

	t.Run("SubresourcesAreNotAsked", func(t *testing.T) {
		html := fmt.Sprintf(`<!doctype html><body style="margin:0;background:#ff0000"><img src=%q style="display:block">
			<iframe src=%q style="border:0;width:10px;height:10px"></iframe>`, at(other, "/square.svg"), at(other, "/blue"))
		pages.html(allowed, "/with-image", html)
		for kind, job := range map[string]Job{"url": {URL: at(allowed, "/with-image")}, "html": {HTML: html}} {
			t.Run(kind, func(t *testing.T) {
				before := pages.hitsOf(other)
				img, err := render(t, job)
				if err != nil {
					t.Fatalf("a page whose image and frame come from another host: %v", err)
				}
				m := decode(t, img)
				wantColor(t, m, 50, 50, blue, 0)  // the image
				wantColor(t, m, 110, 110, red, 0) // the page
				if pages.hitsOf(other) < before+2 {
					t.Fatal("the other host's image and frame were not loaded")
				}
			})
		}
	})

	t.Run("TheGuardStillApplies", func(t *testing.T) {
		// Allowed by the job, refused by the guard: forbidden, whatever
		// the job's list says.
		blocked := newCountingServer(t, false)
		_, err := c.Render(context.Background(), Job{URL: blocked.URL + "/", AllowHost: func(string) bool { return true }})
		if !errors.Is(err, ErrForbiddenTarget) {
			t.Fatalf("err = %v, want ErrForbiddenTarget", err)
		}
		pages.handle(allowed, "/to-blocked", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, blocked.URL+"/secret", http.StatusFound)
		})
		_, err = c.Render(context.Background(), Job{URL: at(allowed, "/to-blocked"), AllowHost: func(string) bool { return true }})
		if !errors.Is(err, ErrForbiddenTarget) {
			t.Fatalf("redirect: err = %v, want ErrForbiddenTarget", err)
		}
		if n := blocked.hits.Load(); n != 0 {
			t.Fatalf("the blocked server got %d requests", n)
		}
	})
}
