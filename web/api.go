package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/capture"
	"github.com/peekshot/peekshot/templates"
)

// maxAPIBody bounds an API request body (SPEC §4).
const maxAPIBody = 2 << 20

// Renderer is what the API needs to turn a job into an image;
// capture.Chromium is the real one.
type Renderer interface {
	Render(ctx context.Context, job capture.Job) (capture.Image, error)
}

func apiErr(status int, code, msg string) *httpError {
	return &httpError{Status: status, Code: code, Title: http.StatusText(status), Message: msg}
}

var (
	errMissingKey = apiErr(http.StatusUnauthorized, "missing_api_key",
		"Send your API key in the x-api-key header. Create one in Account → API Keys.")
	errKeyInURL = apiErr(http.StatusUnauthorized, "missing_api_key",
		"API keys are not accepted in the URL, where they end up in logs. Send the key in the x-api-key header.")
	errInvalidKey = apiErr(http.StatusUnauthorized, "invalid_api_key",
		"This API key is not valid. Check that you copied all of it, or create a new one in Account → API Keys.")
	errExpiredKey = apiErr(http.StatusUnauthorized, "api_key_expired",
		"This API key was rotated and its grace period is over. Use the key that replaced it, shown in Account → API Keys.")
	errInactiveKey = apiErr(http.StatusForbidden, "api_key_inactive",
		"This API key is deactivated: activate it in Account → API Keys.")
	errNoCredits = apiErr(http.StatusPaymentRequired, "insufficient_credits",
		"Your account has no credits left for this render. Redeem a coupon in Account → Redeem Coupon.")
	errNotJSON = apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Send the request body as JSON with Content-Type: application/json.")
	errAPITooLarge = apiErr(http.StatusRequestEntityTooLarge, "payload_too_large",
		"The request body is larger than 2 MiB.")
	errRenderTimeout = apiErr(http.StatusGatewayTimeout, "render_timeout",
		"The page did not finish rendering in time (30 seconds at most). Nothing was charged.")
	errRendererDown = apiErr(http.StatusServiceUnavailable, "renderer_unavailable",
		"The renderer is restarting or unavailable. Nothing was charged; please retry in a few seconds.")
	errRendererBusy = apiErr(http.StatusTooManyRequests, "rate_limited",
		"PeekShot is rendering at full capacity. Nothing was charged; please retry in a few seconds.")
)

func invalidRequest(msg string) *httpError {
	return apiErr(http.StatusBadRequest, "invalid_request", msg)
}

// requireAPIKey authenticates an API request by its x-api-key header only.
// A malformed key is refused by its checksum before any database work; a
// key that authenticated recently comes from the store's cache, which every
// change of a key, on any instance, empties of it, and its status is
// checked on every request, so deactivation, deletion and expiry take
// effect on the very next one. Usage is counted in memory: the request
// writes nothing.
func (s *Server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		raw := r.Header.Get("X-Api-Key") // canonical form: Get needs no allocation
		if raw == "" {
			q := r.URL.Query()
			if keyInQuery(q) {
				return s.refuseKey(errKeyInURL)
			}
			return s.refuseKey(errMissingKey)
		}
		hash, err := apikey.Parse(raw)
		if err != nil {
			return s.refuseKey(errInvalidKey)
		}
		k, err := s.store.APIKeyByHash(r.Context(), hash)
		if errors.Is(err, account.ErrNotFound) {
			return s.refuseKey(errInvalidKey)
		}
		if err != nil {
			return s.refuseKey(err)
		}
		return s.asKey(c, k, next)
	}
}

