package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// request is one API call the load generator repeats.
type request struct {
	method, url, key string
	body             []byte
	wantType         string // the Content-Type a success has, when it matters
	client           *http.Client
}

func getRequest(url, key string) request {
	return request{method: http.MethodGet, url: url, key: key}
}

// fixedDocument is the HTML every render of the run draws: text, a table,
// borders and a gradient, no sub-resources.
const fixedDocument = `<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;font:16px sans-serif;color:#222;background:linear-gradient(#fff,#e8ecf8)}
h1{font-size:44px;margin:40px 40px 20px}
.card{margin:0 40px;padding:24px;border:1px solid #ccd;border-radius:8px;background:#fff}
table{border-collapse:collapse;width:100%}td,th{padding:8px;border-bottom:1px solid #eee;text-align:left}
</style></head><body><h1>Invoice #1042</h1><div class="card"><p>Rendered by the PeekShot load run.</p>
<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr><tr><td>Widget</td><td>3</td><td>$9.99</td></tr>
<tr><td>Gadget</td><td>1</td><td>$24.00</td></tr><tr><td>Total</td><td></td><td>$53.97</td></tr></table></div></body></html>`

// renderWidth and renderHeight are the viewport of every render of the run.
const renderWidth, renderHeight = 1280, 720

func renderRequest(base, key string) request {
	body, _ := json.Marshal(map[string]any{"html": fixedDocument, "width": renderWidth, "height": renderHeight, "format": "png"})
	return request{method: http.MethodPost, url: base + "/api/v1/html-to-image", key: key, body: body, wantType: "image/png",
		client: &http.Client{Timeout: time.Minute}}
}

// do sends the request once; anything but a 200 is an error.
func (r request) do(ctx context.Context) error {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return err
	}
	if r.key != "" {
		req.Header.Set("X-Api-Key", r.key)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	n, err := io.Copy(io.Discard, res.Body)
	switch {
	case err != nil:
		return err
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("%s %s: %s", r.method, r.url, res.Status)
	case r.wantType != "" && (res.Header.Get("Content-Type") != r.wantType || n == 0):
		return fmt.Errorf("%s %s: %d bytes of %s", r.method, r.url, n, res.Header.Get("Content-Type"))
	}
	return nil
}

// result is what a phase measured.
type result struct {
	n, errors int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration // sorted
	serverCPU time.Duration   // CPU the server used meanwhile, when measured
	clientCPU time.Duration   // CPU this program used meanwhile, when measured
	otherCPU  time.Duration   // CPU the rest of the machine used meanwhile
}

func (r result) rate() float64 { return float64(r.n-r.errors) / r.elapsed.Seconds() }

