package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a bin/peekshot serve started for the run, on a database of its
// own in a temporary folder, and a signed-in browser session on it.
type server struct {
	bin, dir, db string
	url          string
	browser      string // the renderer's browser and version, from its start-up log
	cmd          *exec.Cmd
	stderr       *bytes.Buffer
	exited       chan struct{}
	client       *http.Client // keeps the session cookie
	env          []string     // the server's own settings, for the CLI too
}

// database says which database the server runs on, without credentials.
func (s *server) database() string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, "PEEKSHOT_DATABASE_URL="); ok {
			if u, err := url.Parse(v); err == nil {
				return "PostgreSQL " + u.Host + u.Path
			}
			return "PostgreSQL"
		}
	}
	return "SQLite " + s.db
}

// startServer starts bin serve on a free loopback port, rendering with
// chrome (and env, NAME=value), and waits until it answers /healthz.
func startServer(ctx context.Context, bin, chrome string, env ...string) (*server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: run make build first (make load does)", bin)
	}
	dir, err := os.MkdirTemp("", "peekshot-load-")
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, dir: dir, db: filepath.Join(dir, "peekshot.db"), stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = append(os.Environ(),
		"PEEKSHOT_ADDR=127.0.0.1:0",
		"PEEKSHOT_DB="+s.db,
		"PEEKSHOT_CHROME="+chrome,
		"PEEKSHOT_ALLOW_PRIVATE_TARGETS=1",
		"PEEKSHOT_RATE_LIMIT=1000000",
		"PEEKSHOT_RENDER_CONCURRENCY=2",
		"PEEKSHOT_LOG_FORMAT=json",
	)
	s.cmd.Env = append(s.cmd.Env, env...)
	s.env = env
	s.cmd.Stderr = s.stderr
	// The log (a line per request) goes to a file, as it would in
	// production, rather than through a pipe that this program would have
	// to read while it measures.
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	s.cmd.Stdout = logFile
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }() //nolint:errcheck // the exit is reported by stop

	// The JSON log says where the server listens.
	deadline := time.After(60 * time.Second)
	for s.url == "" {
		select {
		case <-s.exited:
			s.stop()
			return nil, fmt.Errorf("%s serve exited: %s", bin, strings.TrimSpace(s.stderr.String()))
		case <-deadline:
			s.stop()
			return nil, errors.New("the server did not start within a minute")
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		log, _ := os.ReadFile(logFile.Name())
		for line := range strings.Lines(string(log)) {
			var entry struct{ Msg, Addr, Path, Version string }
			if json.Unmarshal([]byte(line), &entry) != nil {
				continue
			}
			switch entry.Msg {
			case "PeekShot is listening":
				s.url = "http://" + entry.Addr
			case "renderer browser":
				s.browser = entry.Version + " (" + entry.Path + ")"
			}
		}
	}
	jar, _ := cookiejar.New(nil)
	s.client = &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := s.client.Get(s.url + "/healthz")
	if err != nil {
		s.stop()
		return nil, err
	}
	res.Body.Close()
	return s, nil
}

// stop ends the server as an operator would (SIGTERM) and removes its data.
func (s *server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill() //nolint:errcheck // as above
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// rss is the server's resident memory (VmRSS). Chromium runs in processes
// of its own and is not included.
func (s *server) rss() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		return 0, fmt.Errorf("read the server's memory: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// rssAfter sends n more requests, lets the usage flush run, and reads RSS.
func (s *server) rssAfter(ctx context.Context, req request, conns, n int) (int64, error) {
	res, err := loadCount(ctx, req, conns, n)
	if err != nil {
		return 0, err
	}
	if res.errors > 0 {
		return 0, fmt.Errorf("%d of %d requests failed: %s", res.errors, res.n, res.firstErr)
	}
	time.Sleep(1500 * time.Millisecond)
	return s.rss()
}

// measured runs a phase and notes the CPU time the server and this
// program used during it.
func (s *server) measured(phase func() (result, error)) (result, error) {
	server, client, machine := s.cpu(), processCPU(os.Getpid()), machineCPU()
	res, err := phase()
	res.serverCPU, res.clientCPU = s.cpu()-server, processCPU(os.Getpid())-client
	res.otherCPU = machineCPU() - machine - res.serverCPU - res.clientCPU
	return res, err
}

// cpu is the CPU time the server has used so far (user and system).
func (s *server) cpu() time.Duration {
	return processCPU(s.pid())
}

var (
	csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	keyShown  = regexp.MustCompile(`psk_[0-9A-Za-z]{38}`)
)

// page gets path and returns its body and CSRF token.
func (s *server) page(path string) (string, string, error) {
	res, err := s.client.Get(s.url + path)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return "", "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s: %s", path, res.Status)
	}
	m := csrfField.FindSubmatch(body)
	if m == nil {
		return "", "", fmt.Errorf("GET %s: no CSRF token in the page", path)
	}
	return string(body), string(m[1]), nil
}

// post sends a form with the CSRF token of from, and wants a redirect.
func (s *server) post(from, path string, form url.Values) error {
	_, token, err := s.page(from)
	if err != nil {
		return err
	}
	form.Set("_csrf", token)
	res, err := s.client.PostForm(s.url+path, form)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(res.Body)
		return fmt.Errorf("POST %s: %s\n%.300s", path, res.Status, body)
	}
	return nil
}

// signUpWithKey signs up and creates an API key through the forms, the way
// a person does, and returns the key the page shows once.
func (s *server) signUpWithKey() (string, error) {
	if err := s.post("/signup", "/signup", url.Values{
		// A new account each run: a database given with -database-url
		// may hold the last run's.
		"email": {fmt.Sprintf("load-%d@example.com", time.Now().UnixNano())}, "password": {"load run password"}, "name": {"Load"},
	}); err != nil {
		return "", err
	}
	if err := s.post("/account/api-keys", "/account/api-keys", url.Values{"label": {"load run"}}); err != nil {
		return "", err
	}
	body, _, err := s.page("/account/api-keys")
	if err != nil {
		return "", err
	}
	key := keyShown.FindString(body)
	if key == "" {
		return "", errors.New("the new key is not on the page")
	}
	return key, nil
}

// addCredits gives the account enough credits for the renders: a coupon
// made with the CLI, redeemed through the form.
func (s *server) addCredits(ctx context.Context) error {
	code := fmt.Sprintf("LOAD%d", time.Now().UnixNano())
	cmd := exec.CommandContext(ctx, s.bin, "coupon", "create", "--code", code, "--credits", "100000")
	cmd.Env = append(append(os.Environ(), "PEEKSHOT_DB="+s.db), s.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("coupon create: %w: %s", err, out)
	}
	return s.post("/account/coupons", "/account/coupons/redeem", url.Values{"code": {code}})
}
