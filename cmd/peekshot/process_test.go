package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bt "github.com/peekshot/peekshot/internal/browsertest"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/storetest"
)

// The reliability tests run the real binary, built once per test binary.
var builtBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary.dir != "" {
		os.RemoveAll(builtBinary.dir)
	}
	os.Exit(code)
}

// peekshotBinary builds cmd/peekshot (once) and returns its path.
func peekshotBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath(bt.ChromePath()); err != nil {
		t.Fatalf("Chromium not found at %s: install Chromium: apt-get install chromium", bt.ChromePath())
	}
	builtBinary.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			builtBinary.err = fmt.Errorf("the go tool is needed to build the binary: %w", err)
			return
		}
		if builtBinary.dir, err = os.MkdirTemp("", "peekshot-bin-"); err != nil {
			builtBinary.err = err
			return
		}
		builtBinary.path = filepath.Join(builtBinary.dir, "peekshot")
		builtBinary.out, builtBinary.err = exec.Command(goTool, "build", "-o", builtBinary.path, ".").CombinedOutput()
	})
	if builtBinary.err != nil {
		t.Fatalf("go build: %v\n%s", builtBinary.err, builtBinary.out)
	}
	return builtBinary.path
}

// testSessionSecret is the session secret of every server a test starts
// on one database, so sessions outlive restarts as they do in production.
const testSessionSecret = "reliability-tests-session-secret-0123456789"

// serverProcess is a running `peekshot serve`.
type serverProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	addr   string
	out    *syncBuffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
	tmp    string
}

var listeningJSON = regexp.MustCompile(`"msg":"PeekShot is listening","addr":"([^"]+)"`)

// testDB is the database a test's server processes share: a SQLite file,
// or a fresh PostgreSQL database (url).
type testDB struct {
	path string
	url  string
}

// sqliteDB is a SQLite file in a temporary folder of the test.
func sqliteDB(t *testing.T) testDB {
	return testDB{path: filepath.Join(t.TempDir(), "data", "peekshot.db")}
}

// postgresDB is a fresh PostgreSQL database, dropped after the test.
func postgresDB(t *testing.T) testDB { return testDB{url: storetest.FreshPostgres(t)} }

// eachDB runs a process test on SQLite and on PostgreSQL.
func eachDB(t *testing.T, test func(t *testing.T, db testDB)) {
	t.Run("SQLite", func(t *testing.T) { test(t, sqliteDB(t)) })
	t.Run("PostgreSQL", func(t *testing.T) { test(t, postgresDB(t)) })
}

// env is what points a server process at the database.
func (d testDB) env() []string {
	if d.url != "" {
		return []string{"PEEKSHOT_DATABASE_URL=" + d.url}
	}
	return []string{"PEEKSHOT_DB=" + d.path}
}

// open opens the database as the test's own view of it (closed when the
// test ends).
func (d testDB) open(t *testing.T) store.Store {
	t.Helper()
	if d.url != "" {
		return storetest.OpenPostgres(t, d.url, nil)
	}
	return storetest.OpenSQLite(t, d.path, nil)
}

// startProcess starts the binary on db, on a free loopback port, with its
// temporary files (Chromium's profiles) under tmp, and waits until it
// listens. env adds or overrides variables.
func startProcess(t *testing.T, db testDB, tmp string, env ...string) *serverProcess {
	t.Helper()
	p := launchProcess(t, db, tmp, env...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listeningJSON.FindStringSubmatch(p.out.String()); m != nil {
			p.addr, p.base = m[1], "http://"+m[1]
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("serve stopped before listening: %v\n%s", p.err, p.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within 30 s:\n%s", p.out)
		}
	}
}

// launchProcess starts the binary without waiting for it to listen.
func launchProcess(t *testing.T, db testDB, tmp string, env ...string) *serverProcess {
	t.Helper()
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(peekshotBinary(t), "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + tmp}
	cmd.Env = append(cmd.Env, db.env()...)
	cmd.Env = append(cmd.Env,
		"PEEKSHOT_ADDR=127.0.0.1:0", "PEEKSHOT_CHROME="+bt.ChromePath(),
		"PEEKSHOT_ALLOW_PRIVATE_TARGETS=1", "PEEKSHOT_RATE_LIMIT=1000000", "PEEKSHOT_LOG_FORMAT=json",
		"PEEKSHOT_SESSION_SECRET="+testSessionSecret)
	cmd.Env = append(cmd.Env, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that cleanup can end whatever it left.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{t: t, cmd: cmd, out: out, exited: make(chan struct{}), tmp: tmp}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		killChromiumUnder(tmp)
	})
	return p
}

// kill9 ends the server process alone, as a crash or the OOM killer would,
// and waits for it.
func (p *serverProcess) kill9() {
	p.t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the killed server did not exit")
	}
}

