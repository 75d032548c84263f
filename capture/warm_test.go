package capture

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestTabsOpenedAheadOfDemand: a browser keeps one prepared tab per render
// slot, each in a browser context of its own; a job uses one (it does not
// open its own) and the browser opens the next.
func TestTabsOpenedAheadOfDemand(t *testing.T) {
	c, _ := newRenderer(t, Config{Concurrency: 2, Timeout: 10 * time.Second}, http.NotFoundHandler())
	ready := func() []*tab {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
		defer cancel()
		if err := c.waitWarm(ctx); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return append([]*tab(nil), c.cur.warm...)
	}
	before := ready()
	if len(before) != 2 {
		t.Fatalf("%d tabs ready, want one per render slot (2)", len(before))
	}
	if before[0].contextID == before[1].contextID || before[0].contextID == "" {
		t.Fatalf("ready tabs share a browser context: %q", before[0].contextID)
	}
	for _, w := range before {
		if !w.prepared || w.viewport != (viewport{DefaultWidth, DefaultHeight, DefaultDeviceScale}) {
			t.Fatalf("a ready tab is not prepared: %+v", w)
		}
	}

	start := time.Now()
	if _, err := c.Render(context.Background(), Job{HTML: colourPage}); err != nil {
		t.Fatal(err)
	}
	t.Logf("render on a ready tab: %v", time.Since(start).Round(time.Millisecond))
	after := ready()
	if len(after) != 2 {
		t.Fatalf("%d tabs ready after a job, want 2", len(after))
	}
	used := 0
	for _, w := range before {
		if w != after[0] && w != after[1] {
			used++
		}
	}
	if used != 1 {
		t.Fatalf("the job used %d of the ready tabs, want 1", used)
	}
	tabsSettleAt(t, c, 1) // the browser's own first tab; ready tabs are not counted
}
