package capture

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSSRFSubresourcesBlocked renders an allowed page that tries every way a
// page can reach another loopback server; that server must never be hit,
// and the page must still render.
func TestSSRFSubresourcesBlocked(t *testing.T) {
	c, mux, base := sharedRenderer(t)
	blocked := newCountingServer(t, false)
	servePage(mux, "/ssrf-subresources", subresourcePage(blocked.URL))

	img, err := c.Render(context.Background(), Job{URL: base + "/ssrf-subresources", Options: Options{Width: 200, Height: 100}})
	if err != nil {
		t.Fatalf("the page must render although its sub-resources are refused: %v", err)
	}
	wantColor(t, decode(t, img), 190, 90, red, 0)
	if n := blocked.hits.Load(); n != 0 {
		t.Fatalf("blocked server got %d hits", n)
	}
}

// subresourcePage is a page that reaches for target (a loopback server's
// URL) in every way a page can without a user.
func subresourcePage(target string) string {
	port := target[strings.LastIndex(target, ":")+1:]
	return fmt.Sprintf(`<!doctype html><html><head>
<link rel="stylesheet" href="%[1]s/style.css">
<link rel="prefetch" href="%[1]s/prefetch">
<script src="%[1]s/script.js"></script>
</head><body style="margin:0;background:#ff0000">
<img src="%[1]s/img.png">
<iframe src="%[1]s/frame"></iframe>
<iframe src="%[2]s/frame"></iframe>
<script>
fetch("%[1]s/fetch").catch(() => {});
fetch("%[2]s/fetch", {mode: "no-cors"}).catch(() => {});
const x = new XMLHttpRequest(); x.open("GET", "%[1]s/xhr"); x.send();
try { new WebSocket("%[3]s/ws"); } catch (e) {}
navigator.sendBeacon("%[1]s/beacon", "x");
new Image().src = "http://127.1:%[4]s/img";
</script></body></html>`, target, strings.Replace(target, "127.0.0.1", "localhost", 1), strings.Replace(target, "http", "ws", 1), port)
}

func TestSSRFRedirectToBlocked(t *testing.T) {
	c, mux, base := sharedRenderer(t)
	blocked := newCountingServer(t, false)
	mux.HandleFunc("/redirect-to-blocked", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, blocked.URL+"/secret", http.StatusFound)
	})
	mux.HandleFunc("/redirect-chain", func(w http.ResponseWriter, r *http.Request) {
		// A relative Location, resolved by the browser against the full URL.
		w.Header().Set("Location", "redirect-to-blocked")
		w.WriteHeader(http.StatusMovedPermanently)
	})
	mux.HandleFunc("/redirect-to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	for _, path := range []string{"/redirect-to-blocked", "/redirect-chain"} {
		t.Run(path, func(t *testing.T) {
			_, err := c.Render(context.Background(), Job{URL: base + path})
			if !errors.Is(err, ErrForbiddenTarget) {
				t.Fatalf("err = %v, want ErrForbiddenTarget", err)
			}
			if !strings.Contains(err.Error(), "loopback") {
				t.Errorf("the error should say why: %v", err)
			}
		})
	}
	t.Run("/redirect-to-file", func(t *testing.T) {
		_, err := c.Render(context.Background(), Job{URL: base + "/redirect-to-file"})
		if err == nil {
			t.Fatal("a redirect to file: rendered")
		}
	})
	if n := blocked.hits.Load(); n != 0 {
		t.Fatalf("blocked server got %d hits", n)
	}
}