// chromiumUnder lists the live processes of every Chromium whose profile is
// under dir (Chromium's children rewrite their command line with spaces).
func chromiumUnder(dir string) []int {
	want := []byte("--user-data-dir=" + dir + "/")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, want) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue // a zombie is already dead
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func killChromiumUnder(dir string) {
	for _, pid := range chromiumUnder(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// noChromiumLeft waits for every Chromium process of the server to end.
func noChromiumLeft(t *testing.T, tmp string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := chromiumUnder(tmp)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			killChromiumUnder(tmp)
			t.Fatalf("%d Chromium processes outlived their server: %v", len(left), left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webUser is a signed-up user driving the dashboard with its session.
type webUser struct {
	email, password string
	jar             http.CookieJar
	csrf            string
	renderKey       string
	renderKeyID     int64
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)

// client is an HTTP client for one account against one server process.
func (a *webUser) client(tr http.RoundTripper) *http.Client {
	return &http.Client{Jar: a.jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signUpAccount creates an account through the real form.
func signUpAccount(t *testing.T, base, email string) *webUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	a := &webUser{email: email, password: "correct horse battery " + email, jar: jar}
	c := a.client(http.DefaultTransport)
	res, body := mustDo(t, c, "GET", base+"/signup", nil, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sign-up form: %d", res.StatusCode)
	}
	a.csrf = csrfMeta.FindStringSubmatch(body)[1]
	res, _ = mustDo(t, c, "POST", base+"/signup", url.Values{"_csrf": {a.csrf}, "email": {email}, "password": {a.password}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-up: %d", res.StatusCode)
	}
	res, body = mustDo(t, c, "GET", base+"/account/api-keys", nil, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("API Keys tab: %d", res.StatusCode)
	}
	a.csrf = csrfMeta.FindStringSubmatch(body)[1]
	return a
}

var (
	revealedKey = regexp.MustCompile(`data-testid="new-key"[^>]*value="(psk_[0-9A-Za-z]{38})"|value="(psk_[0-9A-Za-z]{38})"[^>]*data-testid="new-key"`)
	newRowID    = regexp.MustCompile(`class="row-new[^"]*"[^>]*data-key-id="(\d+)"`)
)

// parseReveal reads a freshly created key and its id from an htmx reveal.
func parseReveal(body string) (string, int64, bool) {
	m := revealedKey.FindStringSubmatch(body)
	r := newRowID.FindStringSubmatch(body)
	if m == nil || r == nil {
		return "", 0, false
	}
	id, _ := strconv.ParseInt(r[1], 10, 64)
	return m[1] + m[2], id, true
}

// mustDo sends a request and reads the answer, failing the test on a
// transport error.
func mustDo(t *testing.T, c *http.Client, method, url string, form url.Values, headers map[string]string) (*http.Response, string) {
	t.Helper()
	res, body, err := do(c, method, url, form, headers)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res, body
}

func do(c *http.Client, method, target string, form url.Values, headers map[string]string) (*http.Response, string, error) {
	var rd *strings.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(res.Body); err != nil {
		return res, "", err
	}
	return res, b.String(), nil
}
