package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The peers section (issue 10): PeekShot against today's settings, a
// direct chromedp renderer and a Playwright screenshot server, on the same
// pages with the same browser binary, at several numbers of clients, in
// interleaved rounds, so that whatever else the machine does weighs on all
// of them alike.

// peerPage is one of the pages every contender renders.
type peerPage struct {
	name string
	job  renderJob
}

// phase is what one contender did in one cell of one round.
type phase struct {
	res     result                   // renders and their latencies
	window  time.Duration            // from the first request until its tree was idle again
	machine time.Duration            // CPU of the whole machine in the window
	own     time.Duration            // CPU of the contender's process tree in the window
	byKind  map[string]time.Duration // the same per kind of process
	self    time.Duration            // CPU of this program (the clients, the page server)
	peak    int64                    // peak memory (PSS) of the contender's tree
}

func (p phase) ok() int { return p.res.n - p.res.errors }

func (p phase) perRender(d time.Duration) time.Duration {
	if p.ok() == 0 {
		return 0
	}
	return d / time.Duration(p.ok())
}

// other is the CPU the rest of the machine used in the window.
func (p phase) other() time.Duration { return max(p.machine-p.own-p.self, 0) }

// peerSettings are the knobs of the peers section.
type peerSettings struct {
	rounds  int
	each    time.Duration // back to back renders per contender and cell
	clients []int
}

// peerResults holds every phase: [page][clients][contender][round].
type peerResults struct {
	pages       []peerPage
	clients     []int
	contenders  []*contender
	phases      map[string]map[int]map[string][]phase
	sameImage   map[string]string // per contender: how its PNG of each page compares with PeekShot's
	loadBefore  string
	loadAfter   string
	sectionTime time.Duration
}

// servePages serves the URL page of the run on loopback.
func servePages() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(fixedDocument)) //nolint:errcheck // the browser may be gone
	})}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed after Close
	return "http://" + ln.Addr().String() + "/page", func() { srv.Close() }, nil
}

// runPeers measures every contender; the first is PeekShot, which every
// ratio compares with the others.
func runPeers(ctx context.Context, ps peerSettings, pages []peerPage, contenders []*contender) (*peerResults, error) {
	pr := &peerResults{pages: pages, clients: ps.clients, contenders: contenders,
		phases: make(map[string]map[int]map[string][]phase), sameImage: make(map[string]string), loadBefore: loadAverage()}
	start := time.Now()
	if err := pr.warmUp(ctx); err != nil {
		return nil, err
	}
	for round := range ps.rounds {
		for _, pg := range pages {
			for _, clients := range ps.clients {
				// Each cell in a different order, so that no contender always
				// follows the same one.
				order := slices.Clone(contenders)
				shift := (round + clients) % len(order)
				order = append(order[shift:], order[:shift]...)
				for _, c := range order {
					ph, err := measurePhase(ctx, c, pg.job, clients, ps.each)
					if err != nil {
						return nil, fmt.Errorf("%s, %s page, %d clients: %w", c.name, pg.name, clients, err)
					}
					pr.add(pg.name, clients, c.name, ph)
				}
			}
		}
	}
	pr.loadAfter = loadAverage()
	pr.sectionTime = time.Since(start)
	return pr, nil
}

func (pr *peerResults) add(pg string, clients int, c string, ph phase) {
	if pr.phases[pg] == nil {
		pr.phases[pg] = make(map[int]map[string][]phase)
	}
	if pr.phases[pg][clients] == nil {
		pr.phases[pg][clients] = make(map[string][]phase)
	}
	pr.phases[pg][clients][c] = append(pr.phases[pg][clients][c], ph)
}

// warmUp renders each page three times with each contender (caches, JIT)
// and compares its last PNG with PeekShot's, pixel by pixel.
func (pr *peerResults) warmUp(ctx context.Context) error {
	for _, pg := range pr.pages {
		var ref image.Image
		for i, c := range pr.contenders {
			var shot []byte
			for range 3 {
				var err error
				if shot, err = c.render(ctx, pg.job); err != nil {
					return fmt.Errorf("%s, %s page: %w", c.name, pg.name, err)
				}
			}
			img, err := png.Decode(bytes.NewReader(shot))
			if err != nil {
				return fmt.Errorf("%s, %s page: %w", c.name, pg.name, err)
			}
			if i == 0 {
				ref = img
				continue
			}
			pr.sameImage[c.name] += fmt.Sprintf("%s page: %s; ", pg.name, comparePixels(ref, img))
		}
	}
	return nil
}

