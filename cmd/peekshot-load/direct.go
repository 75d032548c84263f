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

// directRenderer renders the fixed document the way a program using
// chromedp directly would: a plain new tab per render in one running
// Chromium, the same viewport and format, the screenshot once the load
// event has fired, then the tab closed. It has none of PeekShot's extras:
// no browser context per job, no request interception, no guarded proxy,
// no wait for late requests, and no HTTP, JSON, key or credits.
type directRenderer struct {
	browser context.Context
	cancel  func()
	version string
}

// peekshotExtras are the flags of PeekShot's Chromium that only serve its
// SSRF guard, and the ones chromedp sets for each browser it starts.
var peekshotExtras = map[string]bool{
	"proxy-server": true, "proxy-bypass-list": true, "force-webrtc-ip-handling-policy": true,
	"remote-debugging-port": true, "remote-debugging-pipe": true, "user-data-dir": true,
}

// newDirectRenderer starts Chromium with the flags the server's own
// Chromium runs with (read from its command line, so the two cannot drift
// apart), minus PeekShot's extras.
func newDirectRenderer(ctx context.Context, srv *server, chrome string) (*directRenderer, error) {
	args, err := childChromiumArgs(srv.pid())
	if err != nil {
		return nil, err
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chrome)}
	for _, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || peekshotExtras[name] {
			continue
		}
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
	return d, nil
}

func (d *directRenderer) close() { d.cancel() }

// render draws the fixed document once.
func (d *directRenderer) render(ctx context.Context) error {
	tctx, closeTab := chromedp.NewContext(d.browser)
	defer closeTab()
	tctx, cancel := context.WithTimeout(tctx, time.Minute)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if err := chromedp.Do(tctx); err != nil { // opens the tab
		return fmt.Errorf("open a tab: %w", err)
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
		return err
	}
	if _, err := chromedp.Call(tctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: renderWidth, Height: renderHeight, DeviceScaleFactor: 1,
	}); err != nil {
		return err
	}
	frame := cdp.FrameID(chromedp.FromContext(tctx).Target.TargetID)
	if _, err := chromedp.Call(tctx, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: frame, HTML: fixedDocument}); err != nil {
		return err
	}
	select {
	case <-loaded:
	case <-tctx.Done():
		return tctx.Err()
	}
	fromSurface := true
	shot, err := chromedp.Call(tctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, FromSurface: &fromSurface})
	if err != nil {
		return err
	}
	if len(shot.Data) == 0 {
		return errors.New("empty screenshot")
	}
	return nil
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
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
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