// pct is the p-th percentile latency (0 < p ≤ 100).
func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// hammer runs fn from workers goroutines (fn learns which) until next says
// to stop, and records every call's latency.
func hammer(ctx context.Context, workers int, next func() bool, fn func(ctx context.Context, worker int) error) result {
	var (
		mu       sync.Mutex
		all      []time.Duration
		errors   int
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for worker := range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			bad := 0
			var msg string
			for ctx.Err() == nil && next() {
				t := time.Now()
				err := fn(ctx, worker)
				lat = append(lat, time.Since(t))
				if err != nil {
					bad++
					msg = err.Error()
				}
			}
			mu.Lock()
			all = append(all, lat...)
			errors += bad
			if firstErr == "" {
				firstErr = msg
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res := result{n: len(all), errors: errors, firstErr: firstErr, elapsed: time.Since(start), latencies: all}
	slices.Sort(res.latencies)
	return res
}

// onConns runs a phase over conns keep-alive connections, one per worker.
func onConns(ctx context.Context, req request, conns int, next func() bool) (result, error) {
	w, err := newWireClient(req)
	if err != nil {
		return result{}, err
	}
	cs := make([]*wireConn, conns)
	for i := range cs {
		if cs[i], err = w.dial(ctx); err != nil {
			return result{}, err
		}
		defer cs[i].close()
	}
	res := hammer(ctx, conns, next, func(_ context.Context, worker int) error { return cs[worker].do() })
	return res, ctx.Err()
}

// load sends req over conns keep-alive connections for d.
func load(ctx context.Context, req request, conns int, d time.Duration) (result, error) {
	deadline := time.Now().Add(d)
	return onConns(ctx, req, conns, func() bool { return time.Now().Before(deadline) })
}

// loadCount sends req n times over conns keep-alive connections.
func loadCount(ctx context.Context, req request, conns, n int) (result, error) {
	var sent atomic.Int64
	return onConns(ctx, req, conns, func() bool { return sent.Add(1) <= int64(n) })
}

// merge adds b's measures to r's, as if they had been one phase.
func (r result) merge(b result) result {
	r.n += b.n
	r.errors += b.errors
	if r.firstErr == "" {
		r.firstErr = b.firstErr
	}
	r.elapsed += b.elapsed
	r.serverCPU += b.serverCPU
	r.clientCPU += b.clientCPU
	r.otherCPU += b.otherCPU
	r.latencies = append(r.latencies, b.latencies...)
	slices.Sort(r.latencies)
	return r
}

// rounds is how many times the HTTP phases alternate.
const rounds = 3

// httpRounds measures the two requests in alternating rounds, after a
// second of warm-up each.
func (s *server) httpRounds(ctx context.Context, ceiling, api request, set settings) (result, result, error) {
	var a, b result
	for _, req := range []request{ceiling, api} {
		if _, err := load(ctx, req, set.conns, time.Second); err != nil {
			return a, b, err
		}
	}
	each := set.duration / rounds
	for range rounds {
		ra, err := s.measured(func() (result, error) { return load(ctx, ceiling, set.conns, each) })
		if err != nil {
			return a, b, err
		}
		rb, err := s.measured(func() (result, error) { return load(ctx, api, set.conns, each) })
		if err != nil {
			return a, b, err
		}
		a, b = a.merge(ra), b.merge(rb)
	}
	return a, b, nil
}

// renderResults are the render phases of one way of rendering.
type renderResults struct {
	oneAtATime result        // with an idle pause between renders
	one, two   result        // back to back, one client and two
	cpu        time.Duration // machine CPU per render, back to back with one client
}

// renderPhases measures render: one at a time on an otherwise idle
// machine (latency), then back to back from one client and from two
// (throughput).
func renderPhases(ctx context.Context, s settings, render func(context.Context) error) (renderResults, error) {
	var rr renderResults
	each := func(ctx context.Context, _ int) error { return render(ctx) }
	for range 3 { // warm-up: the first renders pay for caches and JIT
		if err := render(ctx); err != nil {
			return rr, err
		}
	}
	left := s.renders
	rr.oneAtATime = hammer(ctx, 1, func() bool {
		if left == 0 {
			return false
		}
		left--
		time.Sleep(s.renderPause)
		return true
	}, each)
	if rr.oneAtATime.errors > 0 {
		return rr, fmt.Errorf("%d renders failed: %s", rr.oneAtATime.errors, rr.oneAtATime.firstErr)
	}
	for i, workers := range []int{1, 2} {
		deadline := time.Now().Add(s.renderFor)
		machine := machineCPU()
		res := hammer(ctx, workers, func() bool { return time.Now().Before(deadline) }, each)
		if i == 0 && res.n > 0 {
			rr.cpu = (machineCPU() - machine) / time.Duration(res.n)
		}
		if res.errors > 0 && strings.TrimSpace(res.firstErr) != "" {
			return rr, fmt.Errorf("%d of %d renders failed: %s", res.errors, res.n, res.firstErr)
		}
		if i == 0 {
			rr.one = res
		} else {
			rr.two = res
		}
	}
	return rr, ctx.Err()
}