func TestSSRFInitialURLRefusedBeforeATabOpens(t *testing.T) {
	c, _, _ := sharedRenderer(t)
	blocked := newCountingServer(t, false)
	before, err := c.OpenTabs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	port := blocked.URL[strings.LastIndex(blocked.URL, ":")+1:]
	for _, u := range []string{blocked.URL, "http://0x7f000001:" + port, "http://127.1:" + port, "http://[::ffff:127.0.0.1]:" + port, "http://localhost:" + port} {
		start := time.Now()
		_, err := c.Render(context.Background(), Job{URL: u})
		if !errors.Is(err, ErrForbiddenTarget) {
			t.Fatalf("%s: err = %v", u, err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("%s: refusal took %v", u, d)
		}
	}
	if n, _ := c.OpenTabs(context.Background()); n != before {
		t.Errorf("tabs %d, want %d", n, before)
	}
	if n := blocked.hits.Load(); n != 0 {
		t.Fatalf("blocked server got %d hits", n)
	}
}

func TestSSRFHTMLJob(t *testing.T) {
	c, _, _ := sharedRenderer(t)
	blocked := newCountingServer(t, false)
	html := fmt.Sprintf(`<!doctype html><body style="margin:0;background:#0000ff">
<img src="http://169.254.169.254/latest/meta-data/iam/security-credentials/">
<img src="http://[fd00:ec2::254]/latest/meta-data/">
<img src="%[1]s/img"><iframe src="%[1]s/frame"></iframe>
<iframe src="file:///etc/passwd"></iframe><img src="file:///etc/hostname">
<iframe src="chrome://version"></iframe><iframe src="intent://x"></iframe>
<script>fetch("%[1]s/fetch").catch(() => {})</script>
</body>`, blocked.URL)
	img, err := c.Render(context.Background(), Job{HTML: html, Options: Options{Width: 120, Height: 120, DelayMS: 300}})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	decode(t, img)
	if n := blocked.hits.Load(); n != 0 {
		t.Fatalf("blocked server got %d hits", n)
	}
}

// TestSSRFPageNavigationsRefused: a page that sends itself where the guard
// refuses, in any way a page can (a meta refresh, a script, a link click, a
// form, its frame reaching up) and to any refused target (a blocked address,
// a scheme no loader serves), is refused as a whole at once, for URL and
// HTML jobs alike: never an image of Chromium's error page, never a wait
// for a load that does not come.
func TestSSRFPageNavigationsRefused(t *testing.T) {
	c, mux, base := sharedRenderer(t)
	blocked := newCountingServer(t, false)
	targets := map[string]string{
		"blocked address": blocked.URL + "/secret",
		"intent:":         "intent://x#Intent;scheme=http;end",
		"mailto:":         "mailto:a@example.com",
		"custom scheme":   "web+peekshot:x",
	}
	ways := map[string]string{
		"meta refresh": `<meta http-equiv="refresh" content="0;url=%s">`,
		"location":     `<script>location = %q</script>`,
		"later":        `<script>setTimeout(() => { location.href = %q }, 30)</script>`,
		"link click":   `<a id="a" href="%s">x</a><script>document.getElementById("a").click()</script>`,
		"form":         `<form id="f" method="post" action="%s"></form><script>document.getElementById("f").submit()</script>`,
		"frame":        `<iframe srcdoc="<script>top.location = '%s'</script>"></iframe>`,
	}
	for target, u := range targets {
		for way, tmpl := range ways {
			html := `<!doctype html><body style="background:#ff0000">` + fmt.Sprintf(tmpl, u)
			path := "/navigates/" + strings.ReplaceAll(target+"-"+way, " ", "-")
			servePage(mux, path, html)
			for kind, job := range map[string]Job{
				"url":  {URL: base + path},
				"html": {HTML: html},
			} {
				t.Run(target+"/"+way+"/"+kind, func(t *testing.T) {
					job.Options = Options{Width: 120, Height: 120, DelayMS: 200}
					_, err := c.Render(context.Background(), job)
					// Not a timeout: the shared renderer waits 15 s for that.
					if !errors.Is(err, ErrForbiddenTarget) || errors.Is(err, ErrTimeout) {
						t.Fatalf("err = %v, want ErrForbiddenTarget at once", err)
					}
					if !strings.Contains(err.Error(), "the page went to ") {
						t.Errorf("the error should say where the page went: %v", err)
					}
				})
			}
		}
	}
	if n := blocked.hits.Load(); n != 0 {
		t.Fatalf("blocked server got %d hits", n)
	}

	t.Run("allowed navigations still render", func(t *testing.T) {
		servePage(mux, "/navigates/next", colourPage)
		for i, html := range []string{
			`<script>location = "next"</script>`,
			`<meta http-equiv="refresh" content="0;url=next">`,
		} {
			path := fmt.Sprintf("/navigates/allowed-%d", i)
			servePage(mux, path, html)
			img, err := c.Render(context.Background(), Job{URL: base + path, Options: Options{Width: 100, Height: 100, DelayMS: 300}})
			if err != nil {
				t.Fatalf("%s: %v", html, err)
			}
			wantColor(t, decode(t, img), 10, 10, blue, 0)
		}
		for _, u := range []string{"about:blank", "javascript:void(0)"} {
			if _, err := c.Render(context.Background(), Job{HTML: fmt.Sprintf(`<script>location = %q</script>`, u), Options: Options{Width: 100, Height: 100}}); err != nil {
				t.Errorf("%s: %v", u, err)
			}
		}
	})
}

// countingResolver answers with public addresses for the first calls and
// with loopback afterwards, like a DNS-rebinding attacker.
type countingResolver struct {
	calls  atomic.Int64
	honest int64
}

func (r *countingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host != "rebind.test" {
		return nil, errors.New("no such host")
	}
	if r.calls.Add(1) <= r.honest {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// TestSSRFRebinding checks the proxy layer on its own: the up-front checks
// see a public address, the connection-time lookup sees loopback, and the
// proxy refuses rather than dials.
func TestSSRFRebinding(t *testing.T) {
	requireChromium(t)
	blocked := newCountingServer(t, false)
	res := &countingResolver{honest: 2} // Render's check and the request check
	c, _ := newRenderer(t, Config{Guard: NewGuard(GuardConfig{Resolver: res})}, http.NotFoundHandler())
	port := blocked.URL[strings.LastIndex(blocked.URL, ":")+1:]
	_, err := c.Render(context.Background(), Job{URL: "http://rebind.test:" + port + "/"})
	if !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("err = %v, want ErrForbiddenTarget", err)
	}
	if res.calls.Load() < 3 {
		t.Errorf("resolver asked %d times; the proxy must resolve for itself", res.calls.Load())
	}
	if n := blocked.hits.Load(); n != 0 {
		t.Fatalf("blocked server got %d hits", n)
	}
}

func TestAllowPrivateRendersLoopback(t *testing.T) {
	requireChromium(t)
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, colourPage)
	})
	c, base := newRenderer(t, Config{Guard: NewGuard(GuardConfig{AllowPrivate: true})}, mux)
	img, err := c.Render(context.Background(), Job{URL: strings.Replace(base, "127.0.0.1", "localhost", 1) + "/", Options: Options{Width: 100, Height: 100}})
	if err != nil {
		t.Fatal(err)
	}
	wantColor(t, decode(t, img), 10, 10, blue, 0)

	t.Run("the SSRF test page really makes requests", func(t *testing.T) {
		// The control for TestSSRFSubresourcesBlocked: without the guard the
		// same page does hit the other server.
		other := newCountingServer(t, false)
		if _, err := c.Render(context.Background(), Job{HTML: subresourcePage(other.URL), Options: Options{Width: 100, Height: 100}}); err != nil {
			t.Fatal(err)
		}
		if n := other.hits.Load(); n < 8 {
			t.Fatalf("only %d hits", n)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		// A port nothing listens on: the page cannot load.
		_, err := c.Render(context.Background(), Job{URL: "http://127.0.0.1:1/"})
		if !errors.Is(err, ErrTargetUnreachable) {
			t.Fatalf("err = %v, want ErrTargetUnreachable", err)
		}
	})
}
