package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"iter"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"golang.org/x/image/webp"
)

const (
	// settleQuiet is how long the network must be idle before the capture
	// of a page that made requests after its load event: late images and
	// fonts still make it.
	settleQuiet = 100 * time.Millisecond
	// settleMax bounds the wait after the load event for pages that never
	// go quiet (polling, streaming).
	settleMax = time.Second
	// framesWait bounds the wait for a page's first frames after its load
	// event; a page that broke requestAnimationFrame waits this long.
	framesWait = 250 * time.Millisecond
	// tabGoneWait bounds the wait for Chromium to really drop a closed tab.
	tabGoneWait = 2 * time.Second
	// maxWebPSide is the largest side the WebP format can hold.
	maxWebPSide = 16383
)

// pageScript runs in every document before the page's own scripts. Dialogs
// return at once and window.open opens nothing, so a page cannot stall the
// render with an alert loop or leak windows. Dialog dismissal and popup
// closing on the browser side catch whatever this misses.
const pageScript = `(() => {
	const noop = () => {};
	window.alert = noop;
	window.confirm = () => false;
	window.prompt = () => null;
	window.print = noop;
	window.open = () => null;
})();`

var errPageCrashed = fmt.Errorf("%w: the page crashed while rendering (it may have used too much memory)", ErrUnavailable)

// tab is one job's page, alone in its own browser context: cookies, cache
// and storage of one job never reach another, and disposing of the context
// closes every window the page managed to open.
type tab struct {
	ctx       context.Context // chromedp context of the tab
	close     context.CancelFunc
	targetID  target.ID
	contextID cdp.BrowserContextID
	prepared  bool     // see prepareTab
	viewport  viewport // as last set
}

// viewport is a tab's emulated screen: CSS size and device scale factor.
type viewport struct {
	width, height int
	scale         float64
}

// setViewport emulates a screen of the given size on t, unless it has it.
func setViewport(ctx context.Context, t *tab, width, height int, scale float64) error {
	v := viewport{width, height, scale}
	if t.viewport == v {
		return nil
	}
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width:             int64(width),
		Height:            int64(height),
		DeviceScaleFactor: scale,
	}); err != nil {
		return fmt.Errorf("set viewport: %w", err)
	}
	t.viewport = v
	return nil
}

// openTab creates the tab. The creation itself is not bound to the job's
// deadline: a deadline in the middle would leave a tab that nobody closes.
// If the job gives up first, the tab is closed as soon as it exists.
func (c *Chromium) openTab(ctx context.Context, b *chromiumProcess) (*tab, error) {
	proxyURL := c.proxy.URL()
	tctx, tcancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(func(p *target.CreateBrowserContextParams) {
		p.ProxyServer = proxyURL
		p.ProxyBypassList = "<-loopback>"
	}))
	started := time.Now()
	errc := make(chan error, 1)
	c.bg.Go(func() { errc <- chromedp.Do(tctx) })
	select {
	case err := <-errc:
		if err != nil {
			tcancel()
			return nil, fmt.Errorf("open tab: %w", err)
		}
	case <-ctx.Done():
		c.bg.Go(func() {
			<-errc
			tcancel()
		})
		if time.Since(started) > slowTabOpen {
			c.retire(b, "opening a tab took too long")
		}
		return nil, ctx.Err()
	}
	cc := chromedp.FromContext(tctx)
	return &tab{ctx: tctx, close: tcancel, targetID: cc.Target.TargetID, contextID: cc.BrowserContextID}, nil
}

