package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/capture"
)

// apiCall sends an API request with an optional key and JSON body.
func (e *testEnv) apiCall(method, path, key, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.http.URL+path, rd)
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	setHeaders(req, headers)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Response: res, body: string(b)}
}

type apiErrorResponse struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// expectAPIError checks status, JSON error code and that a message is given.
func expectAPIError(t *testing.T, r response, status int, code string) apiErrorResponse {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", r.StatusCode, status, r.body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q", ct)
	}
	var e apiErrorResponse
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body is not the JSON error shape: %v: %s", err, r.body)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error %+v, want code %s with a message", e.Error, code)
	}
	return e
}

func TestAPIKeyAuthentication(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	key, id := createKeyHTMX(t, b, "CI")
	path := "/account/api-keys/" + strconv.Itoa(int(id))

	t.Run("MissingKey", func(t *testing.T) {
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", "", ""), 401, "missing_api_key")
	})
	t.Run("KeyInQueryStringIsNotAccepted", func(t *testing.T) {
		for _, q := range []string{"x-api-key", "api_key", "key"} {
			r := e.apiCall("GET", "/api/v1/me?"+q+"="+url.QueryEscape(key), "", "")
			msg := expectAPIError(t, r, 401, "missing_api_key")
			if !strings.Contains(msg.Error.Message, "header") {
				t.Fatalf("message %q", msg.Error.Message)
			}
		}
	})
	t.Run("SessionCookieIsNotAKey", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.http.URL+"/api/v1/me", nil)
		r := b.do(req)
		expectAPIError(t, r, 401, "missing_api_key")
	})
	t.Run("Malformed", func(t *testing.T) {
		for _, bad := range []string{"psk_", "nope", key[:len(key)-1], key + "x", strings.ToUpper(key[:4]) + key[4:], key[:10] + "!" + key[11:]} {
			expectAPIError(t, e.apiCall("GET", "/api/v1/me", bad, ""), 401, "invalid_api_key")
		}
		// One character changed keeps the format but breaks the checksum.
		flipped := []byte(key)
		if flipped[10] == 'a' {
			flipped[10] = 'b'
		} else {
			flipped[10] = 'a'
		}
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", string(flipped), ""), 401, "invalid_api_key")
	})
	t.Run("UnknownWellFormed", func(t *testing.T) {
		other, _ := apikey.Generate()
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", other, ""), 401, "invalid_api_key")
	})
	t.Run("Me", func(t *testing.T) {
		r := e.apiCall("GET", "/api/v1/me", key, "")
		expectStatus(t, r, 200)
		var me struct {
			Email   string `json:"email"`
			Credits int64  `json:"credits"`
			Key     struct {
				ID     int64  `json:"id"`
				Label  string `json:"label"`
				Masked string `json:"masked"`
			} `json:"key"`
		}
		if err := json.Unmarshal([]byte(r.body), &me); err != nil {
			t.Fatal(err)
		}
		if me.Email != email || me.Credits != 100 || me.Key.ID != id || me.Key.Label != "CI" || me.Key.Masked != apikey.MaskKey(key) {
			t.Fatalf("me = %+v", me)
		}
		if strings.Contains(r.body, key) {
			t.Fatal("/me echoes the key")
		}
	})
	t.Run("DeactivateActivateDeleteOnTheNextRequest", func(t *testing.T) {
		expectStatus(t, b.htmx("POST", path+"/deactivate", url.Values{}), 200)
		msg := expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), 403, "api_key_inactive")
		if !strings.Contains(msg.Error.Message, "activate it in Account → API Keys") {
			t.Fatalf("message %q", msg.Error.Message)
		}
		expectStatus(t, b.htmx("POST", path+"/activate", url.Values{}), 200)
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), 200)
		rot := b.htmx("POST", path+"/rotate", url.Values{"grace": {"now"}})
		expectStatus(t, rot, 200)
		next, _ := rot.doc(t).Find(`[data-testid="new-key"]`).Attr("value")
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), 401, "api_key_expired")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", next, ""), 200)
		nextKey, _ := e.store.APIKeyByHash(context.Background(), apikey.HashOf(next))
		expectStatus(t, b.htmx("DELETE", "/account/api-keys/"+strconv.Itoa(int(nextKey.ID)), nil), 200)
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", next, ""), 401, "invalid_api_key")
	})
	t.Run("RotateWithGraceKeepsOldKeyUntilItEnds", func(t *testing.T) {
		old, oldID := createKeyHTMX(t, b, "graceful")
		rot := b.htmx("POST", "/account/api-keys/"+strconv.Itoa(int(oldID))+"/rotate", url.Values{"grace": {"1h"}})
		next, _ := rot.doc(t).Find(`[data-testid="new-key"]`).Attr("value")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", old, ""), 200)
		expectStatus(t, e.apiCall("GET", "/api/v1/me", next, ""), 200)
		e.clock.Add(time.Hour)
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", old, ""), 401, "api_key_expired")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", next, ""), 200)
	})
	t.Run("AccountDeletionRevokesKeys", func(t *testing.T) {
		u, _ := e.store.UserByEmail(context.Background(), email)
		live, _ := createKeyHTMX(t, b, "doomed")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", live, ""), 200)
		if err := e.store.DeleteUser(context.Background(), u.ID); err != nil {
			t.Fatal(err)
		}
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", live, ""), 401, "invalid_api_key")
	})
}

