package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// renderJob is one render of the run: a page, as HTML or at a URL, at a
// viewport size, as a PNG.
type renderJob struct {
	HTML   string `json:"html,omitempty"`
	URL    string `json:"url,omitempty"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// directRenderer renders the way a program using chromedp directly would,
// with the isolation PeekShot gives each job: a new browser context and tab
// per render in one running Chromium, the viewport set, the page loaded
// (Page.setDocumentContent for HTML, a navigation for a URL), the
// screenshot once the load event has fired, then the context disposed of.
// It has none of PeekShot's extras: no tab prepared ahead, no request
// interception, no guarded proxy, no wait for late requests, and no HTTP,
// JSON, key or credits of its own.
type directRenderer struct {
	browser context.Context
	cancel  func()
	version string
	pid     int
}

// peekshotExtras are the flags of PeekShot's Chromium that only serve its
// SSRF guard, and the ones chromedp sets for each browser it starts.
var peekshotExtras = map[string]bool{
	"proxy-server": true, "proxy-bypass-list": true, "force-webrtc-ip-handling-policy": true,
	"host-resolver-rules": true, "remote-debugging-port": true, "remote-debugging-pipe": true,
	"user-data-dir": true,
}

// directFlags are the flags of the Chromium that pid (a PeekShot server)
// started, read from its command line so that the two cannot drift apart,
// minus PeekShot's extras.
func directFlags(pid int) ([]string, error) {
	args, err := childChromiumArgs(pid)
	if err != nil {
		return nil, err
	}
	var flags []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if strings.HasPrefix(a, "--") && !peekshotExtras[name] {
			flags = append(flags, a)
		}
	}
	return flags, nil
}

// newDirectRenderer starts chrome with flags (as "--name" or "--name=value").
func newDirectRenderer(chrome string, flags []string) (*directRenderer, error) {
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chrome)}
	for _, a := range flags {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(string, ...any) {}))
	d := &directRenderer{browser: bctx, cancel: func() { cancelBrowser(); cancelAlloc() }}
	if err := chromedp.Do(bctx); err != nil {
		d.close()
		return nil, err
	}
	v, err := chromedp.CallBrowser(bctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		d.close()
		return nil, err
	}
	d.version = v.Product
	if p := chromedp.FromContext(bctx).Browser.Process(); p != nil {
		d.pid = p.Pid
	}
	return d, nil
}

func (d *directRenderer) close() { d.cancel() }

// render renders job and returns the PNG.
func (d *directRenderer) render(ctx context.Context, job renderJob) ([]byte, error) {
	tctx, closeTab := chromedp.NewContext(d.browser, chromedp.WithNewBrowserContext())
	defer closeTab()
	tctx, cancel := context.WithTimeout(tctx, time.Minute)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if err := chromedp.Do(tctx); err != nil { // opens the context and its tab
		return nil, fmt.Errorf("open a tab: %w", err)
	}
	loaded := make(chan struct{}, 1)
	if err := chromedp.Listen(tctx, func(ev any) {
		if _, ok := ev.(*page.EventLoadEventFired); ok {
			select {
			case loaded <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		return nil, err
	}
	if _, err := chromedp.Call(tctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: int64(job.Width), Height: int64(job.Height), DeviceScaleFactor: 1,
	}); err != nil {
		return nil, err
	}
	if job.URL != "" {
		if _, err := chromedp.Call(tctx, page.Navigate, page.NavigateParams{URL: job.URL}); err != nil {
			return nil, err
		}
	} else {
		frame := cdp.FrameID(chromedp.FromContext(tctx).Target.TargetID)
		if _, err := chromedp.Call(tctx, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: frame, HTML: job.HTML}); err != nil {
			return nil, err
		}
	}
	select {
	case <-loaded:
	case <-tctx.Done():
		return nil, tctx.Err()
	}
	fromSurface := true
	shot, err := chromedp.Call(tctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, FromSurface: &fromSurface})
	if err != nil {
		return nil, err
	}
	if len(shot.Data) == 0 {
		return nil, errors.New("empty screenshot")
	}
	return shot.Data, nil
}

// childChromiumArgs returns the command line of the Chromium browser
// process that pid started.
func childChromiumArgs(pid int) ([]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parentOf(child) != pid {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
		if err != nil || !strings.Contains(string(cmdline), "chrom") {
			continue
		}
		return strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")[1:], nil
	}
	return nil, fmt.Errorf("no Chromium started by the server (pid %d)", pid)
}