// closeTab closes t and waits until Chromium no longer lists anything of its
// browser context, so that a finished job has really left nothing behind.
func (c *Chromium) closeTab(b *chromiumProcess, t *tab) {
	t.close()
	if b.lost() || t.contextID == "" {
		// Without its own context id the tab cannot be told from the
		// browser's first tab, which must stay.
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tabGoneWait)
	defer cancel()
	for {
		res, err := cdp.Call(ctx, b.session, target.GetTargets, target.GetTargetsParams{})
		if err != nil {
			return
		}
		left := false
		for _, info := range res.TargetInfos {
			if info.BrowserContextID == t.contextID {
				left = true
				if info.Type == "page" {
					cdp.Call(ctx, b.session, target.CloseTarget, target.CloseTargetParams{TargetID: info.TargetID}) //nolint:errcheck // best effort, checked again next round
				}
			}
		}
		if !left {
			return
		}
		select {
		case <-ctx.Done():
			c.log.Warn("a closed tab is still listed by Chromium", "target", t.targetID)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// renderOn renders job in a tab of b of its own (see tabFor).
func (c *Chromium) renderOn(jobCtx context.Context, b *chromiumProcess, job Job) (Image, error) {
	openStart := time.Now()
	t, err := c.tabFor(jobCtx, b)
	if err != nil {
		return Image{}, err
	}
	// The image does not wait for the tab to close.
	defer c.bg.Go(func() { c.closeTab(b, t) })

	// The page's helpers stop before the tab closes (defers run in reverse).
	var helpers sync.WaitGroup
	defer helpers.Wait()

	// ctx ends with the tab, the browser, the job's deadline or a crash.
	ctx, cancel := context.WithCancelCause(t.ctx)
	defer cancel(nil)
	stop := context.AfterFunc(jobCtx, func() { cancel(context.Cause(jobCtx)) })
	defer stop()

	pg := &pageRun{
		c:         c,
		tab:       t,
		jobURL:    job.URL,
		allowHost: job.AllowHost,
		cancel:    cancel,
		inflight:  make(map[network.RequestID]bool),
		ignored:   make(map[network.RequestID]bool),
		lastNet:   time.Now(),
		loaded:    make(chan struct{}, 1),
		live:      make(chan struct{}),
		opening:   time.Since(openStart),
	}
	if err := chromedp.Listen(ctx, pg.observe); err != nil {
		return Image{}, fmt.Errorf("listen: %w", err)
	}
	// Subscribe before anything can happen, then serve in the background.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	created := chromedp.BrowserEvents(ctx, target.TargetCreated)
	helpers.Go(func() { pg.dismissDialogs(ctx, dialogs) })
	helpers.Go(func() { pg.interceptRequests(ctx, paused, &helpers) })
	helpers.Go(func() { pg.closePopups(ctx, created) })
	watching, stopWatching := context.WithCancel(ctx)
	pg.stopWatching = stopWatching
	helpers.Go(func() { pg.watchMainThread(watching) })

	img, err := pg.render(ctx, job)
	// A page that went somewhere the guard refuses is refused as a whole,
	// even when something could be captured: what it showed was the
	// browser's error page, and a refused job costs nothing.
	if fe := pg.forbiddenErr(); fe != nil {
		return Image{}, fe
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errPageCrashed) || errors.Is(cause, ErrPageUnresponsive) {
			return Image{}, cause
		}
		return Image{}, err
	}
	return img, nil
}

// Probing the page's main thread (see watchMainThread).
const (
	// probeAfter is when the first probe goes: most renders are done
	// before, and pay nothing for it.
	probeAfter = time.Second
	// probeEvery is the pause between a probe's answer and the next probe.
	probeEvery = 500 * time.Millisecond
)

// watchMainThread stops the job when the page's main thread does not
// answer a trivial evaluation for Config.UnresponsiveAfter: a script that
// never yields, such as while(true){}, keeps the page from ever loading or
// being captured, and would otherwise hold its render slot and burn a CPU
// until the job's deadline. A page that is merely slow (long but finite
// scripts, a page that keeps loading) still answers and runs to its
// deadline. Probes start once the job's document exists (before a URL's
// page commits, there is no page to answer them: a slow server is not a
// busy page), and end when the capture starts (ctx ends then), whose own
// work may keep the main thread busy for long: render probes once more
// before it.
func (p *pageRun) watchMainThread(ctx context.Context) {
	select {
	case <-p.live:
	case <-ctx.Done():
		return
	}
	if sleep(ctx, probeAfter) != nil {
		return
	}
	for {
		if err := p.probe(ctx); err != nil {
			p.cancel(err)
			return
		}
		if sleep(ctx, probeEvery) != nil {
			return
		}
	}
}

// probe returns an error wrapping ErrPageUnresponsive when the page's main
// thread does not answer a trivial evaluation within
// Config.UnresponsiveAfter. An answer, an error of a page between
// documents, or the end of ctx is no such error.
func (p *pageRun) probe(ctx context.Context) error {
	limit := p.c.cfg.UnresponsiveAfter
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	_, err := chromedp.Call(pctx, runtime.Evaluate, runtime.EvaluateParams{Expression: "0"})
	if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	p.c.log.Info("stopped a page whose main thread stopped answering", "after", limit)
	return fmt.Errorf("%w: its scripts kept it busy for %s without a break", ErrPageUnresponsive, limit)
}

// pageRun is the state of one render while its page loads.
type pageRun struct {
	c      *Chromium
	tab    *tab
	jobURL string // the job's URL, or "" for HTML
	// allowHost is the job's AllowHost: which hosts the page may be.
	allowHost func(host string) bool
	cancel    context.CancelCauseFunc
	// stopWatching ends watchMainThread, when the capture starts.
	stopWatching context.CancelFunc

	mu        sync.Mutex
	inflight  map[network.RequestID]bool
	ignored   map[network.RequestID]bool // the browser's own fetches (see browserOwn)
	lastNet   time.Time
	forbidden error

	loaded   chan struct{} // receives a value per load event of the page
	live     chan struct{} // closed once the job's document exists (see watchMainThread)
	liveOnce sync.Once
	opening  time.Duration // how long the tab took to open
}

// observe sees every event of the tab, in order, on chromedp's reading
// goroutine; it must not block or send commands.
func (p *pageRun) observe(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		p.mu.Lock()
		if p.browserOwn(ev) {
			p.ignored[ev.RequestID] = true
		} else {
			p.inflight[ev.RequestID] = true
			p.lastNet = time.Now()
		}
		p.mu.Unlock()
		// A navigation to a scheme that no loader serves (intent:, mailto:,
		// a custom one) never reaches the interception in decide: the
		// browser would hand it to another program and the page would wait
		// for a load that never comes.
		if ev.Request != nil && p.isTopLevel(ev.Type, ev.FrameID) {
			if fe := p.refusedScheme(ev.Request.URL, true); fe != nil {
				p.refuse(fe)
			}
		}
	case *network.EventLoadingFinished:
		p.requestDone(ev.RequestID)
	case *network.EventLoadingFailed:
		p.requestDone(ev.RequestID)
	case *network.EventResponseReceived:
		// The proxy refused a page that passed the check in decide (its
		// host resolved elsewhere when the proxy asked: DNS rebinding).
		if p.isTopLevel(ev.Type, ev.FrameID) && ev.Response != nil && headerValue(ev.Response.Headers, refusedHeader) == p.c.proxy.token {
			p.refuse(p.named(ev.Response.URL, &ForbiddenError{Host: hostOf(ev.Response.URL), Reason: "a blocked address"}))
		}
	case *page.EventFrameNavigated:
		if ev.Frame != nil && ev.Frame.ID == cdp.FrameID(p.tab.targetID) {
			p.documentLive()
		}
	case *page.EventLoadEventFired:
		select {
		case p.loaded <- struct{}{}:
		default:
		}
	case *inspector.EventTargetCrashed:
		p.cancel(errPageCrashed)
	}
}

// documentLive notes that the job's document exists: a URL's page has
// committed, or HTML is being written into the tab's blank page.
func (p *pageRun) documentLive() { p.liveOnce.Do(func() { close(p.live) }) }

func (p *pageRun) requestDone(id network.RequestID) {
	p.mu.Lock()
	if p.ignored[id] {
		delete(p.ignored, id)
	} else {
		delete(p.inflight, id)
		p.lastNet = time.Now()
	}
	p.mu.Unlock()
}

// browserOwn reports a request that the browser makes for itself rather
// than for the page: full Chromium fetches the page's icon (/favicon.ico, or
// its <link rel=icon>) 30-75 ms after every load, type Other and initiated
// by nothing in the page. It cannot change the picture, so the settle does
// not wait for it (Config.Baseline does, as before).
func (p *pageRun) browserOwn(ev *network.EventRequestWillBeSent) bool {
	return !p.c.cfg.Baseline && ev.Type == network.ResourceTypeOther &&
		ev.Initiator != nil && ev.Initiator.Type == network.InitiatorTypeOther &&
		ev.FrameID == cdp.FrameID(p.tab.targetID)
}

// isTopLevel reports whether a request or response is a document of the
// tab's own top-level frame: the page itself, a redirect of it, or a
// navigation it made.
func (p *pageRun) isTopLevel(typ network.ResourceType, frame cdp.FrameID) bool {
	return typ == network.ResourceTypeDocument && frame == cdp.FrameID(p.tab.targetID)
}

// refuse ends the job at once because its page went where the guard
// refuses: it is answered ErrForbiddenTarget whatever the page does next.
// It neither blocks nor sends commands, so observe may call it.
func (p *pageRun) refuse(err error) {
	p.noteForbidden(err)
	p.cancel(err)
}

// noteForbidden records why the job is refused, unless it already is.
func (p *pageRun) noteForbidden(err error) {
	p.mu.Lock()
	if p.forbidden == nil {
		p.forbidden = err
	}
	p.mu.Unlock()
}

// notAllowed refuses a page the job's AllowHost does not allow.
func (p *pageRun) notAllowed(rawURL, host string) *NotAllowedError {
	e := &NotAllowedError{Host: host}
	if rawURL != p.jobURL {
		e.URL = rawURL
	}
	return e
}

// named says where the page went when that was not the job's own URL.
func (p *pageRun) named(rawURL string, fe *ForbiddenError) *ForbiddenError {
	if rawURL != p.jobURL {
		fe.URL = rawURL
	}
	return fe
}

func (p *pageRun) forbiddenErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forbidden
}