// asKey runs the rest of a request authenticated as k, by its x-api-key
// or by a signed link: from here on the request is the key's, counted in
// its usage whatever becomes of it, its changes logged as the key's (see
// actingContext), and the key's own state and policy checked before next.
func (s *Server) asKey(c echo.Context, k account.APIKey, next echo.HandlerFunc) error {
	r := c.Request()
	now := s.cfg.Now()
	from, ip := s.client(r)
	agent := userAgent(r)
	checkErr := s.checkKey(k, now, from)
	err := checkErr
	s.usage.request(k.ID, now, ip, agent, err == nil)
	if err == nil {
		c.Set(ctxKey, &keyRequest{key: k, ip: ip, agent: agent})
		err = next(c)
	}
	code := ""
	if err != nil {
		code = classify(err).Code
	}
	scopeRefused, _ := c.Get(ctxScopeRefused).(bool)
	s.cfg.Metrics.KeyVerified(keyVerification(checkErr, scopeRefused))
	rendered, _ := c.Get(ctxRendered).(bool)
	s.usage.outcome(k.ID, now, err == nil && rendered, code)
	return err
}

// refuseKey counts a request refused before its key was found, and
// returns why.
func (s *Server) refuseKey(err error) error {
	s.cfg.Metrics.KeyVerified(classify(err).Code)
	return err
}

// keyInQuery reports whether a query string carries what looks like an
// API key's parameter: refused, since a URL is logged and shared.
func keyInQuery(q url.Values) bool {
	return q.Has("x-api-key") || q.Has("api_key") || q.Has("apikey") || q.Has("key")
}

// checkKey is what a key's own state and policy say of a request before
// its endpoint's scope: expired, deactivated, or from an address the key
// doesn't accept.
func (s *Server) checkKey(k account.APIKey, now time.Time, from netip.Addr) error {
	switch k.Status(now) {
	case account.KeyExpired:
		return expiredKeyError(k, now)
	case account.KeyInactive:
		return errInactiveKey
	}
	if !k.Policy.AllowsIP(from) {
		return apiErr(http.StatusForbidden, "ip_not_allowed", "This key doesn't accept requests from "+from.String()+
			". Add the address to the key's allowed IP addresses in Account → API Keys → the key's settings, or use another key.")
	}
	return nil
}

// userAgent is a request's User-Agent as the log and the key's page show
// it: valid text, no control characters, at most 200 characters.
func userAgent(r *http.Request) string {
	return truncateText(oneLine(r.Header.Get("User-Agent")), 200)
}

// oneLine is text from outside as the log and the pages show it: valid
// UTF-8, without control or bidi characters, trimmed.
func oneLine(s string) string {
	s = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || bidiControl(c) {
			return -1
		}
		return c
	}, strings.ToValidUTF8(s, ""))
	return strings.TrimSpace(s)
}

// expiredKeyError says why a key no longer works: its owner's expiry, or
// the end of the grace period after a rotation.
func expiredKeyError(k account.APIKey, now time.Time) error {
	if k.EndIsExpiry() && !now.Before(k.ExpiresAt) {
		return apiErr(http.StatusUnauthorized, "api_key_expired", "This API key expired on "+k.ExpiresAt.UTC().Format("2 January 2006 at 15:04 UTC")+
			". Create a new key in Account → API Keys.")
	}
	return errExpiredKey
}

// codeScopeNotAllowed refuses a key that lacks an endpoint's scope.
const codeScopeNotAllowed = "scope_not_allowed"

// requireScope refuses a key whose policy lacks scope.
func (s *Server) requireScope(scope account.Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !currentKey(c).Policy.HasScope(scope) {
				c.Set(ctxScopeRefused, true)
				return apiErr(http.StatusForbidden, codeScopeNotAllowed, "This key lacks the scope "+string(scope)+
					" that this endpoint needs. Add it in Account → API Keys → the key's settings, or use a key that has it.")
			}
			return next(c)
		}
	}
}

type meResponse struct {
	Email   string `json:"email"`
	Credits int64  `json:"credits"`
	Key     struct {
		ID     int64  `json:"id"`
		Label  string `json:"label"`
		Masked string `json:"masked"`
	} `json:"key"`
}

func (s *Server) handleMe(c echo.Context) error {
	k := currentKey(c)
	email, credits, err := s.store.EmailAndCredits(c.Request().Context(), k.UserID)
	if errors.Is(err, account.ErrNotFound) {
		return errInvalidKey // the account was deleted a moment ago
	}
	if err != nil {
		return err
	}
	var res meResponse
	res.Email, res.Credits = email, credits
	res.Key.ID, res.Key.Label, res.Key.Masked = k.ID, k.Label, k.Masked()
	body, err := json.Marshal(&res) // json v2: cheaper than c.JSON on the hot path
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSONBlob(http.StatusOK, body)
}

