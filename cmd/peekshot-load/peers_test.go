package main

import (
	"image"
	"image/color"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSpreadAndRatios(t *testing.T) {
	for _, tt := range []struct {
		in          []float64
		lo, mid, hi float64
	}{
		{nil, 0, 0, 0},
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 1, 3, 5},
		{[]float64{4, 1, 3, 2}, 1, 2.5, 4},
	} {
		lo, mid, hi := spread(tt.in)
		if lo != tt.lo || mid != tt.mid || hi != tt.hi {
			t.Errorf("spread(%v) = %v %v %v, want %v %v %v", tt.in, lo, mid, hi, tt.lo, tt.mid, tt.hi)
		}
	}
	rate := func(n int) phase { return phase{res: result{n: n, elapsed: time.Second}} }
	got := ratios([]phase{rate(10), rate(12), rate(9)}, []phase{rate(5), rate(0), rate(3)}, func(p phase) float64 { return p.res.rate() })
	// A peer's round with nothing to divide by is left out.
	if !slices.Equal(got, []float64{2, 3}) {
		t.Fatalf("ratios = %v", got)
	}
}

func TestComparePixels(t *testing.T) {
	a := image.NewRGBA(image.Rect(0, 0, 4, 2))
	b := image.NewRGBA(image.Rect(0, 0, 4, 2))
	if got := comparePixels(a, b); got != "identical pixels" {
		t.Fatalf("same images: %q", got)
	}
	b.Set(1, 1, color.RGBA{0, 0, 9, 255})
	if got := comparePixels(a, b); got != "1 of 8 pixels differ, by up to 9/255" {
		t.Fatalf("one pixel off: %q", got)
	}
	if got := comparePixels(a, image.NewRGBA(image.Rect(0, 0, 2, 2))); got != "(2,2), not (4,2)" {
		t.Fatalf("other size: %q", got)
	}
}

func TestDescendantsAndWatch(t *testing.T) {
	all := map[int]procInfo{1: {ppid: 0}, 10: {ppid: 1}, 11: {ppid: 10}, 12: {ppid: 11}, 20: {ppid: 1}}
	got := descendants(all, 10)
	slices.Sort(got)
	if !slices.Equal(got, []int{10, 11, 12}) {
		t.Fatalf("descendants = %v", got)
	}
	if descendants(all, 99) != nil {
		t.Fatal("a missing root has descendants")
	}
	// This process is the root of a tree of one: it is "the server", and
	// the CPU it burns while watched is counted.
	w := watchTree(os.Getpid())
	for start := processCPU(os.Getpid()); processCPU(os.Getpid())-start < 100*time.Millisecond; {
	}
	byKind, total, peak := w.end()
	if total < 100*time.Millisecond || byKind["server"] != total || peak <= 0 {
		t.Fatalf("watched CPU %v (%v), peak %d", total, byKind, peak)
	}
}

// TestPeerTargets: the targets are PeekShot ÷ each peer, judged, and the
// throughput line for the direct peer says what the browser allows
// without PeekShot: direct ÷ today's and ÷ Playwright.
func TestPeerTargets(t *testing.T) {
	// rendersIn is a phase of n renders in a second, each taking d,
	// costing the machine cpu each.
	rendersIn := func(n int, d, cpu time.Duration) phase {
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = d
		}
		return phase{res: result{n: n, elapsed: time.Second, latencies: lat}, machine: time.Duration(n) * cpu}
	}
	names := []string{"PeekShot", "today's PeekShot", "direct chromedp", "Playwright"}
	pr := &peerResults{pages: []peerPage{{name: "HTML"}, {name: "URL"}}, clients: []int{1, 2},
		phases: map[string]map[int]map[string][]phase{}}
	for _, n := range names {
		pr.contenders = append(pr.contenders, &contender{name: n})
	}
	// renders a second at 2 clients and p50 at 1, per contender; CPU per
	// render is 2 CPUs ÷ the renders a second.
	rates := map[string]int{"PeekShot": 10, "today's PeekShot": 4, "direct chromedp": 9, "Playwright": 6}
	p50s := map[string]time.Duration{"PeekShot": 100, "today's PeekShot": 300, "direct chromedp": 98, "Playwright": 150}
	for _, pg := range pr.pages {
		for _, clients := range pr.clients {
			for _, n := range names {
				ph := rendersIn(rates[n], p50s[n]*time.Millisecond, 2*time.Second/time.Duration(rates[n]))
				pr.add(pg.name, clients, n, ph)
			}
		}
	}
	var out strings.Builder
	r := &report{out: &out}
	r.peerTargets(pr, names[1], names[2], names[3])
	for _, want := range []string{
		"machine CPU per URL render ÷ today's PeekShot, 1 client   0.40   (target ≤ 0.50: met; 2 clients 0.40)",
		"renders/s with 2 clients ÷ today's PeekShot   HTML 2.50, URL 2.50: met",
		"renders/s with 2 clients ÷ Playwright   HTML 1.67, URL 1.67: MISSED",
		"p50 with 1 client ÷ direct chromedp   HTML 1.02, URL 1.02: met",
		"with nothing of PeekShot's (direct chromedp), renders/s with 2 clients: ÷ today's PeekShot HTML 2.25, URL 2.25; ÷ Playwright HTML 1.50, URL 1.50",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	if !slices.Equal(r.missed, []string{"renders/s ÷ Playwright"}) {
		t.Errorf("missed = %q", r.missed)
	}
}
