// Package capture owns rendering: it turns a URL or a piece of HTML into an
// image with one long-lived headless Chromium, and it owns the SSRF guard that
// keeps every request of a rendered page away from loopback, private,
// link-local and metadata addresses.
//
// The web layer depends only on the small Renderer interface, the Options and
// Job types and the sentinel errors below; Chromium is the real implementation.
//
// The guard is enforced in three places, each for its own reason:
//   - Render checks the job's URL before it queues, so a refused target is
//     answered at once (ErrForbiddenTarget) and costs no tab.
//   - Chromium sends every request, loopback included, through an in-process
//     forward proxy that resolves the host once, checks every address and
//     dials only the address it checked. This covers redirects,
//     sub-resources, iframes, workers and WebSockets, and leaves no window
//     for DNS rebinding.
//   - Each tab intercepts its requests (the Fetch domain) to refuse schemes
//     that never reach a proxy (file:, chrome:, ...) and to tell a refused
//     main document or redirect from one that is merely unreachable.
//
// Nothing else leaves the browser: Chromium resolves no host name itself
// (so it sends no DNS query), and WebRTC may use no UDP that bypasses a
// proxy, so it can only use TCP through the guarded one; remote ICE
// candidates named *.local are not resolved by multicast DNS. The policy is
// a switch for the headless shell and a profile preference for full
// Chromium, which ignores the switch (see allocatorOptions).
package capture

import (
	"context"
	"errors"
	"fmt"
)

// Errors that Render wraps, so that callers can map them with errors.Is.
var (
	// ErrForbiddenTarget means the target, or a redirect of it, resolves to
	// an address that the guard refuses.
	ErrForbiddenTarget = errors.New("target address is not allowed")
	// ErrTimeout means the job did not finish before its deadline, counting
	// the time it waited in the queue.
	ErrTimeout = errors.New("render timed out")
	// ErrUnavailable means the browser is not running, crashed during the
	// render, or the renderer is shut down.
	ErrUnavailable = errors.New("renderer unavailable")
	// ErrBusy means every render slot is taken and the queue is full.
	ErrBusy = errors.New("renderer busy")
	// ErrAccountBusy means the job's account already has as many jobs
	// waiting as one account may, while other accounts' jobs still get in.
	// It wraps ErrBusy.
	ErrAccountBusy = fmt.Errorf("%w for this account", ErrBusy)
	// ErrPageUnresponsive means the page's main thread did not answer for
	// Config.UnresponsiveAfter (a script that never yields, before or after
	// the load event), so the job was stopped before its deadline. It wraps
	// ErrTimeout.
	ErrPageUnresponsive = fmt.Errorf("%w: the page's main thread stopped answering", ErrTimeout)
	// ErrTargetUnreachable means the page itself could not be loaded: its
	// host does not resolve, refuses the connection, or the navigation was
	// aborted (for example by a download).
	ErrTargetUnreachable = errors.New("target could not be loaded")
)

// Renderer renders one job into an image. Chromium implements it; handler
// tests can use a fake.
type Renderer interface {
	Render(ctx context.Context, job Job) (Image, error)
}

// Job is one render request: exactly one of URL and HTML is set. Account is
// whose job it is, for the fair queue: jobs of one account wait in one line
// (0 is an account like any other).
type Job struct {
	URL     string
	HTML    string
	Options Options
	Account int64
	// AllowHost, when set, says which hosts the page itself may be: the
	// job's URL and every top-level navigation (redirects, location,
	// meta refresh, links). Others end the job with a *NotAllowedError.
	// Sub-resources are not asked. The guard applies whatever it says.
	AllowHost func(host string) bool
}

// ErrTargetNotAllowed means the page, or a page it went to, is not one
// the job's AllowHost allows.
var ErrTargetNotAllowed = errors.New("target not allowed for this job")

// NotAllowedError names the host a job's AllowHost refused.
type NotAllowedError struct {
	Host string
	URL  string // where the page went, when that was not the job's URL
}

func (e *NotAllowedError) Error() string {
	if e.URL != "" {
		return fmt.Sprintf("the page went to %s, whose host %s is not allowed", truncate(e.URL, 200), e.Host)
	}
	return fmt.Sprintf("%s is not allowed", e.Host)
}

func (e *NotAllowedError) Unwrap() error { return ErrTargetNotAllowed }

