// Package browsertest starts Debian's Chromium for browser tests through
// chromedp, and names the browser the renderer tests render with. A missing
// Chromium fails the test with how to install it; it never skips.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/audits"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/peekshot/peekshot/capture"
)

// ChromePath is PEEKSHOT_CHROME or the browser PeekShot renders with by
// default: Debian's chromium-headless-shell where installed, else chromium.
func ChromePath() string {
	if p := os.Getenv("PEEKSHOT_CHROME"); p != "" {
		return p
	}
	return capture.DefaultChromePath()
}

// Options are the flags every PeekShot Chromium runs with: headless, no
// sandbox (tests run as root), and nothing that reaches the network.
func Options(path string) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 900),
	)
}

// New starts a browser for the test and returns the context of its first
// tab. The browser stops when the test ends.
//
// It is always full Chromium (capture.FullChromiumPath), not the headless
// shell PeekShot renders with: the dashboard tests drive the pages as a
// person's browser does, and in their flow (after htmx swaps the page)
// chromium-headless-shell refuses the Copy button's
// navigator.clipboard.writeText with "Write permission denied" although the
// test grants the permission, where Chromium copies.
func New(t testing.TB, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	path := capture.FullChromiumPath
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("Chromium not found at %s: install it with `apt-get install chromium`", path)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(Options(path), chromedp.UserDataDir(t.TempDir()))...)
	ctx, cancel := chromedp.NewContext(actx, opts...)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// WithTimeout bounds a step without stopping the browser.
func WithTimeout(t testing.TB, ctx context.Context, d time.Duration) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return c
}

// CSS makes a query use document.querySelectorAll.
func CSS(selector string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, n *chromedp.Node) ([]cdp.NodeID, error) {
		res, err := cdp.Call(ctx, t, dom.QuerySelectorAll, dom.QuerySelectorAllParams{NodeID: n.NodeID, Selector: selector})
		return res.NodeIDs, err
	})
}

// Click clicks the first element matching a CSS selector, once visible.
func Click(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(selector, CSS(selector), chromedp.NodeVisible)
}

// WaitVisible waits until an element matching a CSS selector is visible.
func WaitVisible(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(selector, CSS(selector))
}

// WaitGone waits until nothing matches a CSS selector.
func WaitGone(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitNotPresent(selector, CSS(selector))
}

// Type types text into the element matching a CSS selector.
func Type(selector, text string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(selector, text, CSS(selector), chromedp.NodeVisible)
}

// Text is the visible text of the first element matching a CSS selector.
func Text(selector string) chromedp.Action[string] {
	return chromedp.Text(selector, CSS(selector), chromedp.NodeVisible)
}

// Screenshot saves a PNG of the page to dir/name.png when dir is set; it
// is how the README's pictures and the design reviews are made.
func Screenshot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if dir == "" {
			return nil
		}
		png, err := chromedp.CaptureScreenshot()(ctx, t)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(dir+"/"+name+".png", png, 0o644)
	})
}

// Until waits until a JavaScript expression is truthy.
func Until(expression string, opts ...chromedp.PollOption) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expression, append([]chromedp.PollOption{chromedp.WithPollingTimeout(10 * time.Second)}, opts...)...)
}

// Page drives one tab for a test, failing the test on the first error with
// the page's HTML for context, and on any Content-Security-Policy report.
type Page struct {
	t   testing.TB
	Ctx context.Context
	csp *cspReports
}

// NewPage starts a browser for the test with a 60-second budget. Every
// Content-Security-Policy violation of every document the tab loads fails
// the test: the pages must work under the policy, not around it.
func NewPage(t testing.TB) *Page {
	t.Helper()
	csp := &cspReports{}
	ctx := WithTimeout(t, New(t, chromedp.WithListener(csp.listen)), 60*time.Second)
	if err := chromedp.Do(ctx, watchCSP()); err != nil {
		t.Fatalf("watch Content-Security-Policy reports: %v", err)
	}
	p := &Page{t: t, Ctx: ctx, csp: csp}
	t.Cleanup(func() {
		// Reports of the last steps may still be on their way.
		time.Sleep(100 * time.Millisecond)
		if r := csp.all(); len(r) > 0 {
			t.Errorf("Content-Security-Policy violations:\n%s", strings.Join(r, "\n"))
		}
	})
	return p
}