// comparePixels says how b differs from a.
func comparePixels(a, b image.Image) string {
	if a.Bounds() != b.Bounds() {
		return fmt.Sprintf("%v, not %v", b.Bounds().Size(), a.Bounds().Size())
	}
	differ, worst := 0, 0
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, _ := a.At(x, y).RGBA()
			br, bg, bb, _ := b.At(x, y).RGBA()
			d := max(absDiff(ar, br), absDiff(ag, bg), absDiff(ab, bb)) >> 8
			if d > 0 {
				differ++
				worst = max(worst, int(d))
			}
		}
	}
	if differ == 0 {
		return "identical pixels"
	}
	return fmt.Sprintf("%d of %d pixels differ, by up to %d/255", differ, r.Dx()*r.Dy(), worst)
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// measurePhase runs clients back to back renders of job for d, then waits
// until the contender's processes are idle again (closing the last tab,
// preparing the next), so that a render's CPU is counted whole whether it
// is spent before or after the answer.
func measurePhase(ctx context.Context, c *contender, job renderJob, clients int, d time.Duration) (phase, error) {
	time.Sleep(200 * time.Millisecond) // the previous contender's last tab closes
	watch := watchTree(c.root)
	machine0, self0, start := machineCPU(), processCPU(os.Getpid()), time.Now()
	deadline := start.Add(d)
	res := hammer(ctx, clients, func() bool { return time.Now().Before(deadline) }, func(ctx context.Context, _ int) error {
		_, err := c.render(ctx, job)
		return err
	})
	waitIdle(c.root)
	ph := phase{res: res, window: time.Since(start), machine: machineCPU() - machine0, self: processCPU(os.Getpid()) - self0}
	ph.byKind, ph.own, ph.peak = watch.end()
	if res.errors > 0 {
		return ph, fmt.Errorf("%d of %d renders failed: %s", res.errors, res.n, res.firstErr)
	}
	return ph, ctx.Err()
}

// waitIdle waits until root's tree used less than 2 ms of CPU in 50 ms, at
// most 2 s.
func waitIdle(root int) {
	treeCPU := func() time.Duration {
		all := allProcesses()
		var sum time.Duration
		for _, pid := range descendants(all, root) {
			sum += all[pid].cpu
		}
		return sum
	}
	last := treeCPU()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		now := treeCPU()
		if now-last < 2*time.Millisecond {
			return
		}
		last = now
	}
}

// loadAverage is the machine's load average (1, 5 and 15 minutes).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// spread is the minimum, median and maximum of values.
func spread(values []float64) (lo, mid, hi float64) {
	if len(values) == 0 {
		return 0, 0, 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	mid = v[len(v)/2]
	if len(v)%2 == 0 {
		mid = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[0], mid, v[len(v)-1]
}

// metric is one figure of a phase.
type metric struct {
	name string
	of   func(phase) float64
	unit func(float64) string
}

var peerMetrics = []metric{
	{"renders/s", func(p phase) float64 { return p.res.rate() }, func(v float64) string { return fmt.Sprintf("%.2f", v) }},
	{"p50", func(p phase) float64 { return float64(p.res.pct(50)) }, func(v float64) string { return ms(time.Duration(v)) }},
	{"p95", func(p phase) float64 { return float64(p.res.pct(95)) }, func(v float64) string { return ms(time.Duration(v)) }},
	{"machine CPU/render", func(p phase) float64 { return float64(p.perRender(p.machine)) }, func(v float64) string { return ms(time.Duration(v)) }},
	{"own CPU/render", func(p phase) float64 { return float64(p.perRender(p.own)) }, func(v float64) string { return ms(time.Duration(v)) }},
	{"peak memory", func(p phase) float64 { return float64(p.peak) }, func(v float64) string { return mb(int64(v)) }},
}

// values is m of every round of one cell.
func values(phases []phase, of func(phase) float64) []float64 {
	out := make([]float64, len(phases))
	for i, p := range phases {
		out[i] = of(p)
	}
	return out
}

// ratios is PeekShot's m ÷ the peer's m, round by round.
func ratios(peek, peer []phase, of func(phase) float64) []float64 {
	var out []float64
	for i := range min(len(peek), len(peer)) {
		if d := of(peer[i]); d != 0 {
			out = append(out, of(peek[i])/d)
		}
	}
	return out
}

// ratio is the median over rounds of PeekShot ÷ peer for m.
func (pr *peerResults) ratio(pg string, clients int, peer string, of func(phase) float64) float64 {
	return pr.ratioOf(pg, clients, pr.contenders[0].name, peer, of)
}

// ratioOf is the median over rounds of contender a ÷ contender b for m.
func (pr *peerResults) ratioOf(pg string, clients int, a, b string, of func(phase) float64) float64 {
	cell := pr.phases[pg][clients]
	_, mid, _ := spread(ratios(cell[a], cell[b], of))
	return mid
}

// otherLoad is the share of the CPUs that the rest of the machine took
// during the peers' phases: on average, and in the busiest phase.
func (pr *peerResults) otherLoad() (mean, worst float64) {
	var other, window time.Duration
	for _, byClients := range pr.phases {
		for _, byContender := range byClients {
			for _, phases := range byContender {
				for _, p := range phases {
					other += p.other()
					window += p.window
					worst = max(worst, float64(p.other())/float64(p.window))
				}
			}
		}
	}
	n := float64(runtime.NumCPU())
	return float64(other) / float64(max(window, 1)) / n, worst / n
}