// renderRequest is the JSON body of both render endpoints. Pointers tell a
// field that was sent from one that was not.
type renderRequest struct {
	URL               *string  `json:"url"`
	HTML              *string  `json:"html"`
	Width             *int     `json:"width"`
	Height            *int     `json:"height"`
	FullPage          *bool    `json:"full_page"`
	Format            *string  `json:"format"`
	Quality           *int     `json:"quality"`
	DelayMS           *int     `json:"delay_ms"`
	DeviceScaleFactor *float64 `json:"device_scale_factor"`
}

// decodeRenderRequest reads the body strictly: JSON only, at most 2 MiB
// (also when chunked), one object, no unknown or duplicate fields.
func decodeRenderRequest(c echo.Context) (renderRequest, error) {
	var req renderRequest
	body, err := readJSONBody(c, `{"url": "https://example.com"}`)
	if err != nil {
		return req, err
	}
	if err := json.Unmarshal(body, &req, json.RejectUnknownMembers(true)); err != nil {
		return req, invalidRequest(describeJSONError(err))
	}
	return req, nil
}

// readJSONBody reads an API request's body: JSON only, at most 2 MiB (also
// when chunked), not empty; example is what an empty body is told to send.
func readJSONBody(c echo.Context, example string) ([]byte, error) {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errNotJSON
	}
	if r.ContentLength > maxAPIBody {
		return nil, errAPITooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxAPIBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errAPITooLarge
	}
	if err != nil {
		return nil, invalidRequest("The request body could not be read.")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, invalidRequest("The request body is empty; send a JSON object such as " + example + ".")
	}
	return body, nil
}

// describeJSONError turns a decoding error into a sentence about the field.
// The message goes back to the client and into the request log, so it
// never echoes more of the body than a plausible field name.
func describeJSONError(err error) string {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		return fmt.Sprintf("The field %s appears more than once.", quoteField(jsonField(err)))
	case errors.Is(err, json.ErrUnknownName):
		return fmt.Sprintf("Unknown field %s. Valid fields: url, html, width, height, full_page, format, quality, delay_ms, device_scale_factor.", quoteField(jsonField(err)))
	case errors.As(err, &syn):
		where := ""
		if f := jsonField(err); f != "" {
			where = " in the field " + quoteField(f)
		}
		switch {
		case strings.Contains(syn.Error(), "invalid UTF-8"):
			return "The request body is not valid UTF-8" + where + "."
		case strings.Contains(syn.Error(), "exceeded max depth"):
			return "The request body is nested too deeply" + where + "."
		}
		return fmt.Sprintf("The request body is not valid JSON%s (near byte %d).", where, syn.ByteOffset)
	case errors.As(err, &sem):
		field := jsonField(err)
		if field == "" {
			return "The request body must be a JSON object."
		}
		switch field {
		case "url", "html", "format":
			return fmt.Sprintf("%s must be a string.", field)
		case "full_page":
			return "full_page must be true or false."
		case "device_scale_factor":
			return "device_scale_factor must be a number from 1 to 3."
		case "width", "height", "quality", "delay_ms":
			return fmt.Sprintf("%s must be a whole number within its range.", field)
		}
		return fmt.Sprintf("The field %s has the wrong type.", quoteField(field))
	}
	return "The request body is not valid JSON."
}

// jsonField is the top-level field a decoding error is about, or "".
func jsonField(err error) string {
	var ptr jsontext.Pointer
	var sem *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &sem):
		ptr = sem.JSONPointer
	case errors.As(err, &syn):
		ptr = syn.JSONPointer
	}
	for tok := range ptr.Tokens() {
		return tok
	}
	return ""
}

// quoteField quotes a field name for a message, unless it is no plausible
// field name (too long, odd characters, or shaped like an API key), which
// may be a secret or a flood and is not repeated.
func quoteField(name string) string {
	if name == "" || len(name) > 32 || strings.HasPrefix(strings.ToLower(name), "psk_") {
		return "(name not shown)"
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "(name not shown)"
		}
	}
	return strconv.Quote(name)
}