func TestAPIUsageIsCountedAndShown(t *testing.T) {
	e := newTestEnv(t, withConfig(func(c *Config) { c.UsageFlushInterval = time.Hour }))
	b, email := e.signUp()
	key, id := createKeyHTMX(t, b, "counted")
	for range 3 {
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), 200)
	}
	// Not flushed yet: the tab still shows the exact count and last use.
	r := b.get("/account/api-keys")
	row := r.doc(t).Find(`tr#key-` + strconv.Itoa(int(id)))
	if got := strings.TrimSpace(row.Find(`[data-testid="key-requests"]`).Text()); got != "3" {
		t.Fatalf("requests shown %q", got)
	}
	if got := strings.TrimSpace(row.Find(`[data-testid="key-last-used"]`).Text()); got != "just now" {
		t.Fatalf("last used shown %q", got)
	}
	if keys := userKeys(t, e, email); keys[0].RequestCount != 0 {
		t.Fatal("usage written on the request path")
	}
	if err := e.srv.flushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys := userKeys(t, e, email)
	if keys[0].RequestCount != 3 || keys[0].LastUsedAt.IsZero() {
		t.Fatalf("after flush %+v", keys[0])
	}
	// Refused requests are not usage.
	b.htmx("POST", "/account/api-keys/"+strconv.Itoa(int(id))+"/deactivate", url.Values{})
	e.apiCall("GET", "/api/v1/me", key, "")
	e.srv.flushUsage(context.Background())
	if keys := userKeys(t, e, email); keys[0].RequestCount != 3 {
		t.Fatalf("refused request counted: %d", keys[0].RequestCount)
	}
}

func TestAPIMalformedKeyNeedsNoDatabase(t *testing.T) {
	e := newTestEnv(t)
	e.store.Close() // any database work now fails
	bad := "psk_" + strings.Repeat("A", 38)
	expectAPIError(t, e.apiCall("GET", "/api/v1/me", bad, ""), 401, "invalid_api_key")
	valid, _ := apikey.Generate()
	if r := e.apiCall("GET", "/api/v1/me", valid, ""); r.StatusCode != 500 {
		t.Fatalf("a well-formed key did not reach the (closed) database: %d", r.StatusCode)
	}
}

// fakeRenderer paints nothing; it lets the API's own rules be tested
// without Chromium. Real renders are tested in api_render_test.go.
type fakeRenderer struct {
	err   error
	delay time.Duration
	jobs  chan capture.Job
	// clipAt, when set, answers an image clipped at that many CSS pixels.
	clipAt int
}