func (p *pageRun) dismissDialogs(ctx context.Context, dialogs iter.Seq2[page.EventJavascriptDialogOpening, error]) {
	for _, err := range dialogs {
		if err != nil {
			return
		}
		chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false}) //nolint:errcheck // the dialog may be gone already
	}
}

// closePopups closes any page that appears in the job's browser context
// besides the job's own tab.
func (p *pageRun) closePopups(ctx context.Context, created iter.Seq2[target.EventTargetCreated, error]) {
	for ev, err := range created {
		if err != nil {
			return
		}
		info := ev.TargetInfo
		if info == nil || info.BrowserContextID != p.tab.contextID || info.TargetID == p.tab.targetID || info.Type != "page" {
			continue
		}
		chromedp.CallBrowser(ctx, target.CloseTarget, target.CloseTargetParams{TargetID: info.TargetID}) //nolint:errcheck // it may have closed itself
	}
}

// interceptRequests decides on every request the page makes. The proxy
// enforces the guard on the network; this catches schemes that never reach
// the proxy (file:, chrome:, intent:, mailto:, ...) and tells a refused page
// from a broken one. Whenever the top-level page itself is refused (the
// job's URL, a redirect, or a navigation the page makes: a meta refresh, a
// script, a link), the job ends at once as refused, whatever the reason.
func (p *pageRun) interceptRequests(ctx context.Context, paused iter.Seq2[fetch.EventRequestPaused, error], wg *sync.WaitGroup) {
	for ev, err := range paused {
		if err != nil {
			return
		}
		wg.Go(func() { p.decide(ctx, ev) })
	}
}