// job builds and checks a render job. wantURL says which endpoint asked.
func (req renderRequest) job(wantURL bool) (capture.Job, error) {
	var j capture.Job
	if wantURL {
		if req.HTML != nil {
			return j, invalidRequest("This endpoint renders a URL; send \"url\", or use /api/v1/html-to-image for HTML.")
		}
		if req.URL == nil || strings.TrimSpace(*req.URL) == "" {
			return j, invalidRequest("url is required, e.g. {\"url\": \"https://example.com\"}.")
		}
		j.URL = strings.TrimSpace(*req.URL)
		if err := checkURLShape(j.URL); err != nil {
			return j, err
		}
	} else {
		if req.URL != nil {
			return j, invalidRequest("This endpoint renders HTML; send \"html\", or use /api/v1/screenshots for a URL.")
		}
		if req.HTML == nil || strings.TrimSpace(*req.HTML) == "" {
			return j, invalidRequest("html is required, e.g. {\"html\": \"<h1>Hello</h1>\"}.")
		}
		j.HTML = *req.HTML
	}
	o := &j.Options
	// A field that was sent must be in range; only absent fields get defaults.
	for _, f := range []struct {
		name     string
		v        *int
		dst      *int
		min, max int
	}{
		{"width", req.Width, &o.Width, capture.MinViewport, capture.MaxViewport},
		{"height", req.Height, &o.Height, capture.MinViewport, capture.MaxViewport},
		{"quality", req.Quality, &o.Quality, 1, 100},
		{"delay_ms", req.DelayMS, &o.DelayMS, 0, capture.MaxDelayMS},
	} {
		if f.v == nil {
			continue
		}
		if *f.v < f.min || *f.v > f.max {
			return j, invalidRequest(fmt.Sprintf("%s must be between %d and %d.", f.name, f.min, f.max))
		}
		*f.dst = *f.v
	}
	if req.DeviceScaleFactor != nil {
		d := *req.DeviceScaleFactor
		if math.IsNaN(d) || d < capture.MinDeviceScale || d > capture.MaxDeviceScale {
			return j, invalidRequest(fmt.Sprintf("device_scale_factor must be between %v and %v.", capture.MinDeviceScale, capture.MaxDeviceScale))
		}
		o.DeviceScaleFactor = d
	}
	if req.FullPage != nil {
		o.FullPage = *req.FullPage
	}
	if req.Format != nil {
		if *req.Format == "" {
			return j, invalidRequest(`format must be "png", "jpeg" or "webp".`)
		}
		o.Format = strings.ToLower(*req.Format)
	}
	if err := o.Normalize(); err != nil {
		return j, invalidRequest(sentence(err.Error()))
	}
	return j, nil
}

// checkURLShape refuses what can never be rendered before anything is
// reserved; the renderer's guard then checks where the host resolves.
func checkURLShape(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return invalidRequest("url is not a valid URL.")
	case u.Scheme != "http" && u.Scheme != "https":
		return invalidRequest("url must start with http:// or https://.")
	case u.Host == "" || u.Hostname() == "":
		return invalidRequest("url must include a host name, e.g. https://example.com.")
	case len(raw) > 8192:
		return invalidRequest("url must be at most 8192 characters.")
	}
	return nil
}

