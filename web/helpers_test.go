package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/sqlite"
	"github.com/peekshot/peekshot/store/storetest"
)

// testClock is a settable clock shared by the store and the server.
type testClock = storetest.Clock

// logBuffer collects log output so tests can assert what never appears in it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type testEnv struct {
	t     *testing.T
	store store.Store // what the server uses: the database behind its cache
	db    *storetest.Harness
	// sqlite is the store when the database is SQLite (the default), for
	// tests of what only SQLite has (a file to fill); nil on PostgreSQL.
	sqlite *sqlite.Store
	srv    *Server
	http   *httptest.Server
	clock  *testClock
	logs   *logBuffer
	// lookups counts the key lookups that reached the database: the ones
	// the store's cache did not answer.
	lookups *atomic.Int64
}

// countingStore counts the key lookups that reach the database.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (s *countingStore) APIKeyByHash(ctx context.Context, h apikey.Hash) (account.APIKey, error) {
	s.lookups.Add(1)
	return s.Store.APIKeyByHash(ctx, h)
}

// postgresTests reports whether handler tests run on PostgreSQL
// (PEEKSHOT_TEST_STORE=postgres) rather than SQLite.
func postgresTests() bool { return os.Getenv("PEEKSHOT_TEST_STORE") == "postgres" }

// envSettings are what a test may change about its server.
type envSettings struct {
	cfg      Config
	renderer Renderer
	queries  *queryLog // when set, every query of the store is logged
}

type envOption func(*envSettings)

func withConfig(f func(*Config)) envOption { return func(s *envSettings) { f(&s.cfg) } }

func withRenderer(r Renderer) envOption { return func(s *envSettings) { s.renderer = r } }

// testDatabase opens the database handler tests run on: a SQLite file in a
// temporary folder, or with PEEKSHOT_TEST_STORE=postgres a fresh
// PostgreSQL database (make test runs the handler tests on both).
func testDatabase(t testing.TB, clock *testClock) *storetest.Harness {
	t.Helper()
	if postgresTests() {
		return storetest.Postgres(t, clock)
	}
	return storetest.SQLite(t, clock)
}

func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	clock := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	logs := &logBuffer{}
	env := envSettings{cfg: Config{
		SessionSecret: []byte("0123456789abcdef0123456789abcdef-test"),
		PasswordCost:  bcrypt.MinCost,
		Now:           clock.Now,
	}}
	for _, o := range opts {
		o(&env)
	}
	var db *storetest.Harness
	if env.queries != nil {
		db = openLoggedDatabase(t, clock, env.queries)
	} else {
		db = testDatabase(t, clock)
	}
	counted := &countingStore{Store: db.Store}
	cached := store.NewCached(counted, clock.Now)
	waitLive(t, cached)
	srv, err := NewServer(env.cfg, cached, env.renderer, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkContract(t, srv)) // every API exchange is held to openapi.json
	t.Cleanup(func() {
		hs.Close()
		srv.Close(context.Background())
		cached.Close()
	})
	sq, _ := db.Store.(*sqlite.Store)
	return &testEnv{t: t, store: db.Store, db: db, sqlite: sq, srv: srv, http: hs, clock: clock, logs: logs, lookups: &counted.lookups}
}

// dbContains reports whether needle is stored anywhere in the database:
// in any row of any table, and on SQLite in the bytes of its files too
// (the write-ahead log included), where deleted rows may linger.
func (e *testEnv) dbContains(needle string) bool {
	e.t.Helper()
	if e.sqlite != nil {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			data, _ := os.ReadFile(e.sqlite.Path() + suffix)
			if bytes.Contains(data, []byte(needle)) {
				return true
			}
		}
	}
	listTables := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if e.db.Dialect == "postgres" {
		listTables = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := e.db.Raw.Query(listTables)
	if err != nil {
		e.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			e.t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		rows, err := e.db.Raw.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			e.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				e.t.Fatal(err)
			}
			for _, v := range vals {
				var b []byte
				switch v := v.(type) {
				case []byte:
					b = v
				case string:
					b = []byte(v)
				default:
					b = []byte(fmt.Sprint(v))
				}
				if bytes.Contains(b, []byte(needle)) {
					rows.Close()
					return true
				}
			}
		}
		rows.Close()
	}
	return false
}