func (p *pageRun) decide(ctx context.Context, ev fetch.EventRequestPaused) {
	rawURL := ""
	if ev.Request != nil {
		rawURL = ev.Request.URL
	}
	scheme := schemeOf(rawURL)
	topLevel := p.isTopLevel(ev.ResourceType, ev.FrameID)

	var refuse error
	if fe := p.refusedScheme(rawURL, topLevel); fe != nil {
		refuse = fe
	}
	if refuse == nil && topLevel && (scheme == "http" || scheme == "https") {
		// Checked here, and not only by the proxy, so that Render can
		// answer "forbidden" rather than "unreachable".
		var fe *ForbiddenError
		if err := p.c.cfg.Guard.CheckURL(ctx, rawURL); errors.As(err, &fe) {
			refuse = p.named(rawURL, fe)
		} else if host := hostOf(rawURL); p.allowHost != nil && !p.allowHost(host) {
			refuse = p.notAllowed(rawURL, host)
		}
	}
	if refuse == nil {
		chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID}) //nolint:errcheck // the page may be closing
		return
	}
	p.c.log.Info("refused a request of a rendered page", "url", truncate(rawURL, 200), "reason", refuse.Error(), "page", topLevel)
	if topLevel {
		// Noted before the browser hears of it: the failed request ends
		// the navigation at once (net::ERR_BLOCKED_BY_CLIENT), and the job
		// must read that as refused, not as an unreachable page.
		p.noteForbidden(refuse)
	}
	chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient}) //nolint:errcheck // the page may be closing
	if topLevel {
		p.refuse(refuse)
	}
}

