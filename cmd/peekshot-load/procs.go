package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What the run reads from /proc: the CPU time of the machine and of each
// process, the process tree of each contender, and its memory.

// machineCPU is the CPU time all processes have used (from /proc/stat).
func machineCPU() time.Duration {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	var busy int64
	for i, f := range strings.Fields(line)[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// statFields are the fields of /proc/PID/stat after the command name.
func statFields(pid int) []string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(stat)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// processCPU reads a process's user and system time from /proc/PID/stat.
func processCPU(pid int) time.Duration {
	return cpuOf(statFields(pid))
}

func cpuOf(f []string) time.Duration {
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// parentOf is a process's parent, or 0.
func parentOf(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procInfo is one process as a sample sees it.
type procInfo struct {
	ppid int
	cpu  time.Duration
}

// allProcesses reads every process's parent and CPU time.
func allProcesses() map[int]procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make(map[int]procInfo, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out[pid] = procInfo{ppid: ppid, cpu: cpuOf(f)}
	}
	return out
}

// descendants returns root and every live process under it.
func descendants(all map[int]procInfo, root int) []int {
	if _, ok := all[root]; !ok {
		return nil
	}
	children := make(map[int][]int)
	for pid, p := range all {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// processKind names what a process of a contender's tree is: the server
// (PeekShot's Go process, node, the direct renderer's Go process), or
// Chromium's browser, renderer, GPU, network service, other utility,
// zygote or crashpad process.
func processKind(pid, root int) string {
	if pid == root {
		return "server"
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "other"
	}
	// Chromium's child processes rewrite their command line as one string
	// of space-separated arguments.
	args := strings.FieldsFunc(string(cmdline), func(r rune) bool { return r == 0 || r == ' ' })
	if len(args) == 0 {
		return "other"
	}
	typ, sub := "", ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--type="); ok {
			typ = v
		}
		if v, ok := strings.CutPrefix(a, "--utility-sub-type="); ok {
			sub = v
		}
	}
	switch {
	case strings.Contains(filepath.Base(args[0]), "crashpad"):
		return "crashpad"
	case typ == "" && strings.Contains(args[0], "chrom"):
		return "browser"
	case typ == "renderer":
		return "renderer"
	case typ == "gpu-process":
		return "gpu"
	case typ == "utility" && strings.Contains(sub, "NetworkService"):
		return "network"
	case typ == "utility":
		return "utility"
	case typ == "zygote":
		return "zygote"
	}
	return "other"
}

// kinds is the order processKind's names are reported in.
var kinds = []string{"server", "browser", "renderer", "gpu", "network", "utility", "zygote", "crashpad", "other"}

// pss is a process's proportional set size: its share of the memory it
// shares with others (Chromium's processes share most of theirs), from
// /proc/PID/smaps_rollup.
func pss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// treeWatch follows a contender's process tree during a phase: the CPU each
// kind of process used (processes that start and end within the phase
// included, up to the last sample before they ended) and the peak of the
// tree's memory.
type treeWatch struct {
	root int
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	first map[int]time.Duration // CPU of each process when first seen
	last  map[int]time.Duration // CPU of each process when last seen
	kind  map[int]string
	peak  int64
}

// sampleEvery is how often a treeWatch samples; memory every fourth time.
const sampleEvery = 100 * time.Millisecond

// watchTree starts following root's tree; processes that exist already
// count from now, those that start later from zero.
func watchTree(root int) *treeWatch {
	w := &treeWatch{root: root, stop: make(chan struct{}), done: make(chan struct{}),
		first: make(map[int]time.Duration), last: make(map[int]time.Duration), kind: make(map[int]string)}
	all := allProcesses()
	for _, pid := range descendants(all, root) {
		w.first[pid] = all[pid].cpu
		w.last[pid] = all[pid].cpu
		w.kind[pid] = processKind(pid, root)
	}
	go w.run()
	return w
}

func (w *treeWatch) run() {
	defer close(w.done)
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			w.sample(true)
			return
		case <-time.After(sampleEvery):
		}
		w.sample(i%4 == 0)
	}
}

func (w *treeWatch) sample(memory bool) {
	all := allProcesses()
	tree := descendants(all, w.root)
	var total int64
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, pid := range tree {
		if _, seen := w.first[pid]; !seen {
			w.first[pid] = 0
			w.kind[pid] = processKind(pid, w.root)
		}
		w.last[pid] = all[pid].cpu
	}
	if memory {
		for _, pid := range tree {
			total += pss(pid)
		}
		w.peak = max(w.peak, total)
	}
}

// end stops the watch and returns the CPU used per kind of process, in all,
// and the peak memory.
func (w *treeWatch) end() (byKind map[string]time.Duration, total time.Duration, peak int64) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	byKind = make(map[string]time.Duration)
	for pid, last := range w.last {
		d := last - w.first[pid]
		byKind[w.kind[pid]] += d
		total += d
	}
	return byKind, total, w.peak
}
