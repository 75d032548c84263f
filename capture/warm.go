package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Opening a tab in a browser context of its own costs more than the render
// itself (a window, a renderer process, a network context: 100-300 ms), so
// each browser keeps one tab per render slot opened ahead of demand. A job
// takes one and the browser opens the next; each tab still serves one job
// only and is disposed of with its context afterwards, so jobs stay as
// isolated as before. When no tab is ready (a burst), the job opens its own.

// tabFor returns a tab for a job on b: one opened ahead of demand when one
// is ready or about to be (opening another at the same time would only
// slow both down), else a new one. Either way b's ready tabs are topped up.
func (c *Chromium) tabFor(jobCtx context.Context, b *chromiumProcess) (*tab, error) {
	stop := context.AfterFunc(jobCtx, func() {
		c.mu.Lock()
		c.warmed.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	for len(b.warm) == 0 && b.warming > 0 && jobCtx.Err() == nil && !b.lost() {
		c.warmed.Wait()
	}
	var t *tab
	if len(b.warm) > 0 {
		t = b.warm[0]
		b.warm = b.warm[1:]
	}
	c.topUpLocked(b)
	c.mu.Unlock()
	if t != nil && (t.ctx.Err() != nil || jobCtx.Err() != nil) {
		unused := t
		c.bg.Go(func() { c.closeTab(b, unused) })
		t = nil
	}
	if t != nil {
		return t, nil
	}
	if err := jobCtx.Err(); err != nil {
		return nil, err
	}
	return c.openTab(jobCtx, b)
}

// topUpLocked starts opening tabs until b has one ready or opening per
// render slot. c.mu must be held.
func (c *Chromium) topUpLocked(b *chromiumProcess) {
	for !c.closed && !b.retiring && !b.stopping && len(b.warm)+b.warming < c.cfg.Concurrency {
		b.warming++
		c.bg.Go(func() { c.warmUp(b) })
	}
}

// warmUp opens and prepares one tab on b and keeps it for the next job.
func (c *Chromium) warmUp(b *chromiumProcess) {
	ctx, cancel := context.WithTimeout(b.ctx, slowTabOpen)
	defer cancel()
	t, err := c.openTab(ctx, b)
	if err == nil {
		tctx, cancel := context.WithTimeout(t.ctx, slowTabOpen)
		err = c.prepareTab(tctx, t)
		cancel()
		if err != nil {
			c.closeTab(b, t)
		}
	}
	c.mu.Lock()
	b.warming--
	keep := err == nil && !c.closed && !b.retiring && !b.stopping && !b.lost()
	if keep {
		b.warm = append(b.warm, t)
	}
	c.warmed.Broadcast()
	c.mu.Unlock()
	switch {
	case err != nil && !b.lost() && ctx.Err() == nil:
		c.log.Warn("could not open a tab ahead of demand", "err", err)
	case err == nil && !keep:
		c.closeTab(b, t)
	}
}

// prepareTab sets up what every job needs before its page loads: downloads
// denied, every request intercepted, dialogs and window.open disarmed, and
// the default viewport, which most jobs keep. ctx must be the tab's.
func (c *Chromium) prepareTab(ctx context.Context, t *tab) error {
	if t.prepared {
		return nil
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior:         browser.SetDownloadBehaviorBehaviorDeny,
		BrowserContextID: t.contextID,
	}); err != nil {
		return fmt.Errorf("deny downloads: %w", err)
	}
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*"}},
	}); err != nil {
		return fmt.Errorf("intercept requests: %w", err)
	}
	runNow := true
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source:         pageScript,
		RunImmediately: &runNow,
	}); err != nil {
		return fmt.Errorf("install page script: %w", err)
	}
	if err := setViewport(ctx, t, DefaultWidth, DefaultHeight, DefaultDeviceScale); err != nil {
		return err
	}
	t.prepared = true
	return nil
}

// waitWarm waits until no browser is opening a tab ahead of demand, so that
// OpenTabs counts a stable set. It gives up at ctx's end.
func (c *Chromium) waitWarm(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.warmed.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		busy := false
		for b := range c.browsers {
			busy = busy || b.warming > 0
		}
		if !busy {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.warmed.Wait()
	}
}

// warmTimeout bounds the wait of OpenTabs for tabs being opened.
const warmTimeout = 5 * time.Second