// refusedScheme refuses a URL whose scheme a render never loads: only web
// schemes (and WebSockets for sub-resources) and local documents (data:,
// blob:, about:) are let through; the proxy and the guard judge the rest.
func (p *pageRun) refusedScheme(rawURL string, topLevel bool) *ForbiddenError {
	switch scheme := schemeOf(rawURL); scheme {
	case "http", "https", "data", "blob", "about":
		return nil
	case "ws", "wss":
		if !topLevel {
			return nil
		}
		fallthrough
	default:
		return p.named(rawURL, &ForbiddenError{Reason: scheme + ": URLs cannot be rendered"})
	}
}

func schemeOf(rawURL string) string {
	scheme, _, _ := strings.Cut(rawURL, ":")
	return strings.ToLower(scheme)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// render loads the page, waits for it, and captures it.
func (p *pageRun) render(ctx context.Context, job Job) (Image, error) {
	o := job.Options
	setupStart := time.Now()
	if err := p.c.prepareTab(ctx, p.tab); err != nil {
		return Image{}, err
	}
	if err := setViewport(ctx, p.tab, o.Width, o.Height, o.DeviceScaleFactor); err != nil {
		return Image{}, err
	}

	start := time.Now()
	setup := time.Since(setupStart)
	if job.URL != "" {
		if err := p.navigate(ctx, job.URL); err != nil {
			return Image{}, err
		}
	} else if err := p.setContent(ctx, job.HTML); err != nil {
		return Image{}, err
	}
	loaded := time.Now()
	if err := p.settle(ctx, loaded); err != nil {
		return Image{}, err
	}
	settled := time.Now()
	if o.DelayMS > 0 {
		if err := sleep(ctx, time.Duration(o.DelayMS)*time.Millisecond); err != nil {
			return Image{}, err
		}
	}
	// The page must answer before the capture, which waits for its main
	// thread: a page that started spinning after its load event is stopped
	// here rather than at its deadline. The capture's own work then may
	// keep the main thread busy for long (a large full page).
	if err := p.probe(ctx); err != nil {
		return Image{}, err
	}
	p.stopWatching()
	shotAt := time.Now()
	img, err := p.capture(ctx, o)
	p.c.log.Debug("rendered",
		"open", p.opening, "setup", setup, "load", loaded.Sub(start), "settle", settled.Sub(loaded),
		"capture", time.Since(shotAt), "bytes", len(img.Data), "err", err)
	return img, err
}

// navigate loads rawURL and waits for its load event.
func (p *pageRun) navigate(ctx context.Context, rawURL string) error {
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(rawURL))
	if fe := p.forbiddenErr(); fe != nil {
		return fe
	}
	if err != nil {
		var le *chromedp.LoadError
		if errors.As(err, &le) {
			return fmt.Errorf("%w: %s", ErrTargetUnreachable, le.ErrorText)
		}
		return fmt.Errorf("navigate: %w", err)
	}
	// The proxy's own answers are not the page: say what happened. (A
	// refusal of the proxy ended the job in observe already.)
	if resp != nil && headerValue(resp.Headers, unreachableHeader) == p.c.proxy.token {
		return fmt.Errorf("%w: could not connect to %s", ErrTargetUnreachable, hostOf(resp.URL))
	}
	return nil
}

