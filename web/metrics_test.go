package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/metrics"
)

// series reads the metrics' samples: each line's series (name and
// labels, as written) to its value.
func series(t *testing.T, m *metrics.Metrics) (map[string]float64, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "peekshot_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, string(body)
}

// TestMetricsCountAPIRequests renders one page and sends two refused
// requests (an unknown key, a key without the endpoint's scope) through
// the real router and renderer: each counter moves by exactly what they
// did, and nothing in the metrics names a key, an email, a label or a URL.
func TestMetricsCountAPIRequests(t *testing.T) {
	r := sharedChromium(t)
	m := metrics.New(metrics.Sources{Renderer: r})
	e, key, email := renderEnv(t, withConfig(func(c *Config) { c.Metrics = m }))
	b, _ := e.signUp()
	const label = "Marketing site previews"
	res := b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {label}, "scopes_given": {"1"}, "scopes": {"screenshots"}})
	expectStatus(t, res, http.StatusOK)
	narrow, _ := res.doc(t).Find(`[data-testid="new-key"]`).Attr("value")
	if !apikey.Valid(narrow) {
		t.Fatalf("no key revealed: %q", narrow)
	}
	// A key that may manage keys but not render HTML: its attempt to give
	// a key html_to_image is refused by the handler, after its key check
	// accepted it.
	res = b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {"keys bot"}, "scopes_given": {"1"}, "scopes": {"screenshots", "keys_write"}})
	expectStatus(t, res, http.StatusOK)
	manager, _ := res.doc(t).Find(`[data-testid="new-key"]`).Attr("value")
	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	const restarts = "peekshot_chromium_restarts_total"
	before, _ := series(t, m)

	page := chrome.pages.URL + "/red?campaign=spring"
	expectStatus(t, e.apiCall("POST", "/api/v1/screenshots", key, fmt.Sprintf(`{"url": %q, "width": 320, "height": 200}`, page)), http.StatusOK)
	refused := e.apiCall("GET", "/api/v1/me", unknown, "")
	expectStatus(t, refused, http.StatusUnauthorized)
	scope := e.apiCall("POST", "/api/v1/html-to-image", narrow, `{"html": "<p>hi</p>"}`)
	expectStatus(t, scope, http.StatusForbidden)
	if !strings.Contains(scope.body, `"scope_not_allowed"`) {
		t.Fatalf("scope refusal: %s", scope.body)
	}

	grant := e.apiCall("POST", "/api/v1/keys", manager, `{"label": "renderer", "scopes": ["html_to_image"]}`)
	expectStatus(t, grant, http.StatusForbidden)
	if !strings.Contains(grant.body, `"scope_not_allowed"`) {
		t.Fatalf("grant refusal: %s", grant.body)
	}

	after, text := series(t, m)
	want := map[string]float64{
		`peekshot_http_requests_total{method="POST",route="/api/v1/screenshots",status="200"}`:   1,
		`peekshot_http_requests_total{method="GET",route="/api/v1/me",status="401"}`:             1,
		`peekshot_http_requests_total{method="POST",route="/api/v1/html-to-image",status="403"}`: 1,
		`peekshot_http_requests_total{method="POST",route="/api/v1/keys",status="403"}`:          1,
		`peekshot_api_key_verifications_total{result="accepted"}`:                                2,
		`peekshot_api_key_verifications_total{result="invalid_api_key"}`:                         1,
		`peekshot_api_key_verifications_total{result="scope_not_allowed"}`:                       1,
		`peekshot_render_duration_seconds_count{outcome="ok"}`:                                   1,
		`peekshot_render_duration_seconds_bucket{outcome="ok",le="+Inf"}`:                        1,
		`peekshot_credits_spent_total`:                                                           1,
	}
	for s, v := range after {
		d := v - before[s]
		switch {
		case s == restarts, strings.HasPrefix(s, "peekshot_render_duration_seconds_sum"),
			strings.HasPrefix(s, "peekshot_render_duration_seconds_bucket") && !strings.Contains(s, `le="+Inf"`):
			// Chromium's history and the render's time are not the test's.
		case d != want[s]:
			t.Errorf("%s moved by %v, want %v", s, d, want[s])
		}
	}
	for s := range want {
		if _, ok := after[s]; !ok {
			t.Errorf("no series %s", s)
		}
	}
	if after[`peekshot_render_duration_seconds_sum{outcome="ok"}`] <= before[`peekshot_render_duration_seconds_sum{outcome="ok"}`] {
		t.Error("the render took no time")
	}
	if _, ok := after[restarts]; !ok {
		t.Error("no Chromium restarts counter")
	}
	if after["peekshot_renders_in_flight"] != 0 || after["peekshot_render_queue_depth"] != 0 {
		t.Errorf("renders left in flight or queued: %v, %v", after["peekshot_renders_in_flight"], after["peekshot_render_queue_depth"])
	}

	host := strings.TrimPrefix(chrome.pages.URL, "http://")
	for _, secret := range []string{key, key[:12], narrow, unknown, email, label, page, host, "/red", "campaign", "psk_", "@"} {
		if strings.Contains(text, secret) {
			t.Errorf("the metrics contain %q", secret)
		}
	}
	// Every label value is from its fixed set: a route template the
	// router knows, a method, a status, a code, a bucket.
	routes := map[string]bool{"unmatched": true}
	for _, rt := range e.srv.echo.Routes() {
		routes[rt.Path] = true
	}
	shapes := map[string]*regexp.Regexp{
		"method": regexp.MustCompile(`^([A-Z]+|other)$`), "status": regexp.MustCompile(`^\d{3}$`),
		"result": regexp.MustCompile(`^[a-z_]+$`), "outcome": regexp.MustCompile(`^[a-z_]+$`),
		"le": regexp.MustCompile(`^(\+Inf|\d+(\.\d+)?)$`),
	}
	for s := range after {
		for _, l := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(s, -1) {
			name, value := l[1], l[2]
			switch shape, ok := shapes[name]; {
			case name == "route":
				if !routes[value] {
					t.Errorf("%s: route %q is not a route template", s, value)
				}
			case !ok:
				t.Errorf("%s: unexpected label %s", s, name)
			case !shape.MatchString(value):
				t.Errorf("%s: %s=%q is not from its set", s, name, value)
			}
		}
	}
}

// TestMetricsOffByDefault: without Config.Metrics the server counts
// nothing anywhere and serves no /metrics of its own.
func TestMetricsOffByDefault(t *testing.T) {
	e := newTestEnv(t)
	res := e.apiCall("GET", "/api/v1/me", "", "")
	expectStatus(t, res, http.StatusUnauthorized)
	if _, ok := e.srv.cfg.Metrics.(noMetrics); !ok {
		t.Fatalf("metrics %T without being asked for", e.srv.cfg.Metrics)
	}
	res = e.apiCall("GET", "/metrics", "", "")
	expectStatus(t, res, http.StatusNotFound)
	if strings.Contains(res.body, "peekshot_") {
		t.Fatal("the dashboard's server serves metrics")
	}
}