// Image is a rendered image. Width and Height are its size in pixels, that is
// the CSS size times the device scale factor.
type Image struct {
	Data        []byte
	ContentType string
	Width       int
	Height      int
	// CSSHeight is the height captured, in CSS pixels. Clipped says that the
	// page, or the viewport, was taller than that: capped by
	// MaxFullPageHeight, by MaxImagePixels or by what WebP can hold.
	CSSHeight int
	Clipped   bool
}

// Bounds of the render options (SPEC §4).
const (
	MinViewport        = 100
	MaxViewport        = 3840
	MaxFullPageHeight  = 16384
	MaxDelayMS         = 10000
	MinDeviceScale     = 1.0
	MaxDeviceScale     = 3.0
	DefaultWidth       = 1280
	DefaultHeight      = 720
	DefaultQuality     = 80
	DefaultDeviceScale = 1.0
	// MaxImagePixels bounds an image in device pixels (width × height ×
	// scale²); a taller capture is clipped at the bottom. Chromium cannot
	// capture 2 GiB of bitmap (512 Mi pixels: "Unable to capture
	// screenshot") and needs about 20 s to encode 250 million pixels as PNG
	// on one core, so half a render timeout; 64 Mi pixels take 3-4 s (PNG,
	// JPEG) to 9 s (WebP). A 3840 × 16384 page at scale 1 fits.
	MaxImagePixels = 1 << 26
)

// Image formats.
const (
	FormatPNG  = "png"
	FormatJPEG = "jpeg"
	FormatWebP = "webp"
)

// Options are the render options of SPEC §4. The zero value of a field means
// "use the default"; JSON decoding is done by the web layer.
type Options struct {
	Width, Height     int     // viewport in CSS pixels, 100–3840; default 1280×720
	FullPage          bool    // capture the whole document height, capped at 16384
	Format            string  // "png" (default), "jpeg" or "webp"
	Quality           int     // 1–100, default 80; only used by jpeg and webp
	DelayMS           int     // 0–10000, wait after load before the capture
	DeviceScaleFactor float64 // 1–3, default 1
}

// OptionError is a render option, or the URL, that a user must fix. Field is
// the JSON name of the field and Message a sentence that can be shown as is.
type OptionError struct {
	Field   string
	Message string
}

func (e *OptionError) Error() string { return e.Message }

// Normalize applies the defaults and checks the bounds. It returns an
// *OptionError for the first bad value. Calling it twice is harmless.
func (o *Options) Normalize() error {
	if o.Width == 0 {
		o.Width = DefaultWidth
	}
	if o.Height == 0 {
		o.Height = DefaultHeight
	}
	if o.Width < MinViewport || o.Width > MaxViewport {
		return rangeError("width", MinViewport, MaxViewport)
	}
	if o.Height < MinViewport || o.Height > MaxViewport {
		return rangeError("height", MinViewport, MaxViewport)
	}
	switch o.Format {
	case "":
		o.Format = FormatPNG
	case FormatPNG, FormatJPEG, FormatWebP:
	case "jpg":
		o.Format = FormatJPEG
	default:
		return &OptionError{Field: "format", Message: `format must be "png", "jpeg" or "webp"`}
	}
	if o.Quality == 0 {
		o.Quality = DefaultQuality
	}
	if o.Quality < 1 || o.Quality > 100 {
		return rangeError("quality", 1, 100)
	}
	if o.DelayMS < 0 || o.DelayMS > MaxDelayMS {
		return rangeError("delay_ms", 0, MaxDelayMS)
	}
	if o.DeviceScaleFactor == 0 {
		o.DeviceScaleFactor = DefaultDeviceScale
	}
	// The negated form also refuses NaN.
	if !(o.DeviceScaleFactor >= MinDeviceScale && o.DeviceScaleFactor <= MaxDeviceScale) {
		return rangeError("device_scale_factor", MinDeviceScale, MaxDeviceScale)
	}
	return nil
}

func rangeError[N int | float64](field string, lo, hi N) *OptionError {
	return &OptionError{Field: field, Message: fmt.Sprintf("%s must be between %v and %v", field, lo, hi)}
}

// contentType is the MIME type of a normalized format.
func contentType(format string) string {
	switch format {
	case FormatJPEG:
		return "image/jpeg"
	case FormatWebP:
		return "image/webp"
	}
	return "image/png"
}

// validate checks the shape of a job before it costs anything.
func (j *Job) validate() error {
	switch {
	case j.URL == "" && j.HTML == "":
		return &OptionError{Field: "url", Message: "url is required"}
	case j.URL != "" && j.HTML != "":
		return &OptionError{Field: "html", Message: "give either url or html, not both"}
	}
	return j.Options.Normalize()
}
