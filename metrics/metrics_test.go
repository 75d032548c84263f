package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peekshot/peekshot/capture"
)

type fakeRenderer struct{ s capture.Stats }

func (f *fakeRenderer) Stats() capture.Stats { return f.s }

type fakeCache struct{ hits, misses uint64 }

func (f *fakeCache) KeyLookups() (uint64, uint64) { return f.hits, f.misses }

// scrape reads what GET /metrics answers.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// hasLines fails unless every line is in the text, whole.
func hasLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains("\n"+text, "\n"+l+"\n") {
			t.Errorf("no line %q in:\n%s", l, peekshotLines(text))
		}
	}
}

// peekshotLines are the text's lines about PeekShot's own metrics.
func peekshotLines(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "peekshot_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetrics(t *testing.T) {
	r := &fakeRenderer{capture.Stats{Running: 2, Waiting: 5, Restarts: 1, BrowserPID: 42}}
	kc := &fakeCache{hits: 9, misses: 4}
	m := New(Sources{Renderer: r, KeyCache: kc})

	t.Run("StartsAtZero", func(t *testing.T) {
		hasLines(t, scrape(t, m),
			`peekshot_api_key_verifications_total{result="accepted"} 0`,
			`peekshot_render_duration_seconds_count{outcome="ok"} 0`,
			`peekshot_credits_spent_total 0`,
		)
	})
	t.Run("Counts", func(t *testing.T) {
		m.Request("POST", "/api/v1/screenshots", 200)
		m.Request("POST", "/api/v1/screenshots", 200)
		m.Request("GET", "/account/api-keys/:id", 404)
		m.KeyVerified("accepted")
		m.KeyVerified("scope_not_allowed")
		m.Rendered("ok", 1500*time.Millisecond)
		m.Rendered("render_timeout", 30*time.Second)
		m.CreditsSpent(1)
		m.CreditsSpent(1)
		hasLines(t, scrape(t, m),
			`peekshot_http_requests_total{method="POST",route="/api/v1/screenshots",status="200"} 2`,
			`peekshot_http_requests_total{method="GET",route="/account/api-keys/:id",status="404"} 1`,
			`peekshot_api_key_verifications_total{result="accepted"} 1`,
			`peekshot_api_key_verifications_total{result="scope_not_allowed"} 1`,
			`peekshot_render_duration_seconds_bucket{outcome="ok",le="1"} 0`,
			`peekshot_render_duration_seconds_bucket{outcome="ok",le="2"} 1`,
			`peekshot_render_duration_seconds_sum{outcome="ok"} 1.5`,
			`peekshot_render_duration_seconds_count{outcome="ok"} 1`,
			`peekshot_render_duration_seconds_bucket{outcome="render_timeout",le="15"} 0`,
			`peekshot_render_duration_seconds_bucket{outcome="render_timeout",le="30"} 1`,
			`peekshot_credits_spent_total 2`,
		)
	})
	t.Run("ReadsItsSourcesAtEachScrape", func(t *testing.T) {
		text := scrape(t, m)
		hasLines(t, text,
			`peekshot_render_queue_depth 5`,
			`peekshot_renders_in_flight 2`,
			`peekshot_chromium_restarts_total 1`,
			`peekshot_api_key_cache_lookups_total{result="hit"} 9`,
			`peekshot_api_key_cache_lookups_total{result="miss"} 4`,
		)
		r.s = capture.Stats{Running: 1, Waiting: 0, Restarts: 3}
		kc.hits++
		hasLines(t, scrape(t, m),
			`peekshot_render_queue_depth 0`,
			`peekshot_renders_in_flight 1`,
			`peekshot_chromium_restarts_total 3`,
			`peekshot_api_key_cache_lookups_total{result="hit"} 10`,
		)
	})
	t.Run("LabelValuesFromFixedSets", func(t *testing.T) {
		m := New(Sources{})
		const key = "psk_7Gq2abcdefghijklmnopqrstuvwxyz12x9Lb"
		m.Request("PROPFIND", "", 200)
		m.Request("GET", "", 999)
		m.KeyVerified(key)
		m.KeyVerified("https://internal.example.com/admin")
		m.KeyVerified("alice@example.com")
		m.KeyVerified("invalid api key")
		m.KeyVerified(strings.Repeat("a_", 30))
		m.Rendered("203.0.113.7", time.Second)
		m.Rendered("", time.Second)
		text := scrape(t, m)
		hasLines(t, text,
			`peekshot_http_requests_total{method="other",route="unmatched",status="200"} 1`,
			`peekshot_http_requests_total{method="GET",route="unmatched",status="other"} 1`,
			`peekshot_api_key_verifications_total{result="other"} 5`,
			`peekshot_render_duration_seconds_count{outcome="other"} 2`,
		)
		// The Go runtime's own metrics share the page and may hold any
		// number, so a bad status is looked for as a label value.
		for _, secret := range []string{key, "psk_", "example.com", "alice", "203.0.113", "PROPFIND", `"999"`} {
			if strings.Contains(text, secret) {
				t.Errorf("%q in the metrics", secret)
			}
		}
		// Without sources, their metrics are left out rather than made up.
		if strings.Contains(text, "peekshot_render_queue_depth") || strings.Contains(text, "peekshot_api_key_cache_lookups_total") {
			t.Errorf("metrics of absent sources:\n%s", peekshotLines(text))
		}
	})
	t.Run("NamesHelpAndUnits", func(t *testing.T) {
		text := scrape(t, m)
		types := regexp.MustCompile(`(?m)^# TYPE (peekshot_\w+) (\w+)$`).FindAllStringSubmatch(text, -1)
		if len(types) != 8 {
			t.Fatalf("%d PeekShot metrics:\n%s", len(types), peekshotLines(text))
		}
		for _, ty := range types {
			name, kind := ty[1], ty[2]
			if !regexp.MustCompile(`(?m)^# HELP ` + name + ` [A-Z].{20,}\.$`).MatchString(text) {
				t.Errorf("%s has no help sentence", name)
			}
			switch {
			case kind == "counter" && !strings.HasSuffix(name, "_total"):
				t.Errorf("counter %s doesn't end in _total", name)
			case kind == "histogram" && !strings.HasSuffix(name, "_seconds"):
				t.Errorf("histogram %s is not in seconds", name)
			case kind == "gauge" && strings.HasSuffix(name, "_total"):
				t.Errorf("gauge %s is named like a counter", name)
			}
		}
		if !strings.Contains(text, "\ngo_goroutines ") || !strings.Contains(text, "\nprocess_resident_memory_bytes ") {
			t.Error("no Go runtime or process metrics")
		}
	})
	t.Run("OwnRegistry", func(t *testing.T) {
		// A second instance (another server in one process, a test) can't
		// collide, and Prometheus's global registry holds none of them.
		New(Sources{Renderer: r, KeyCache: kc})
		families, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if strings.HasPrefix(f.GetName(), "peekshot_") {
				t.Fatalf("%s is in the global registry", f.GetName())
			}
		}
	})
}

func TestCodeLabel(t *testing.T) {
	for code, want := range map[string]string{
		"accepted": "accepted", "render_timeout": "render_timeout", "ip_not_allowed": "ip_not_allowed",
		"": "other", "_a": "other", "a_": "other", "a__b": "other", "Render": "other", "psk_7Gq2": "other",
		"a1": "other", "a-b": "other", strings.Repeat("a", 41): "other", strings.Repeat("a", 40): strings.Repeat("a", 40),
	} {
		if got := codeLabel(code); got != want {
			t.Errorf("codeLabel(%q) = %q, want %q", code, got, want)
		}
	}
}
