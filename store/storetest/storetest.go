// Package storetest is the conformance suite of the store contract, which
// every implementation runs (Run), and the helpers that give a test a real,
// fresh database of either kind: a SQLite file in a temporary folder, or a
// new PostgreSQL database created for the test and dropped after it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for raw checks

	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/postgres"
	"github.com/peekshot/peekshot/store/sqlite"
	"github.com/peekshot/peekshot/store/sqlstore"
)

// Clock is a settable clock shared by a store and its test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock is a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Harness is one fresh database for a test: its store, and what the test
// needs besides the contract.
type Harness struct {
	Store store.Store
	Clock *Clock
	// Again opens another store on the same database, as another process
	// (a second server, the command line) would.
	Again func() store.Store
	// Raw is the database without the store, for what the contract does
	// not show (constraints, what is stored). Its queries take ?
	// placeholders (see Exec and Int).
	Raw *sql.DB
	// Dialect names the database: "sqlite" or "postgres".
	Dialect string
}

// Exec runs one statement on Raw.
func (h *Harness) Exec(query string, args ...any) error {
	_, err := h.Raw.Exec(h.rebind(query), args...)
	return err
}

// Int runs a query of one integer on Raw.
func (h *Harness) Int(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := h.Raw.QueryRow(h.rebind(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (h *Harness) rebind(query string) string {
	if h.Dialect == "postgres" {
		return sqlstore.PlaceholdersNumbered(query)
	}
	return query
}

// An Opener makes a Harness on a fresh database.
type Opener func(t testing.TB, clk *Clock) *Harness

// SQLite is an Opener of a SQLite file in a temporary folder.
func SQLite(t testing.TB, clk *Clock) *Harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peekshot.db")
	s := OpenSQLite(t, path, clk)
	raw, err := sql.Open("sqlite3", sqlite.DSN(path, "_busy_timeout=10000&_foreign_keys=on"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &Harness{Store: s, Clock: clk, Raw: raw, Dialect: "sqlite",
		Again: func() store.Store { return OpenSQLite(t, path, clk) }}
}

// OpenSQLite opens the SQLite store at path on clk (nil: the real clock),
// closed when the test ends.
func OpenSQLite(t testing.TB, path string, clk *Clock) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Now: now(clk)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Postgres is an Opener of a new PostgreSQL database (see FreshPostgres).
func Postgres(t testing.TB, clk *Clock) *Harness {
	t.Helper()
	u := FreshPostgres(t)
	s := OpenPostgres(t, u, clk)
	raw, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(2)
	t.Cleanup(func() { raw.Close() })
	return &Harness{Store: s, Clock: clk, Raw: raw, Dialect: "postgres",
		Again: func() store.Store { return OpenPostgres(t, u, clk) }}
}

// PostgresConns bounds each test store's pool. The server's connections
// (100 by default) are shared by every test running on it, of this
// package and others; a handful per store still races as many
// transactions as the tests need.
const PostgresConns = 4

// OpenPostgres opens the PostgreSQL store at url on clk (nil: the real
// clock), with PostgresConns connections, closed when the test ends.
func OpenPostgres(t testing.TB, url string, clk *Clock) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{Now: now(clk), MaxConns: PostgresConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func now(clk *Clock) func() time.Time {
	if clk == nil {
		return nil
	}
	return clk.Now
}

// DefaultPostgresURL is the server the PostgreSQL tests use unless
// PEEKSHOT_TEST_DATABASE_URL names another: the local one, as the
// project's machines run it.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresURL is the server for PostgreSQL tests: an administrative
// connection, in which each test creates a database of its own.
func PostgresURL() string {
	if u := os.Getenv("PEEKSHOT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// RequirePostgres stops the test when no PostgreSQL server answers: it is
// skipped with one line saying how to run it, or, when
// PEEKSHOT_TEST_POSTGRES=required (CI), it fails.
func RequirePostgres(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		db, err := sql.Open("pgx", PostgresURL())
		if err != nil {
			reachErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reachErr = db.PingContext(ctx)
	})
	if reachErr == nil {
		return
	}
	msg := fmt.Sprintf("PostgreSQL is not reachable at %s (%v): start it (pg_ctlcluster 15 main start, or apt-get install postgresql) or set PEEKSHOT_TEST_DATABASE_URL", redact(PostgresURL()), reachErr)
	if os.Getenv("PEEKSHOT_TEST_POSTGRES") == "required" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// FreshPostgres creates an empty database for the test and returns its
// URL; the database is dropped when the test ends.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	RequirePostgres(t)
	admin, err := sql.Open("pgx", PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "peekshot_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	// A test database need not survive a crash of the server: commits
	// that don't wait for the disk make the suite several times faster,
	// and change nothing of what a transaction sees or locks.
	if _, err := admin.Exec(`ALTER DATABASE ` + name + ` SET synchronous_commit = off`); err != nil {
		t.Fatalf("configure test database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", PostgresURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec(`DROP DATABASE ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(the URL in PEEKSHOT_TEST_DATABASE_URL)"
	}
	return u.Redacted()
}

// Each names the openers of both databases, for tests that run on each.
var Each = []struct {
	Name string
	Open Opener
}{{"SQLite", SQLite}, {"PostgreSQL", Postgres}}