// setContent loads html into the blank tab and waits for its load event.
func (p *pageRun) setContent(ctx context.Context, html string) error {
	// Drop a load event that may have come from the blank page.
	select {
	case <-p.loaded:
	default:
	}
	p.documentLive()
	if _, err := chromedp.Call(ctx, page.SetDocumentContent, page.SetDocumentContentParams{
		FrameID: cdp.FrameID(p.tab.targetID),
		HTML:    html,
	}); err != nil {
		return fmt.Errorf("set content: %w", err)
	}
	select {
	case <-p.loaded:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// settle waits after the load event until the page is quiet. It first lets
// the page render two frames, in which what its load handlers started and
// the first paint after the load (late fonts and images) begin their
// requests. A page with no request in flight then, and none made since the
// load event, is ready. Otherwise the capture waits until no request has
// been in flight for settleQuiet, at most settleMax after the load event.
func (p *pageRun) settle(ctx context.Context, loadedAt time.Time) error {
	framed, err := p.nextFrames(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	quiet := framed && len(p.inflight) == 0 && p.lastNet.Before(loadedAt)
	p.mu.Unlock()
	if quiet {
		return nil
	}
	limit := loadedAt.Add(settleMax)
	for {
		p.mu.Lock()
		idle := len(p.inflight) == 0 && time.Since(p.lastNet) >= settleQuiet
		p.mu.Unlock()
		if idle || time.Now().After(limit) {
			return nil
		}
		if err := sleep(ctx, 25*time.Millisecond); err != nil {
			return err
		}
	}
}

// nextFrames waits until the page has rendered two frames, at most
// framesWait. It reports false when the page did not get there (it spins,
// or replaced requestAnimationFrame), so the caller waits the long way.
func (p *pageRun) nextFrames(ctx context.Context) (bool, error) {
	fctx, cancel := context.WithTimeout(ctx, framesWait)
	defer cancel()
	yes := true
	_, err := chromedp.Call(fctx, runtime.Evaluate, runtime.EvaluateParams{
		Expression:   `new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done())))`,
		AwaitPromise: &yes,
		Silent:       &yes,
	})
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	return err == nil, nil
}

func (p *pageRun) capture(ctx context.Context, o Options) (Image, error) {
	fromSurface := true
	params := page.CaptureScreenshotParams{
		Format:      page.CaptureScreenshotFormat(o.Format),
		FromSurface: &fromSurface,
	}
	if o.Format != FormatPNG {
		q := int64(o.Quality)
		params.Quality = &q
	}
	tall := float64(o.Height)
	if o.FullPage {
		m, err := chromedp.Call(ctx, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return Image{}, fmt.Errorf("measure page: %w", err)
		}
		if m.CSSContentSize != nil {
			tall = max(tall, math.Ceil(m.CSSContentSize.Height))
		}
	}
	h := captureHeight(o, tall)
	if o.FullPage || h < tall {
		params.Clip = &page.Viewport{Width: float64(o.Width), Height: h, Scale: 1}
	}
	if o.FullPage {
		beyond := true
		params.CaptureBeyondViewport = &beyond
	}
	res, err := chromedp.Call(ctx, page.CaptureScreenshot, params)
	if err != nil {
		return Image{}, fmt.Errorf("capture: %w", err)
	}
	cfg, err := decodeConfig(o.Format, res.Data)
	if err != nil {
		return Image{}, fmt.Errorf("capture: Chromium returned a bad %s: %w", o.Format, err)
	}
	return Image{Data: res.Data, ContentType: contentType(o.Format), Width: cfg.Width, Height: cfg.Height,
		CSSHeight: int(h), Clipped: h < tall}, nil
}

// captureHeight is the CSS height to capture of a page (or viewport) tall
// CSS pixels high: all of it, but a full page at most MaxFullPageHeight, a
// WebP image at most maxWebPSide device pixels high, and any image at most
// MaxImagePixels. Every width the bounds allow leaves over a thousand CSS
// pixels, so there is always something sensible to capture.
func captureHeight(o Options, tall float64) float64 {
	h := tall
	if o.FullPage {
		h = min(h, MaxFullPageHeight)
	}
	if o.Format == FormatWebP {
		h = min(h, math.Floor(maxWebPSide/o.DeviceScaleFactor))
	}
	// Chromium rounds device sizes up: a row to spare.
	deviceWidth := math.Ceil(float64(o.Width) * o.DeviceScaleFactor)
	return min(h, math.Floor((MaxImagePixels/deviceWidth-1)/o.DeviceScaleFactor))
}

func decodeConfig(format string, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch format {
	case FormatJPEG:
		return jpeg.DecodeConfig(r)
	case FormatWebP:
		return webp.DecodeConfig(r)
	}
	return png.DecodeConfig(r)
}

func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

func hostOf(rawURL string) string {
	if t, err := parseTargetURL(rawURL); err == nil {
		return t.host
	}
	return "the target"
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
