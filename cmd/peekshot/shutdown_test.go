package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store/sqlite"
)

// TestGracefulShutdown sends SIGTERM to the real binary while renders are in
// flight: the renders finish with their images, new connections are refused
// at once, a render stuck on a page that never loads is cut off when the
// grace period ends, and the process exits 0 within 10 s with its database
// closed cleanly (checkpointed, no WAL left, integrity ok, every answered
// render debited) and no Chromium process left.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel() // mostly waits for the grace period: overlap it with the crash rounds
	var slowHits, hangHits atomic.Int64
	release := make(chan struct{})
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			slowHits.Add(1)
			select { // answers 1.5 s later: the render is in flight meanwhile
			case <-time.After(1500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<!doctype html><body style="background:#0000ff"></body>`)
		case "/hang":
			hangHits.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer func() { close(release); pages.Close() }()

	dir := t.TempDir()
	db := testDB{path: filepath.Join(dir, "data", "peekshot.db")}
	tmp := filepath.Join(dir, "tmp")
	p := startProcess(t, db, tmp, "PEEKSHOT_RENDER_CONCURRENCY=4")
	a := signUpAccount(t, p.base, "shutdown@example.com")
	res, body := mustDo(t, a.client(http.DefaultTransport), "POST", p.base+"/account/api-keys", url.Values{"label": {"shutdown"}},
		map[string]string{"HX-Request": "true", "X-CSRF-Token": a.csrf})
	key, _, ok := parseReveal(body)
	if res.StatusCode != http.StatusOK || !ok {
		t.Fatalf("create key: %d", res.StatusCode)
	}

	type result struct {
		status int
		ctype  string
		left   string
		err    error
	}
	render := func(page string) result {
		req, _ := http.NewRequest("POST", p.base+"/api/v1/screenshots", strings.NewReader(fmt.Sprintf(`{"url": %q, "width": 200, "height": 100}`, pages.URL+page)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", key)
		res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return result{err: err}
		}
		defer res.Body.Close()
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			return result{err: err}
		}
		return result{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), left: res.Header.Get("X-Credits-Remaining")}
	}
	const slow = 3
	results := make([]result, slow)
	var wg sync.WaitGroup
	for i := range slow {
		wg.Go(func() { results[i] = render("/slow") })
	}
	hung := make(chan result, 1)
	go func() { hung <- render("/hang") }()
	// SIGTERM only once every render has reached its page.
	deadline := time.Now().Add(20 * time.Second)
	for slowHits.Load() < slow || hangHits.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the renders never reached their pages (%d slow, %d hang)", slowHits.Load(), hangHits.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused at once (within moments, however busy
	// the machine), and stay refused while the renders still run.
	accepted := 0
	for {
		conn, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			// A connection that reaches the listener as it closes is
			// reset rather than refused: turned away all the same.
			if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("a new connection after SIGTERM failed with %v, want connection refused", err)
			}
			break
		}
		conn.Close()
		accepted++
		if time.Since(sent) > 3*time.Second {
			t.Fatalf("new connections were still accepted 3 s after SIGTERM (%d of them)", accepted)
		}
		time.Sleep(10 * time.Millisecond)
	}
	refusedAfter := time.Since(sent)
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		if conn, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
			conn.Close()
			t.Fatal("a connection was accepted after new connections had been refused")
		}
	}

	wg.Wait()
	finished := time.Since(sent)
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK || r.ctype != "image/png" {
			t.Errorf("in-flight render %d after SIGTERM: %+v, want 200 with its image", i, r)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(10*time.Second - time.Since(sent)):
		t.Fatalf("the server was still running 10 s after SIGTERM\n%s", p.out)
	}
	exitedAfter := time.Since(sent)
	if p.err != nil {
		t.Fatalf("exit after SIGTERM: %v (want status 0)\n%s", p.err, p.out)
	}
	h := <-hung
	if h.err == nil && h.status == http.StatusOK {
		t.Errorf("the render of a page that never loads succeeded: %+v", h)
	}
	t.Logf("SIGTERM: refused new connections after %v, in-flight renders done after %v, exited (status 0) after %v; the stuck render ended with %v %d",
		refusedAfter.Round(time.Millisecond), finished.Round(time.Millisecond), exitedAfter.Round(time.Millisecond), h.err, h.status)
	if !strings.Contains(p.out.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" in the log:\n%s", p.out)
	}
	noChromiumLeft(t, tmp)

	// Closed cleanly: the WAL was checkpointed into the database and removed.
	if fi, err := os.Stat(db.path + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("the WAL holds %d bytes after a clean stop", fi.Size())
	}
	raw, err := sql.Open("sqlite3", sqlite.DSN(db.path, "mode=ro"))
	if err != nil {
		t.Fatal(err)
	}
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q %v", check, err)
	}
	raw.Close()
	st, err := sqlite.Open(context.Background(), db.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByEmail(context.Background(), a.email)
	if err != nil {
		t.Fatal(err)
	}
	if u.Credits != account.SignupCredits-slow {
		t.Errorf("balance %d after %d answered renders", u.Credits, slow)
	}
	if bad, _ := st.LedgerMismatches(context.Background()); len(bad) > 0 {
		t.Errorf("ledger mismatches %v", bad)
	}
	keys, err := st.APIKeys(context.Background(), u.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	// Usage counted in memory was written on the way down.
	if keys[0].RequestCount != slow+1 {
		t.Errorf("request count %d after %d requests: usage was lost at shutdown", keys[0].RequestCount, slow+1)
	}
}
