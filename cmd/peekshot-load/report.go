package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report prints the run's figures, each beside its target (issue 6).
type report struct {
	out    io.Writer
	missed []string
}

func (r *report) header(srv *server) {
	fmt.Fprintf(r.out, "PeekShot load run, %s: %d CPUs, %s/%s, %s, server %s on %s, database %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), srv.bin, strings.TrimPrefix(srv.url, "http://"), srv.database())
}

// verdict says whether a figure meets its target and remembers misses.
func (r *report) verdict(ok bool, what string) string {
	if ok {
		return "met"
	}
	r.missed = append(r.missed, what)
	return "MISSED"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func perRequest(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n))
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func (r *report) http(s settings, health, me result) {
	fmt.Fprintf(r.out, "HTTP, %d keep-alive connections, %s per endpoint in %d alternating rounds\n", s.conns, s.duration, rounds)
	w := tabwriter.NewWriter(r.out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\trequests\treq/s\tp50\tp99\terrors\tserver CPU/req\tload CPU/req\t")
	for _, row := range []struct {
		name string
		res  result
	}{{"GET /healthz (ceiling)", health}, {"GET /api/v1/me (valid key)", me}} {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%s\t\n", row.name, row.res.n, row.res.rate(), ms(row.res.pct(50)), ms(row.res.pct(99)), row.res.errors,
			perRequest(row.res.serverCPU, row.res.n), perRequest(row.res.clientCPU, row.res.n))
	}
	w.Flush()
	other := float64(health.otherCPU+me.otherCPU) / float64(health.elapsed+me.elapsed) / float64(runtime.NumCPU())
	fmt.Fprintf(r.out, "  (other processes and the kernel's own threads took %.0f%% of the CPUs meanwhile)\n", 100*max(other, 0))
	ratio := me.rate() / health.rate()
	fmt.Fprintf(r.out, "  /me ÷ /healthz throughput  %.2f   (target ≥ 0.60: %s)\n", ratio, r.verdict(ratio >= 0.6, "/me throughput ratio"))
	fmt.Fprintf(r.out, "  /me p99                    %s   (target < 10 ms: %s)\n", ms(me.pct(99)), r.verdict(me.pct(99) < 10*time.Millisecond, "/me p99"))
	fmt.Fprintf(r.out, "  errors                     %d   (target 0: %s)\n\n", health.errors+me.errors, r.verdict(health.errors+me.errors == 0, "HTTP errors"))
	if me.errors+health.errors > 0 {
		fmt.Fprintf(r.out, "  first error: %s\n\n", me.firstErr+health.firstErr)
	}
}

func (r *report) memory(s settings, idle, tenth, all int64) {
	growth := float64(all-tenth) / float64(tenth)
	fmt.Fprintf(r.out, "Server memory (VmRSS of the Go process; Chromium runs apart)\n")
	fmt.Fprintf(r.out, "  at rest after start        %s   (target < 50 MB: %s)\n", mb(idle), r.verdict(idle < 50<<20, "idle RSS"))
	fmt.Fprintf(r.out, "  after %7d API requests  %s\n", s.memRequests/10, mb(tenth))
	fmt.Fprintf(r.out, "  after %7d API requests  %s   (%+.1f%%; target within 20%%: %s)\n\n", s.memRequests, mb(all), growth*100,
		r.verdict(growth <= 0.2 && growth >= -0.2, "RSS growth"))
}

func (r *report) renders(s settings, peek, direct renderResults, chromium string) {
	fmt.Fprintf(r.out, "Rendering one fixed HTML document, %d×%d PNG (%s; the direct renders with a browser context each, as PeekShot's)\n", renderWidth, renderHeight, chromium)
	w := tabwriter.NewWriter(r.out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\trenders\tp50\tp99\trenders/s\terrors\t")
	row := func(name string, res result, rate bool) {
		perSec := "-"
		if rate {
			perSec = fmt.Sprintf("%.2f", res.rate())
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t\n", name, res.n, ms(res.pct(50)), ms(res.pct(99)), perSec, res.errors)
	}
	pause := fmt.Sprintf(", %s apart", s.renderPause)
	row("PeekShot API, one at a time"+pause, peek.oneAtATime, false)
	row("chromedp direct, one at a time"+pause, direct.oneAtATime, false)
	row("PeekShot API, 1 client back to back", peek.one, true)
	row("PeekShot API, 2 clients back to back", peek.two, true)
	row("chromedp direct, 1 client back to back", direct.one, true)
	row("chromedp direct, 2 clients back to back", direct.two, true)
	w.Flush()
	over := float64(peek.oneAtATime.pct(50)) / float64(direct.oneAtATime.pct(50))
	fmt.Fprintf(r.out, "  PeekShot ÷ direct, p50 one at a time   %.2f   (target ≤ 1.15: %s)\n", over, r.verdict(over <= 1.15, "render overhead"))
	busy := float64(peek.one.pct(50)) / float64(direct.one.pct(50))
	fmt.Fprintf(r.out, "  PeekShot ÷ direct, p50 back to back    %.2f\n", busy)
	scale := peek.two.rate() / peek.one.rate()
	fmt.Fprintf(r.out, "  PeekShot 2 clients ÷ 1, renders/s      %.2f   (target ≥ 1.6: %s)\n", scale, r.verdict(scale >= 1.6, "render scaling"))
	fmt.Fprintf(r.out, "  direct 2 clients ÷ 1, renders/s        %.2f\n", direct.two.rate()/direct.one.rate())
	fmt.Fprintf(r.out, "  machine CPU per render, 1 client: PeekShot %s, direct %s (%d CPUs: at most %.1f and %.1f renders/s)\n\n",
		ms(peek.cpu), ms(direct.cpu), runtime.NumCPU(), float64(runtime.NumCPU())*float64(time.Second)/float64(max(peek.cpu, 1)),
		float64(runtime.NumCPU())*float64(time.Second)/float64(max(direct.cpu, 1)))
}

// summary names the targets missed.
func (r *report) summary() {
	if len(r.missed) > 0 {
		fmt.Fprintf(r.out, "Missed: %s (see docs/performance.md)\n", strings.Join(r.missed, ", "))
	} else {
		fmt.Fprintln(r.out, "Every target met.")
	}
}

func (r *report) peers(ps peerSettings, pr *peerResults) {
	peek := pr.contenders[0].name
	fmt.Fprintf(r.out, "Peers: %d rounds, %s of back to back renders per contender and cell, contenders interleaved (%s in all)\n",
		ps.rounds, ps.each, pr.sectionTime.Round(time.Second))
	for _, c := range pr.contenders {
		fmt.Fprintf(r.out, "  %-18s %s\n", c.name, c.version)
	}
	for _, c := range pr.contenders[1:] {
		fmt.Fprintf(r.out, "  its PNGs against PeekShot's, %s: %s\n", c.name, strings.TrimSuffix(pr.sameImage[c.name], "; "))
	}
	mean, worst := pr.otherLoad()
	fmt.Fprintf(r.out, "  the rest of the machine took %.0f%% of the %d CPUs on average meanwhile (%.0f%% in the busiest phase); load average %s before, %s after\n",
		100*mean, runtime.NumCPU(), 100*worst, pr.loadBefore, pr.loadAfter)
	fmt.Fprintf(r.out, "  (own CPU is the contender's process tree: its server and its browser's processes; machine CPU is everything, this program's clients included)\n\n")

	for _, pg := range pr.pages {
		fmt.Fprintf(r.out, "%s page, %d×%d PNG: medians over the rounds\n", pg.name, pg.job.Width, pg.job.Height)
		w := tabwriter.NewWriter(r.out, 2, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(w, "\tclients\t")
		for _, m := range peerMetrics {
			fmt.Fprintf(w, "%s\t", m.name)
		}
		fmt.Fprintln(w)
		for _, c := range pr.contenders {
			for _, clients := range pr.clients {
				fmt.Fprintf(w, "%s\t%d\t", c.name, clients)
				for _, m := range peerMetrics {
					_, mid, _ := spread(values(pr.phases[pg.name][clients][c.name], m.of))
					fmt.Fprintf(w, "%s\t", m.unit(mid))
				}
				fmt.Fprintln(w)
			}
		}
		w.Flush()
		fmt.Fprintf(r.out, "%s ÷ peer, %s page: min / median / max over the rounds\n", peek, pg.name)
		w = tabwriter.NewWriter(r.out, 2, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(w, "\tclients\t")
		for _, m := range peerMetrics {
			fmt.Fprintf(w, "%s\t", m.name)
		}
		fmt.Fprintln(w)
		for _, c := range pr.contenders[1:] {
			for _, clients := range pr.clients {
				fmt.Fprintf(w, "÷ %s\t%d\t", c.name, clients)
				cell := pr.phases[pg.name][clients]
				for _, m := range peerMetrics {
					lo, mid, hi := spread(ratios(cell[peek], cell[c.name], m.of))
					fmt.Fprintf(w, "%.2f / %.2f / %.2f\t", lo, mid, hi)
				}
				fmt.Fprintln(w)
			}
		}
		w.Flush()
		fmt.Fprintln(r.out)
	}

	// Where the CPU of a render goes, per kind of process, one client.
	fmt.Fprintf(r.out, "CPU per render by process, 1 client, medians over the rounds (the server is the contender's own process: Go, Node)\n")
	w := tabwriter.NewWriter(r.out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "\t")
	for _, c := range pr.contenders {
		for _, pg := range pr.pages {
			fmt.Fprintf(w, "%s %s\t", c.name, pg.name)
		}
	}
	fmt.Fprintln(w)
	for _, kind := range append(kinds, "all") {
		fmt.Fprintf(w, "%s\t", kind)
		for _, c := range pr.contenders {
			for _, pg := range pr.pages {
				_, mid, _ := spread(values(pr.phases[pg.name][1][c.name], func(p phase) float64 {
					if kind == "all" {
						return float64(p.perRender(p.own))
					}
					return float64(p.perRender(p.byKind[kind]))
				}))
				fmt.Fprintf(w, "%s\t", ms(time.Duration(mid)))
			}
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	fmt.Fprintln(r.out)
}

// peerTargets prints issue 10's targets, each a median over the rounds.
func (r *report) peerTargets(pr *peerResults, baseline, direct, playwright string) {
	machine := func(p phase) float64 { return float64(p.perRender(p.machine)) }
	rate := func(p phase) float64 { return p.res.rate() }
	p50 := func(p phase) float64 { return float64(p.res.pct(50)) }
	// byPage is a ÷ b on each page, as "HTML 1.23, URL 0.98", and whether
	// every one is ok.
	byPage := func(clients int, a, b string, of func(phase) float64, ok func(float64) bool) (string, bool) {
		var parts []string
		met := true
		for _, pg := range pr.pages {
			v := pr.ratioOf(pg.name, clients, a, b, of)
			met = met && ok(v)
			parts = append(parts, fmt.Sprintf("%s %.2f", pg.name, v))
		}
		return strings.Join(parts, ", "), met
	}
	both := func(clients int, peer string, of func(phase) float64, ok func(float64) bool, what string) string {
		text, met := byPage(clients, pr.contenders[0].name, peer, of, ok)
		return text + ": " + r.verdict(met, what)
	}
	fmt.Fprintln(r.out, "Issue 10's targets (PeekShot ÷ peer, medians over the rounds)")
	cpu := pr.ratio("URL", 1, baseline, machine)
	var more []string // the other numbers of clients that were run
	for _, n := range pr.clients {
		if n != 1 {
			more = append(more, fmt.Sprintf("; %d clients %.2f", n, pr.ratio("URL", n, baseline, machine)))
		}
	}
	fmt.Fprintf(r.out, "  machine CPU per URL render ÷ %s, 1 client   %.2f   (target ≤ 0.50: %s%s)\n",
		baseline, cpu, r.verdict(cpu <= 0.5, "CPU per URL render"), strings.Join(more, ""))
	fmt.Fprintf(r.out, "  renders/s with 2 clients ÷ %s   %s   (target ≥ 2.5)\n", baseline,
		both(2, baseline, rate, func(v float64) bool { return v >= 2.5 }, "renders/s ÷ today's"))
	fmt.Fprintf(r.out, "  renders/s with 2 clients ÷ %s   %s   (target ≥ 2)\n", playwright,
		both(2, playwright, rate, func(v float64) bool { return v >= 2 }, "renders/s ÷ Playwright"))
	fmt.Fprintf(r.out, "  p50 with 1 client ÷ %s   %s   (target ≤ 1.05)\n", direct,
		both(1, direct, p50, func(v float64) bool { return v <= 1.05 }, "overhead over direct chromedp"))
	// The throughput targets measured on the peer that has nothing of
	// PeekShot's, only the browser and the isolation: what the browser
	// allows on this machine, whatever the server around it does.
	ceiling := func(peer string) string {
		text, _ := byPage(2, direct, peer, rate, func(float64) bool { return true })
		return text
	}
	fmt.Fprintf(r.out, "  the same browser and isolation with nothing of PeekShot's (%s), renders/s with 2 clients: ÷ %s %s; ÷ %s %s\n\n",
		direct, baseline, ceiling(baseline), playwright, ceiling(playwright))
}
