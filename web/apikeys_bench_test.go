package web

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mattn/go-sqlite3"
	"golang.org/x/crypto/bcrypt"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/sqlite"
)

// queryLog records the queries of every connection opened through a
// countingDriver.
type queryLog struct {
	mu      sync.Mutex
	queries []string
}

func (l *queryLog) add(q string) {
	l.mu.Lock()
	l.queries = append(l.queries, strings.Join(strings.Fields(q), " "))
	l.mu.Unlock()
}

// take returns the queries so far and forgets them.
func (l *queryLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queries
	l.queries = nil
	return q
}

// countingDriver is the SQLite driver with every query logged.
type countingDriver struct {
	sqlite3.SQLiteDriver
	log *queryLog
}

func (d *countingDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{SQLiteConn: c.(*sqlite3.SQLiteConn), log: d.log}, nil
}

// countingConn is a SQLite connection (every method of it) that logs the
// queries it runs.
type countingConn struct {
	*sqlite3.SQLiteConn
	log *queryLog
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.log.add(query)
	return c.SQLiteConn.QueryContext(ctx, query, args)
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.log.add(query)
	return c.SQLiteConn.ExecContext(ctx, query, args)
}

// PrepareContext returns a statement that logs its query each time it runs
// (the store's key lookup runs a prepared statement).
func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.SQLiteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &countingStmt{SQLiteStmt: s.(*sqlite3.SQLiteStmt), query: query, log: c.log}, nil
}

// countingStmt is a prepared SQLite statement that logs each run.
type countingStmt struct {
	*sqlite3.SQLiteStmt
	query string
	log   *queryLog
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.log.add(s.query)
	return s.SQLiteStmt.QueryContext(ctx, args)
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.log.add(s.query)
	return s.SQLiteStmt.ExecContext(ctx, args)
}

var countingDrivers atomic.Int64

// registerCountingDriver registers a new countingDriver and returns its name.
func registerCountingDriver(log *queryLog) string {
	name := fmt.Sprintf("sqlite3-counting-%d", countingDrivers.Add(1))
	sql.Register(name, &countingDriver{log: log})
	return name
}

// keysTab is a signed-in user with n keys and the requests that load their
// API Keys tab, against a server called directly (no network).
type keysTab struct {
	srv    *Server
	store  store.Store
	userID int64
	cookie string
}

// newKeysTab serves the tab from a SQLite store opened with opts.
func newKeysTab(tb testing.TB, n int, opts sqlite.Options) *keysTab {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "peekshot.db"), opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := NewServer(Config{
		SessionSecret: []byte("0123456789abcdef0123456789abcdef-bench"),
		PasswordCost:  bcrypt.MinCost,
	}, st, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	tb.Cleanup(func() {
		hs.Close()
		srv.Close(context.Background())
		st.Close()
	})

	// Sign up through the real forms, for a real session cookie.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) string {
		res, err := client.Get(hs.URL + path)
		if err != nil {
			tb.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			tb.Fatal(err)
		}
		return string(body)
	}
	csrf := pageCSRF(get("/signup"))
	res, err := client.PostForm(hs.URL+"/signup", url.Values{
		"_csrf": {csrf}, "email": {"tab@example.com"}, "password": {"correct horse battery"}, "name": {"Tab"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		tb.Fatalf("sign-up: %d", res.StatusCode)
	}
	u, err := st.UserByEmail(context.Background(), "tab@example.com")
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		key, _ := apikey.Generate()
		if _, err := st.CreateAPIKey(context.Background(), account.NewAPIKey{UserID: u.ID, Label: fmt.Sprintf("Server %d", i+1), Key: key}); err != nil {
			tb.Fatal(err)
		}
	}
	hsURL, _ := url.Parse(hs.URL)
	var cookies []string
	for _, c := range jar.Cookies(hsURL) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	return &keysTab{srv: srv, store: st, userID: u.ID, cookie: strings.Join(cookies, "; ")}
}

// load answers GET /account/api-keys, as a direct load or as htmx's tab
// switch, and returns the response.
func (k *keysTab) load(tb testing.TB, htmx bool) *httptest.ResponseRecorder {
	return k.get(tb, "/account/api-keys", htmx)
}

// BenchmarkAPIKeysTab renders the API Keys tab of a user with 50 keys (the
// most an account may hold) through the whole handler path: session, user,
// the key list, the template and the response. "page" is a direct load
// (the whole Account page), "htmx" a tab switch (the panel only).
func BenchmarkAPIKeysTab(b *testing.B) {
	tab := newKeysTab(b, account.MaxAPIKeys, sqlite.Options{})
	benchPage(b, tab, "/account/api-keys", func(body string) {
		if rows := strings.Count(body, `<tr id="key-`); rows != account.MaxAPIKeys {
			b.Fatalf("%d rows, want %d", rows, account.MaxAPIKeys)
		}
	})
}

// benchPage measures a page of the tab's user, as a direct load ("page":
// the whole Account page) and as htmx's request ("htmx": the panel only),
// after check has looked at what it shows. Beside ns/op it reports the CPU
// per request (see reportCPU).
func benchPage(b *testing.B, tab *keysTab, path string, check func(body string)) {
	for _, htmx := range []bool{false, true} {
		name := "page"
		if htmx {
			name = "htmx"
		}
		b.Run(name, func(b *testing.B) {
			check(tab.get(b, path, htmx).Body.String())
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				tab.get(b, path, htmx)
			}
			reportCPU(b, cpu)
		})
	}
}

// TestAPIKeysTabQueriesDontGrow: the tab reads its keys in one query, their
// health (the client addresses per day) in one more and the keys reported
// leaked (for the banner and health) in a third, whatever their number,
// not one per key.
func TestAPIKeysTabQueriesDontGrow(t *testing.T) {
	counted := func(n int) (total int, keyQueries []string) {
		all, keyQueries, body := tabQueries(t, n, nil)
		if rows := strings.Count(body, `<tr id="key-`); rows != n {
			t.Fatalf("%d rows shown, want %d", rows, n)
		}
		return len(all), keyQueries
	}
	one, _ := counted(1)
	fifty, keyQueries := counted(account.MaxAPIKeys)
	if len(keyQueries) != 3 {
		t.Errorf("the tab ran %d queries on api_keys for 50 keys, want 3 (the keys, their health, their leak reports):\n%s", len(keyQueries), strings.Join(keyQueries, "\n"))
	}
	if fifty != one {
		t.Errorf("the tab ran %d queries with 1 key and %d with 50: the count must not grow with the keys", one, fifty)
	}
}

// tabQueries loads the API Keys tab of a user with n keys, made ready by
// prepare (when not nil), and returns the queries of a load after the
// first (which may save the session), those of them on api_keys, and the
// page.
func tabQueries(t *testing.T, n int, prepare func(*keysTab)) (all, keyQueries []string, body string) {
	t.Helper()
	log := &queryLog{}
	tab := newKeysTab(t, n, sqlite.Options{Driver: registerCountingDriver(log)})
	if prepare != nil {
		prepare(tab)
	}
	tab.load(t, false)
	log.take()
	body = tab.load(t, false).Body.String()
	all = log.take()
	for _, q := range all {
		if strings.Contains(q, "api_keys") {
			keyQueries = append(keyQueries, q)
		}
	}
	return all, keyQueries, body
}
