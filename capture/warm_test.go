package capture

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// TestOneRendererProcessPerJob: each job costs the browser one renderer
// process (its own, in its own browser context), not the three to four full
// Chromium started while it kept a spare renderer warm for the next site.
// Processes are counted by watching the browser's process tree.
func TestOneRendererProcessPerJob(t *testing.T) {
	const jobs = 6
	for _, chrome := range []string{HeadlessShellPath, FullChromiumPath} {
		t.Run(filepath.Base(chrome), func(t *testing.T) {
			requireBrowser(t, chrome)
			mux := http.NewServeMux()
			servePage(mux, "/page", colourPage)
			c, base := newRenderer(t, Config{ChromePath: chrome, Concurrency: 1}, mux)
			settled := func() {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
				defer cancel()
				if err := c.waitWarm(ctx); err != nil {
					t.Fatal(err)
				}
			}
			settled()
			seen := make(map[int]bool)
			for _, pid := range processTree(c.BrowserPID(), "--type=renderer") {
				seen[pid] = true
			}
			before := len(seen)
			stop := make(chan struct{})
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for {
					for _, pid := range processTree(c.BrowserPID(), "--type=renderer") {
						seen[pid] = true
					}
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			for i := range jobs {
				if _, err := c.Render(context.Background(), Job{URL: fmt.Sprintf("%s/page?%d", base, i), Options: Options{Width: 100, Height: 100}}); err != nil {
					t.Fatal(err)
				}
			}
			settled()
			close(stop)
			<-watched
			if started := len(seen) - before; started > jobs {
				t.Fatalf("%d renderer processes started for %d jobs, want one per job", started, jobs)
			}
		})
	}
}

// processTree lists the live descendants of root whose command line
// contains arg.
func processTree(root int, arg string) []int {
	entries, _ := os.ReadDir("/proc")
	parent := make(map[int]int, len(entries))
	var matching []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		parent[pid], _ = strconv.Atoi(fields[1])
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(cmdline), arg) {
			matching = append(matching, pid)
		}
	}
	var out []int
	for _, pid := range matching {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
