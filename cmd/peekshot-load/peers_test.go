package main

import (
	"image"
	"image/color"
	"os"
	"slices"
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
