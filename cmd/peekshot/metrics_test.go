package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

var metricsServed = regexp.MustCompile(`"msg":"Prometheus metrics are served","addr":"([^"]+)"`)

// get answers a GET with an optional API key.
func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestMetricsEndpoint runs the real binary with PEEKSHOT_METRICS_ADDR and
// scrapes it after a few API requests, then the same binary without it:
// that one listens on one port fewer, and none of its ports serves
// metrics.
func TestMetricsEndpoint(t *testing.T) {
	db := sqliteDB(t)
	p := startProcess(t, db, filepath.Join(t.TempDir(), "tmp"), "PEEKSHOT_METRICS_ADDR=127.0.0.1:0")
	m := metricsServed.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("the server doesn't say where its metrics are:\n%s", p.out)
	}
	metricsURL := "http://" + m[1] + "/metrics"

	st := db.open(t)
	u, err := st.CreateUser(context.Background(), account.NewUser{Email: "watcher@example.com", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	k, plain := newCLIKey(t, st, u, "Status page")
	unknown, _ := apikey.Generate()
	for range 3 {
		if code, body := get(t, p.base+"/api/v1/me", plain); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	get(t, p.base+"/api/v1/me", unknown)
	get(t, p.base+"/api/v1/me", "")

	code, text := get(t, metricsURL, "")
	if code != http.StatusOK {
		t.Fatalf("scrape: %d %s", code, text)
	}
	for _, line := range []string{
		`peekshot_http_requests_total{method="GET",route="/api/v1/me",status="200"} 3`,
		`peekshot_http_requests_total{method="GET",route="/api/v1/me",status="401"} 2`,
		`peekshot_api_key_verifications_total{result="accepted"} 3`,
		`peekshot_api_key_verifications_total{result="invalid_api_key"} 1`,
		`peekshot_api_key_verifications_total{result="missing_api_key"} 1`,
		`peekshot_render_queue_depth 0`,
		`peekshot_renders_in_flight 0`,
		`peekshot_chromium_restarts_total 0`,
		`peekshot_credits_spent_total 0`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("no line %q", line)
		}
	}
	// Four lookups by hash (the unknown key's is always a miss, and the
	// first of the others; later ones come from memory while the cache
	// is live).
	hits, misses := sample(t, text, `peekshot_api_key_cache_lookups_total{result="hit"}`), sample(t, text, `peekshot_api_key_cache_lookups_total{result="miss"}`)
	if hits+misses != 4 || misses < 2 {
		t.Errorf("%v hits and %v misses, want 4 lookups with at least 2 misses", hits, misses)
	}
	for _, secret := range []string{plain, unknown, k.Masked(), "watcher", "Status page", p.addr} {
		if strings.Contains(text, secret) {
			t.Errorf("the metrics contain %q", secret)
		}
	}
	if code, _ := get(t, "http://"+m[1]+"/", ""); code != http.StatusNotFound {
		t.Errorf("the metrics listener answers %d at /", code)
	}
	if code, _ := get(t, p.base+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("the dashboard's listener answers %d at /metrics", code)
	}
	withMetrics := listeningPorts(t, p.cmd.Process.Pid)

	off := startProcess(t, db, filepath.Join(t.TempDir(), "tmp"))
	if strings.Contains(off.out.String(), "metrics") {
		t.Fatalf("metrics without PEEKSHOT_METRICS_ADDR:\n%s", off.out)
	}
	ports := listeningPorts(t, off.cmd.Process.Pid)
	if len(ports) != len(withMetrics)-1 {
		t.Fatalf("listening on %v without metrics, %v with", ports, withMetrics)
	}
	for _, port := range ports {
		if _, body := get(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics", ""); strings.Contains(body, "peekshot_") {
			t.Fatalf("port %d serves metrics without PEEKSHOT_METRICS_ADDR", port)
		}
	}

	// The metrics listener stops with the server, which stops cleanly.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not stop after SIGTERM")
	}
	if p.err != nil || !strings.Contains(p.out.String(), `"msg":"stopped"`) {
		t.Fatalf("exit %v\n%s", p.err, p.out)
	}
	if c, err := net.Dial("tcp", m[1]); err == nil {
		c.Close()
		t.Fatal("the metrics listener outlived the server")
	}
}

// sample is the value of one series in a scrape.
func sample(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// listeningPorts lists the TCP ports a process listens on, from /proc: its
// sockets' inodes, and the listening sockets of its network namespace.
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + table)
		if err != nil {
			continue
		}
		lines := bufio.NewScanner(bytes.NewReader(b))
		lines.Scan() // the heading
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: listening
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseInt(hexPort, 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			ports = append(ports, int(port))
		}
	}
	if len(ports) == 0 {
		t.Fatalf("process %d listens on no TCP port", pid)
	}
	return ports
}

// TestMetricsAddrConfig: a PEEKSHOT_METRICS_ADDR that can't be listened on
// stops the start with a message naming it.
func TestMetricsAddrConfig(t *testing.T) {
	for _, bad := range []string{"9090", "localhost", "http://127.0.0.1:9090"} {
		if _, err := loadConfig(env("PEEKSHOT_METRICS_ADDR", bad)); err == nil || !strings.Contains(err.Error(), "PEEKSHOT_METRICS_ADDR must be an address and port like 127.0.0.1:9090") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, good := range []string{"127.0.0.1:9090", ":9090", "[::1]:9090"} {
		if c, err := loadConfig(env("PEEKSHOT_METRICS_ADDR", good)); err != nil || c.MetricsAddr != good {
			t.Errorf("%q: %+v %v", good, c.MetricsAddr, err)
		}
	}
	if c, _ := loadConfig(env()); c.MetricsAddr != "" {
		t.Errorf("metrics on by default at %q", c.MetricsAddr)
	}
}