func sentence(s string) string {
	if s == "" || strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

func (s *Server) handleScreenshot(c echo.Context) error  { return s.handleRender(c, true) }
func (s *Server) handleHTMLToImage(c echo.Context) error { return s.handleRender(c, false) }

// handleRender renders a URL or HTML for the key's owner: strict input,
// then admission (the key's rate limit and a credit reserved, in one
// transaction shared by every instance), the render, then the debit with
// its ledger row. A failed render costs nothing.
func (s *Server) handleRender(c echo.Context, wantURL bool) error {
	req, err := decodeRenderRequest(c)
	if err != nil {
		return err
	}
	job, err := req.job(wantURL)
	if err != nil {
		return err
	}
	r, err := s.renderJob(c, job, nil)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return r.write(c)
}

// rendered is a render that was paid for: the image, the balance after
// it, and how long it took.
type rendered struct {
	img     capture.Image
	balance int64
	took    time.Duration
}

// write answers with the image and what the API says about it.
func (r rendered) write(c echo.Context) error {
	h := c.Response().Header()
	h.Set("X-Credits-Remaining", strconv.FormatInt(r.balance, 10))
	h.Set("X-Render-Ms", strconv.FormatInt(r.took.Milliseconds(), 10))
	return writeImage(c, r.img)
}

// writeImage answers with an image and its size headers.
func writeImage(c echo.Context, img capture.Image) error {
	h := c.Response().Header()
	h.Set("X-Image-Width", strconv.Itoa(img.Width))
	h.Set("X-Image-Height", strconv.Itoa(img.Height))
	if img.Clipped {
		h.Set("X-Image-Clipped", "true")
		h.Set("X-Image-Clip-Height", strconv.Itoa(img.CSSHeight)) // CSS pixels captured from the top
	}
	return c.Blob(http.StatusOK, img.ContentType, img.Data)
}

// renderJob renders a checked job for the request's key, as both render
// endpoints and signed links do: admission (the key's rate limit, its
// budget and a credit reserved, in one transaction shared by every
// instance), the key's allowed sites, the render, then the debit with
// its ledger row. A failed render costs nothing, and a signed link (link,
// nil for the POSTs) costs one credit in its lifetime, however often and
// wherever it renders.
func (s *Server) renderJob(c echo.Context, job capture.Job, link *account.PaidLink) (rendered, error) {
	k := currentKey(c)
	if s.renderer == nil {
		return rendered{}, errRendererDown
	}
	// The request's own context may end (the client gives up) before the
	// reservation is settled; settling must happen all the same.
	ctx := c.Request().Context()
	settle := context.WithoutCancel(ctx)
	rate := s.cfg.RateLimit
	if k.Policy.RateLimit > 0 {
		rate = min(k.Policy.RateLimit, rate)
	}
	res, err := s.store.AdmitRender(ctx, account.RenderAdmission{UserID: k.UserID, KeyID: k.ID, RatePerMinute: rate,
		MonthlyBudget: k.Policy.MonthlyBudget, Link: link})
	var limited *account.RateLimitedError
	var broke *account.BudgetExhaustedError
	switch {
	case errors.As(err, &limited):
		e := *apiErr(http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("This key is limited to %d renders a minute. Retry after the time in the Retry-After header.", limited.PerMinute))
		e.RetryAfter = max(1, int(math.Ceil(limited.RetryAfter.Seconds())))
		return rendered{}, &e
	case errors.As(err, &broke):
		return rendered{}, apiErr(http.StatusPaymentRequired, "key_budget_exhausted", fmt.Sprintf(
			"This key has spent its monthly budget of %s; it renders again from %s. Your account's balance is untouched: raise the key's budget in Account → API Keys → the key's settings, or use another key.",
			templates.CreditsText(broke.Budget), broke.ResetsAt.UTC().Format("2 January 2006, 00:00 UTC")))
	case errors.Is(err, account.ErrInsufficientCredits):
		return rendered{}, errNoCredits
	case errors.Is(err, account.ErrNotFound):
		return rendered{}, errInvalidKey // the account was deleted a moment ago
	case err != nil:
		return rendered{}, err
	}
	if err := checkTarget(k, job); err != nil {
		if rerr := s.store.ReleaseRender(settle, res); rerr != nil {
			s.log.Warn("release a render's credit (it frees itself at its expiry)", "request_id", c.Get(ctxReqID), "err", rerr.Error())
		}
		return rendered{}, err
	}
	job.Account = k.UserID // the renderer's queue is fair between accounts
	if len(k.Policy.AllowedTargets) > 0 {
		job.AllowHost = k.Policy.AllowsHost // for every page the render goes to
	}
	start := time.Now()
	img, err := s.renderer.Render(ctx, job)
	if err != nil {
		failed := renderError(err)
		s.cfg.Metrics.Rendered(classify(failed).Code, time.Since(start))
		if rerr := s.store.ReleaseRender(settle, res); rerr != nil {
			s.log.Warn("release a render's credit (it frees itself at its expiry)", "request_id", c.Get(ctxReqID), "err", rerr.Error())
		}
		return rendered{}, failed
	}
	s.cfg.Metrics.Rendered("ok", time.Since(start))
	charge, err := s.store.ChargeRender(settle, res)
	switch {
	case errors.Is(err, account.ErrInsufficientCredits):
		return rendered{}, errNoCredits
	case err != nil:
		return rendered{}, err
	}
	if charge.Charged {
		s.cfg.Metrics.CreditsSpent(1)
	}
	c.Set(ctxRendered, true)
	return rendered{img: img, balance: charge.Balance, took: time.Since(start)}, nil
}

// checkTarget refuses a URL outside the key's allowed sites.
func checkTarget(k *account.APIKey, job capture.Job) error {
	if job.URL != "" && !k.Policy.AllowsHost(hostOfURL(job.URL)) {
		return targetNotAllowed(hostOfURL(job.URL))
	}
	return nil
}

// targetNotAllowed refuses a page outside the key's allowed sites.
func targetNotAllowed(host string) error {
	return apiErr(http.StatusForbidden, "target_not_allowed", "This key may only render its allowed sites, and "+quoteHost(host)+
		" is not one. Add it in Account → API Keys → the key's settings, or use another key. Nothing was charged.")
}

// hostOfURL is a URL's host name, without port or brackets.
func hostOfURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// quoteHost names a host in a message, cut short if long.
func quoteHost(h string) string {
	if len(h) > 80 {
		h = h[:80] + "…"
	}
	return strconv.Quote(h)
}

// renderError maps renderer failures to the API's errors.
func renderError(err error) error {
	var oe *capture.OptionError
	var fe *capture.ForbiddenError
	var na *capture.NotAllowedError
	switch {
	case errors.As(err, &na):
		if na.URL != "" {
			return apiErr(http.StatusForbidden, "target_not_allowed", "The page went to "+truncateText(na.URL, 200)+", and this key may only render its allowed sites: "+
				quoteHost(na.Host)+" is not one. Add it in Account → API Keys → the key's settings, or use another key. Nothing was charged.")
		}
		return targetNotAllowed(na.Host)
	case errors.As(err, &oe):
		return invalidRequest(sentence(oe.Message))
	case errors.As(err, &fe), errors.Is(err, capture.ErrForbiddenTarget):
		msg := "The URL, or a page it redirects to, resolves to a loopback, private, link-local or metadata address, which PeekShot does not render."
		if fe != nil && fe.Error() != "" {
			msg = sentence(fe.Error())
		}
		return apiErr(http.StatusForbidden, "forbidden_target", msg)
	case errors.Is(err, capture.ErrPageUnresponsive):
		return apiErr(http.StatusGatewayTimeout, "render_timeout",
			"The page's scripts kept it busy without a break, so the render was stopped early. Nothing was charged.")
	case errors.Is(err, capture.ErrTimeout):
		return errRenderTimeout
	case errors.Is(err, capture.ErrAccountBusy):
		e := *apiErr(http.StatusTooManyRequests, "rate_limited",
			"Your account already has as many renders waiting as one account may. Nothing was charged; retry when one of them is done.")
		e.RetryAfter = 2
		return &e
	case errors.Is(err, capture.ErrBusy):
		e := *errRendererBusy
		e.RetryAfter = 2
		return &e
	case errors.Is(err, capture.ErrTargetUnreachable):
		detail := strings.TrimPrefix(err.Error(), capture.ErrTargetUnreachable.Error()+": ")
		return apiErr(http.StatusBadGateway, "target_unreachable", "The page could not be loaded: "+sentence(detail)+" Nothing was charged.")
	case errors.Is(err, capture.ErrUnavailable):
		e := *errRendererDown
		e.RetryAfter = 2
		return &e
	case errors.Is(err, context.Canceled):
		return apiErr(499, "client_closed_request", "The request was cancelled.")
	}
	return err
}

// truncateText cuts s to n bytes (on a rune boundary) for a message.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