// Step runs actions in order; name says what failed. A step that leads to
// a Content-Security-Policy report fails too.
func (p *Page) Step(name string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.Ctx, actions...); err != nil {
		html, _ := chromedp.Run(p.Ctx, chromedp.OuterHTML("body", CSS("body")))
		p.t.Fatalf("%s: %v\npage:\n%.3000s", name, err, html)
	}
	if r := p.csp.all(); len(r) > 0 {
		p.t.Fatalf("%s: Content-Security-Policy violations:\n%s", name, strings.Join(r, "\n"))
	}
}

// cspBinding is the function the page calls with each violation it sees.
const cspBinding = "__peekshotCSPViolation"

// cspListener runs in every document before its own scripts, so even a
// violation during parsing is seen.
const cspListener = `document.addEventListener("securitypolicyviolation", function (e) {
	window.` + cspBinding + `(e.violatedDirective + " at " + e.sourceFile + ":" + e.lineNumber + ":" + e.columnNumber +
		" blocked " + (e.blockedURI || "(inline)") + (e.sample ? " sample " + JSON.stringify(e.sample) : ""));
}, true);`

// cspReports collects violations from three sources, each of which can
// see one the others miss: the page's securitypolicyviolation event, the
// browser's console log and its issues panel (Audits).
type cspReports struct {
	mu      sync.Mutex
	reports []string
}

func (c *cspReports) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reports = append(c.reports, s)
}

func (c *cspReports) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.reports...)
}

func (c *cspReports) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventBindingCalled:
		if ev.Name == cspBinding {
			c.add("page event: " + ev.Payload)
		}
	case *log.EventEntryAdded:
		if ev.Entry != nil && strings.Contains(ev.Entry.Text, "Content Security Policy") {
			c.add(fmt.Sprintf("console: %s (%s:%d)", ev.Entry.Text, ev.Entry.URL, ev.Entry.LineNumber))
		}
	case *audits.EventIssueAdded:
		if ev.Issue != nil && ev.Issue.Details != nil && ev.Issue.Details.ContentSecurityPolicyIssueDetails != nil {
			d := ev.Issue.Details.ContentSecurityPolicyIssueDetails
			where := ""
			if l := d.SourceCodeLocation; l != nil {
				where = fmt.Sprintf(" at %s:%d:%d", l.URL, l.LineNumber, l.ColumnNumber)
			}
			c.add(fmt.Sprintf("issue: %s %s%s blocked %q", d.ContentSecurityPolicyViolationType, d.ViolatedDirective, where, d.BlockedURL))
		}
	}
}

// watchCSP turns on the three sources of cspReports for the tab.
func watchCSP() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, log.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, t, audits.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, t, runtime.AddBinding, runtime.AddBindingParams{Name: cspBinding}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
		return err
	})
}

// Text is the trimmed visible text of the first element matching selector.
func (p *Page) Text(selector string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.Ctx, Text(selector))
	if err != nil {
		p.t.Fatalf("text of %s: %v", selector, err)
	}
	return strings.TrimSpace(s)
}

// Eval evaluates a JavaScript expression that yields a string.
func (p *Page) Eval(js string, opts ...chromedp.EvaluateOption) string {
	p.t.Helper()
	s, err := chromedp.Run(p.Ctx, chromedp.Evaluate[string](js, opts...))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// NoSidewaysScroll fails the test when the page is wider than its window,
// naming the elements that stick out the most.
func (p *Page) NoSidewaysScroll(what string) {
	p.t.Helper()
	wide := p.Eval(`String(document.documentElement.scrollWidth - window.innerWidth)`)
	if wide == "0" {
		return
	}
	culprits := p.Eval(`(() => {
		const w = window.innerWidth, out = [];
		for (const el of document.body.querySelectorAll('*')) {
			const r = el.getBoundingClientRect();
			if (r.right > w + 1 && r.width > 0) {
				out.push([Math.round(r.right - w), el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') + (el.dataset.testid ? '[' + el.dataset.testid + ']' : '')]);
			}
		}
		out.sort((a, b) => b[0] - a[0]);
		return out.slice(0, 8).map(([d, n]) => n + ' +' + d + 'px').join('\n');
	})()`)
	p.t.Fatalf("%s scrolls sideways by %spx; what sticks out:\n%s", what, wide, culprits)
}
