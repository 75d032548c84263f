package browsertest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestCSPReports: a style attribute set by script, an inline <style> and a
// style attribute in the markup each reach the watcher, on the first page
// and after a navigation, from the page's own event and from the browser.
func TestCSPReports(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'")
		switch r.URL.Path {
		case "/script.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write([]byte(`document.addEventListener("DOMContentLoaded", function () { document.body.setAttribute("style", ""); });`))
		case "/markup":
			w.Write([]byte(`<!DOCTYPE html><title>m</title><p style="color: red">inline</p><style>p{}</style>`))
		default:
			w.Write([]byte(`<!DOCTYPE html><title>s</title><script src="/script.js"></script><p>script</p>`))
		}
	}))
	defer srv.Close()

	csp := &cspReports{}
	ctx := WithTimeout(t, New(t, chromedp.WithListener(csp.listen)), 30*time.Second)
	if err := chromedp.Do(ctx, watchCSP()); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, n int) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(csp.all()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d reports, want at least %d: %q", what, len(csp.all()), n, csp.all())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return csp.all()
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	first := wait("style attribute set by script", 3)
	for _, source := range []string{"page event: ", "console: ", "issue: "} {
		found := false
		for _, r := range first {
			found = found || strings.HasPrefix(r, source)
		}
		if !found {
			t.Errorf("no report from %q for a style attribute set by script: %q", source, first)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/markup")); err != nil {
		t.Fatal(err)
	}
	wait("inline style in the markup of the next page", len(first)+2)
}