func (f *fakeRenderer) Render(ctx context.Context, job capture.Job) (capture.Image, error) {
	if f.jobs != nil {
		f.jobs <- job
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return capture.Image{}, ctx.Err()
	}
	if f.err != nil {
		return capture.Image{}, f.err
	}
	img := capture.Image{Data: []byte("\x89PNG fake"), ContentType: "image/png", Width: job.Options.Width, Height: job.Options.Height}
	if f.clipAt > 0 {
		img.Clipped, img.CSSHeight = true, f.clipAt
	}
	return img, nil
}

func TestAPIRequestValidation(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { c.RateLimit = 1000 }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "validation")
	balance := func() int64 {
		u, _ := e.store.UserByEmail(context.Background(), email)
		return u.Credits
	}
	tests := []struct {
		name, path, body, want string
	}{
		{"Empty", "/api/v1/screenshots", " ", "empty"},
		{"NotObject", "/api/v1/screenshots", `[1,2]`, "JSON object"},
		{"BadJSON", "/api/v1/screenshots", `{"url": }`, "not valid JSON"},
		{"Trailing", "/api/v1/screenshots", `{"url": "https://example.com"} {}`, "not valid JSON"},
		{"NoURL", "/api/v1/screenshots", `{}`, "url is required"},
		{"NullURL", "/api/v1/screenshots", `{"url": null}`, "url is required"},
		{"URLNotString", "/api/v1/screenshots", `{"url": 42}`, "url must be a string"},
		{"HTMLOnScreenshots", "/api/v1/screenshots", `{"html": "<p>x</p>"}`, "html-to-image"},
		{"URLOnHTML", "/api/v1/html-to-image", `{"url": "https://example.com"}`, "/api/v1/screenshots"},
		{"NoHTML", "/api/v1/html-to-image", `{"width": 500}`, "html is required"},
		{"FTP", "/api/v1/screenshots", `{"url": "ftp://example.com/x"}`, "http"},
		{"JavaScriptURL", "/api/v1/screenshots", `{"url": "javascript:alert(1)"}`, "http"},
		{"File", "/api/v1/screenshots", `{"url": "file:///etc/passwd"}`, "http"},
		{"NoHost", "/api/v1/screenshots", `{"url": "http://"}`, "url"},
		{"WidthTooSmall", "/api/v1/screenshots", `{"url": "https://example.com", "width": 99}`, "width must be between 100 and 3840"},
		{"WidthZero", "/api/v1/screenshots", `{"url": "https://example.com", "width": 0}`, "width must be between 100 and 3840"},
		{"WidthNegative", "/api/v1/screenshots", `{"url": "https://example.com", "width": -5}`, "width must be between"},
		{"WidthHuge", "/api/v1/screenshots", `{"url": "https://example.com", "width": 99999999999999999999}`, "width must be"},
		{"WidthFloat", "/api/v1/screenshots", `{"url": "https://example.com", "width": 12.5}`, "width must be"},
		{"WidthString", "/api/v1/screenshots", `{"url": "https://example.com", "width": "800"}`, "width must be"},
		{"HeightTooBig", "/api/v1/html-to-image", `{"html": "x", "height": 3841}`, "height must be between 100 and 3840"},
		{"BadFormat", "/api/v1/screenshots", `{"url": "https://example.com", "format": "gif"}`, "format must be"},
		{"EmptyFormat", "/api/v1/screenshots", `{"url": "https://example.com", "format": ""}`, "format must be"},
		{"Quality", "/api/v1/screenshots", `{"url": "https://example.com", "quality": 101}`, "quality must be between 1 and 100"},
		{"Delay", "/api/v1/screenshots", `{"url": "https://example.com", "delay_ms": 10001}`, "delay_ms must be between 0 and 10000"},
		{"Scale", "/api/v1/screenshots", `{"url": "https://example.com", "device_scale_factor": 4}`, "device_scale_factor must be between"},
		{"FullPageString", "/api/v1/screenshots", `{"url": "https://example.com", "full_page": "yes"}`, "full_page must be true or false"},
		{"Unknown", "/api/v1/screenshots", `{"url": "https://example.com", "fullpage": true}`, `Unknown field "fullpage"`},
		{"Duplicate", "/api/v1/screenshots", `{"url": "https://example.com", "url": "http://169.254.169.254/"}`, "more than once"},
		{"InvalidUTF8", "/api/v1/html-to-image", "{\"html\": \"\xff\xfe\"}", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := balance()
			r := e.apiCall("POST", tt.path, key, tt.body)
			msg := expectAPIError(t, r, 400, "invalid_request")
			if !strings.Contains(msg.Error.Message, tt.want) {
				t.Fatalf("message %q does not mention %q", msg.Error.Message, tt.want)
			}
			if balance() != before {
				t.Fatal("a refused request cost a credit")
			}
		})
	}
	t.Run("NotJSON", func(t *testing.T) {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"} {
			req, _ := http.NewRequest("POST", e.http.URL+"/api/v1/screenshots", strings.NewReader(`{"url":"https://example.com"}`))
			req.Header.Set("x-api-key", key)
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			expectAPIError(t, response{Response: res, body: string(body)}, 415, "unsupported_media_type")
		}
		r := e.apiCall("POST", "/api/v1/screenshots", key, `{"url":"https://example.com"}`, "Content-Type", "application/json; charset=utf-8")
		expectStatus(t, r, 200)
	})
	t.Run("TooLarge", func(t *testing.T) {
		big := `{"html": "` + strings.Repeat("a", 2<<20) + `"}`
		expectAPIError(t, e.apiCall("POST", "/api/v1/html-to-image", key, big), 413, "payload_too_large")
		// Chunked: no Content-Length, so the limit must hold while reading.
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(`{"html": "`))
			chunk := []byte(strings.Repeat("b", 64<<10))
			for range 40 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Write([]byte(`"}`))
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.http.URL+"/api/v1/html-to-image", pr)
		req.Header.Set("x-api-key", key)
		req.Header.Set("Content-Type", "application/json")
		req.TransferEncoding = []string{"chunked"}
		if req.ContentLength != 0 {
			t.Fatalf("the request declares a length (%d), so it would not test chunked bodies", req.ContentLength)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		expectAPIError(t, response{Response: res, body: string(body)}, 413, "payload_too_large")
		just := `{"html": "` + strings.Repeat("c", 2<<20-20) + `"}`
		expectStatus(t, e.apiCall("POST", "/api/v1/html-to-image", key, just), 200)
	})
	t.Run("UnknownRoute", func(t *testing.T) {
		expectAPIError(t, e.apiCall("GET", "/api/v1/nope", key, ""), 404, "not_found")
		expectAPIError(t, e.apiCall("PUT", "/api/v1/screenshots", key, ""), 405, "method_not_allowed")
		// GET is a signed link's: without a signature, refused as one.
		expectAPIError(t, e.apiCall("GET", "/api/v1/screenshots", key, ""), 401, "invalid_signature")
	})
}