// needSQLite marks a test of what only the SQLite store has.
func (e *testEnv) needSQLite() *sqlite.Store {
	e.t.Helper()
	if e.sqlite == nil {
		e.t.Skip("a SQLite-only test (its database file); runs in the SQLite pass of make test")
	}
	return e.sqlite
}

// browser is a cookie-keeping client that does not follow redirects, so
// tests see every 303.
type browser struct {
	t    *testing.T
	env  *testEnv
	c    *http.Client
	csrf string // the token of the last page seen
}

func (e *testEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, env: e, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	body string
}

func (r response) doc(t *testing.T) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	r := response{Response: res, body: string(body)}
	if tok := pageCSRF(r.body); tok != "" {
		b.csrf = tok
	}
	return r
}

func pageCSRF(body string) string {
	d, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		return ""
	}
	v, _ := d.Find(`meta[name="csrf-token"]`).Attr("content")
	if v == "" {
		v, _ = d.Find(`input[name="_csrf"]`).First().Attr("value")
	}
	return v
}

func (b *browser) get(path string, headers ...string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.env.http.URL+path, nil)
	setHeaders(req, headers)
	return b.do(req)
}

// post sends a form with the current CSRF token (unless form sets _csrf).
func (b *browser) post(path string, form url.Values, headers ...string) response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.env.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	setHeaders(req, headers)
	return b.do(req)
}

// htmx sends a request as htmx does: HX-Request and the CSRF header.
func (b *browser) htmx(method, path string, form url.Values) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.env.http.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.csrf)
	return b.do(req)
}

func setHeaders(req *http.Request, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
}

var emailSeq struct {
	sync.Mutex
	n int
}

func uniqueEmail() string {
	emailSeq.Lock()
	defer emailSeq.Unlock()
	emailSeq.n++
	return "user" + strconv.Itoa(emailSeq.n) + "@example.com"
}

// signUp creates an account through the real form and returns the signed-in browser.
func (e *testEnv) signUp() (*browser, string) {
	e.t.Helper()
	b := e.browser()
	email := uniqueEmail()
	b.get("/signup")
	res := b.post("/signup", url.Values{"email": {email}, "password": {"correct horse battery"}, "name": {"Test"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/api-keys" {
		e.t.Fatalf("sign-up: %d %s\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	b.get("/account/api-keys")
	return b, email
}

func expectStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("status %d, want %d; body:\n%.2000s", r.StatusCode, want, r.body)
	}
}

// isFullPage tells a whole page from an htmx fragment.
func isFullPage(body string) bool {
	return strings.Contains(strings.ToLower(body[:min(len(body), 200)]), "<!doctype html>")
}

func fmtSscan(s string, id *int64) (int, error) { return fmt.Sscan(s, id) }

// rowDoc parses a fragment that starts with a table row.
func (r response) rowDoc(t *testing.T) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader("<table><tbody>" + r.body + "</tbody></table>"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// refusedBothWays posts form to path as a plain form and through htmx, checks
// that each is refused with 422, as a whole page and as a fragment, and hands
// each answer to check.
func refusedBothWays(t *testing.T, b *browser, path string, form url.Values, check func(htmx bool, r response)) {
	t.Helper()
	for _, htmx := range []bool{false, true} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		var r response
		if htmx {
			r = b.htmx(http.MethodPost, path, f)
		} else {
			r = b.post(path, f)
		}
		expectStatus(t, r, http.StatusUnprocessableEntity)
		if isFullPage(r.body) == htmx {
			t.Fatalf("htmx=%v: full page = %v", htmx, isFullPage(r.body))
		}
		check(htmx, r)
	}
}
