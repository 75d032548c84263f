// Package metrics owns what PeekShot tells Prometheus (SPEC §8): the
// collectors, their names, help and units, the fixed sets their label
// values come from, and the registry of their own that GET /metrics serves
// on the operator's PEEKSHOT_METRICS_ADDR. The web layer reports events
// through its own small interface, which Metrics implements; the renderer
// and the key cache are read when Prometheus scrapes, so neither knows
// about Prometheus.
//
// No label value is ever a key, email, label, URL or address: routes are
// templates ("/account/api-keys/:id"), outcomes and results are the API's
// error codes, and anything outside a label's set is counted as "other".
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peekshot/peekshot/capture"
)

// Sources are what Metrics reads at every scrape; either may be nil.
type Sources struct {
	// Renderer's queue depth, renders in flight and Chromium restarts
	// (capture.Chromium).
	Renderer interface{ Stats() capture.Stats }
	// KeyCache counts the API key lookups it answered from memory and
	// those that read the database (store.Cached).
	KeyCache interface{ KeyLookups() (hits, misses uint64) }
}

// renderBuckets span a render, from a cached small page to the 30 s
// timeout, in seconds.
var renderBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30}

// Metrics holds PeekShot's collectors in a registry of their own (never
// Prometheus's global one). It is safe for concurrent use.
type Metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	verifications *prometheus.CounterVec
	accepted      prometheus.Counter // verifications of accepted keys: most requests
	renders       *prometheus.HistogramVec
	credits       prometheus.Counter
}

// New registers PeekShot's collectors, with the Go runtime's and the
// process's, reading src at every scrape.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peekshot_http_requests_total",
			Help: "HTTP requests answered, by method, route template (unmatched for an address no route knows) and status code.",
		}, []string{"method", "route", "status"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peekshot_api_key_verifications_total",
			Help: "API key verifications of API requests, by result: accepted, or the error code of the refusal (missing_api_key, invalid_api_key, api_key_expired, api_key_inactive, ip_not_allowed, scope_not_allowed, …).",
		}, []string{"result"}),
		renders: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "peekshot_render_duration_seconds",
			Help:    "Time the renderer took for a render, queue wait included, by outcome: ok, or the API error code it ended in (render_timeout, target_unreachable, forbidden_target, rate_limited, renderer_unavailable, …).",
			Buckets: renderBuckets,
		}, []string{"outcome"}),
		credits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peekshot_credits_spent_total",
			Help: "Credits charged for successful renders.",
		}),
	}
	m.reg.MustRegister(m.requests, m.verifications, m.renders, m.credits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The series every dashboard asks for exist from the start, at 0.
	m.accepted = m.verifications.WithLabelValues("accepted")
	m.renders.WithLabelValues("ok")

	if r := src.Renderer; r != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peekshot_render_queue_depth",
				Help: "Renders waiting for a render slot (the queue is fair between accounts and bounded).",
			}, func() float64 { return float64(r.Stats().Waiting) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peekshot_renders_in_flight",
				Help: "Renders holding a render slot (at most PEEKSHOT_RENDER_CONCURRENCY).",
			}, func() float64 { return float64(r.Stats().Running) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "peekshot_chromium_restarts_total",
				Help: "Chromium starts after the first: after a crash, a stuck browser or its job limit.",
			}, func() float64 { return float64(r.Stats().Restarts) }),
		)
	}
	if kc := src.KeyCache; kc != nil {
		lookups := func(result string, n func() uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "peekshot_api_key_cache_lookups_total",
				Help:        "API key lookups by their hash, by result: hit (answered from memory) or miss (read from the database; every unknown key is one).",
				ConstLabels: prometheus.Labels{"result": result},
			}, func() float64 { return float64(n()) })
		}
		m.reg.MustRegister(
			lookups("hit", func() uint64 { h, _ := kc.KeyLookups(); return h }),
			lookups("miss", func() uint64 { _, n := kc.KeyLookups(); return n }),
		)
	}
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request counts one HTTP request by its route template ("" when no route
// matched).
func (m *Metrics) Request(method, route string, status int) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(methodLabel(method), route, statusLabel(status)).Inc()
}

// KeyVerified counts one API key verification: "accepted", or the error
// code that refused it.
func (m *Metrics) KeyVerified(result string) {
	if result == "accepted" {
		m.accepted.Inc() // no label lookup on the path of every request
		return
	}
	m.verifications.WithLabelValues(codeLabel(result)).Inc()
}

// Rendered records one render: how long the renderer took, and "ok" or the
// error code it ended in.
func (m *Metrics) Rendered(outcome string, took time.Duration) {
	m.renders.WithLabelValues(codeLabel(outcome)).Observe(took.Seconds())
}

// CreditsSpent counts credits charged.
func (m *Metrics) CreditsSpent(n int64) { m.credits.Add(float64(n)) }

// methodLabel is one of the methods PeekShot routes, or "other": a
// client's made-up method can't add series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// codeLabel keeps a result or outcome that has the shape of an error code
// (SPEC §4: lower-case words joined by single underscores, no digits, at
// most 40 bytes, so that nothing like a key or an address fits) and counts
// anything else as "other".
func codeLabel(code string) string {
	if len(code) == 0 || len(code) > 40 || code[0] == '_' || code[len(code)-1] == '_' || strings.Contains(code, "__") {
		return "other"
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < 'a' || c > 'z') && c != '_' {
			return "other"
		}
	}
	return code
}