func TestAPIRenderErrorsCostNothing(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{capture.ErrTimeout, 504, "render_timeout"},
		{capture.ErrPageUnresponsive, 504, "render_timeout"},
		{capture.ErrUnavailable, 503, "renderer_unavailable"},
		{capture.ErrBusy, 429, "rate_limited"},
		{capture.ErrAccountBusy, 429, "rate_limited"},
		{&capture.ForbiddenError{Host: "internal.example", Reason: "a private address"}, 403, "forbidden_target"},
		{&capture.OptionError{Field: "url", Message: "url must be an http or https URL"}, 400, "invalid_request"},
	} {
		t.Run(tc.code+"/"+tc.err.Error(), func(t *testing.T) {
			e := newTestEnv(t, withRenderer(&fakeRenderer{err: tc.err}))
			b, email := e.signUp()
			key, _ := createKeyHTMX(t, b, "errors")
			r := e.apiCall("POST", "/api/v1/screenshots", key, `{"url": "https://example.com"}`)
			expectAPIError(t, r, tc.status, tc.code)
			if tc.status == 503 || tc.status == 429 {
				if r.Header.Get("Retry-After") == "" {
					t.Fatal("no Retry-After")
				}
			}
			u, _ := e.store.UserByEmail(context.Background(), email)
			if u.Credits != 100 {
				t.Fatalf("failed render cost credits: %d", u.Credits)
			}
			if led, _ := e.store.Ledger(context.Background(), u.ID); len(led) != 1 {
				t.Fatalf("ledger rows %d", len(led))
			}
		})
	}
}

// TestAPIRenderJob: the renderer is told whose job it is (its queue takes
// turns between accounts), and a clipped image says so in its headers.
func TestAPIRenderJob(t *testing.T) {
	f := &fakeRenderer{jobs: make(chan capture.Job, 2), clipAt: 52428}
	e := newTestEnv(t, withRenderer(f))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "jobs")
	u, _ := e.store.UserByEmail(context.Background(), email)
	r := e.apiCall("POST", "/api/v1/screenshots", key, `{"url": "https://example.com", "full_page": true}`)
	expectStatus(t, r, 200)
	if job := <-f.jobs; job.Account != u.ID {
		t.Fatalf("the job is account %d's, want %d", job.Account, u.ID)
	}
	if r.Header.Get("X-Image-Clipped") != "true" || r.Header.Get("X-Image-Clip-Height") != "52428" {
		t.Fatalf("clip headers %q %q", r.Header.Get("X-Image-Clipped"), r.Header.Get("X-Image-Clip-Height"))
	}
	f.clipAt = 0
	r = e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>hi</p>"}`)
	expectStatus(t, r, 200)
	<-f.jobs
	if r.Header.Get("X-Image-Clipped") != "" || r.Header.Get("X-Image-Clip-Height") != "" {
		t.Fatal("an image that was not clipped says it was")
	}
}

func TestAPIRateLimit(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { c.RateLimit = 3 }))
	b, _ := e.signUp()
	key, _ := createKeyHTMX(t, b, "limited")
	other, _ := createKeyHTMX(t, b, "other")
	for range 3 {
		expectStatus(t, e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>x</p>"}`), 200)
	}
	r := e.apiCall("POST", "/api/v1/screenshots", key, `{"url": "https://example.com"}`)
	expectAPIError(t, r, 429, "rate_limited")
	if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	// /me is not rate-limited, and the limit is per key.
	for range 10 {
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), 200)
	}
	expectStatus(t, e.apiCall("POST", "/api/v1/html-to-image", other, `{"html": "<p>x</p>"}`), 200)
	e.clock.Add(21 * time.Second) // one token back at 3 a minute
	expectStatus(t, e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>x</p>"}`), 200)
	expectAPIError(t, e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>x</p>"}`), 429, "rate_limited")
}

func TestAPIInsufficientCredits(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { c.RateLimit = 1000 }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "spender")
	u, _ := e.store.UserByEmail(context.Background(), email)
	for range account.SignupCredits - 1 {
		if _, err := e.store.ChargeRender(context.Background(), account.Reservation{UserID: u.ID}); err != nil {
			t.Fatal(err)
		}
	}
	r := e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>last</p>"}`)
	expectStatus(t, r, 200)
	if r.Header.Get("X-Credits-Remaining") != "0" || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("headers %v", r.Header)
	}
	expectAPIError(t, e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>more</p>"}`), 402, "insufficient_credits")
	me := e.apiCall("GET", "/api/v1/me", key, "")
	expectStatus(t, me, 200)
	if !strings.Contains(me.body, `"credits":0`) {
		t.Fatalf("me %s", me.body)
	}
}
