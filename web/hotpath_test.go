package web

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store/postgres"
	"github.com/peekshot/peekshot/store/sqlite"
	"github.com/peekshot/peekshot/store/storetest"
)

// pgQueryLog is a pgx tracer that logs every query but the store's own
// heartbeats (which keep its cache honest, not serve requests).
type pgQueryLog struct{ log *queryLog }

func (p pgQueryLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(data.SQL, "pg_notify") {
		p.log.add(data.SQL)
	}
	return ctx
}

func (pgQueryLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// withQueryLog makes the test's database log every query the server's
// store makes, on SQLite and PostgreSQL alike.
func withQueryLog(log *queryLog) envOption {
	return func(s *envSettings) { s.queries = log }
}

// openLoggedDatabase opens the test database with every query logged.
func openLoggedDatabase(t testing.TB, clock *testClock, log *queryLog) *storetest.Harness {
	t.Helper()
	ctx := context.Background()
	if postgresTests() {
		u := storetest.FreshPostgres(t)
		s, err := postgres.Open(ctx, u, postgres.Options{Now: clock.Now, Tracer: pgQueryLog{log}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		raw, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		return &storetest.Harness{Store: s, Clock: clock, Raw: raw, Dialect: "postgres"}
	}
	h := storetest.SQLite(t, clock)
	path := h.Store.(*sqlite.Store).Path()
	s, err := sqlite.Open(ctx, path, sqlite.Options{Now: clock.Now, Driver: registerCountingDriver(log)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h.Store = s
	return h
}

// The API's hot path makes no database round trip: after a key's first
// request, GET /api/v1/me is answered from the store's cache, on either
// database (PostgreSQL included, where a round trip costs the most).
func TestAPIHotPathIsCached(t *testing.T) {
	log := &queryLog{}
	e := newTestEnv(t, withQueryLog(log), withConfig(func(c *Config) { c.UsageFlushInterval = time.Hour }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "quiet")
	log.take()
	expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
	// The log sees the key lookup of the key's first request, so it would
	// see any other.
	if !slices.ContainsFunc(log.take(), func(q string) bool { return strings.Contains(q, "WHERE key_hash = ") }) {
		t.Fatal("the key's first request made no key lookup that the query log saw")
	}
	time.Sleep(3 * pollSettle) // let the change feed deliver what the sign-up wrote
	log.take()
	const n = 50
	for range n {
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
	}
	var requestQueries []string
	for _, q := range log.take() {
		// The SQLite feed polls its table of changes in the background.
		if !strings.Contains(q, "FROM changes") {
			requestQueries = append(requestQueries, q)
		}
	}
	if len(requestQueries) > 0 {
		t.Fatalf("%d API requests made %d database queries, want none:\n%s", n, len(requestQueries), strings.Join(requestQueries, "\n"))
	}
	// Their usage is written by the next flush, in one batch.
	if err := e.srv.flushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys := userKeys(t, e, email); keys[0].RequestCount != n+1 {
		t.Fatalf("flushed request count %d, want %d", keys[0].RequestCount, n+1)
	}
}

// pollSettle is the longest a change takes to reach a store's cache from
// the database (SQLite's poll; PostgreSQL's notifications are faster).
const pollSettle = 100 * time.Millisecond

// TestKeyChangesApplyToTheNextRequest: with the key cached, every change of
// it is seen by the very next API request.
func TestKeyChangesApplyToTheNextRequest(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	me := func(key string) response { return e.apiCall("GET", "/api/v1/me", key, "") }
	warm := func(t *testing.T, key string) {
		t.Helper()
		expectStatus(t, me(key), http.StatusOK)
		before := e.lookups.Load()
		expectStatus(t, me(key), http.StatusOK)
		if e.lookups.Load() != before {
			t.Fatal("the key is not cached after a request: this test needs it cached")
		}
	}
	path := func(id int64) string { return "/account/api-keys/" + strconv.Itoa(int(id)) }

	t.Run("Deactivate", func(t *testing.T) {
		key, id := createKeyHTMX(t, b, "deactivated")
		warm(t, key)
		expectStatus(t, b.htmx("POST", path(id)+"/deactivate", url.Values{}), http.StatusOK)
		expectAPIError(t, me(key), http.StatusForbidden, "api_key_inactive")
		t.Run("Activate", func(t *testing.T) {
			expectStatus(t, b.htmx("POST", path(id)+"/activate", url.Values{}), http.StatusOK)
			expectStatus(t, me(key), http.StatusOK)
		})
	})
	t.Run("DeactivateWithoutJavaScript", func(t *testing.T) {
		key, id := createKeyHTMX(t, b, "form post")
		warm(t, key)
		expectStatus(t, b.post(path(id)+"/deactivate", url.Values{}), http.StatusSeeOther)
		expectAPIError(t, me(key), http.StatusForbidden, "api_key_inactive")
	})
	t.Run("RotateNow", func(t *testing.T) {
		key, id := createKeyHTMX(t, b, "rotated")
		warm(t, key)
		expectStatus(t, b.htmx("POST", path(id)+"/rotate", url.Values{"grace": {"now"}}), http.StatusOK)
		expectAPIError(t, me(key), http.StatusUnauthorized, "api_key_expired")
	})
	t.Run("GracePeriodEnds", func(t *testing.T) {
		key, id := createKeyHTMX(t, b, "graceful")
		expectStatus(t, b.htmx("POST", path(id)+"/rotate", url.Values{"grace": {"1h"}}), http.StatusOK)
		// Cached a moment before the retirement, still cached after it.
		e.clock.Add(time.Hour - 10*time.Second)
		warm(t, key)
		e.clock.Add(10 * time.Second)
		before := e.lookups.Load()
		expectAPIError(t, me(key), http.StatusUnauthorized, "api_key_expired")
		if e.lookups.Load() != before {
			t.Fatal("the key left the cache; this test needs it cached")
		}
	})
	t.Run("Delete", func(t *testing.T) {
		key, id := createKeyHTMX(t, b, "deleted")
		warm(t, key)
		expectStatus(t, b.htmx("DELETE", path(id), nil), http.StatusOK)
		expectAPIError(t, me(key), http.StatusUnauthorized, "invalid_api_key")
	})
	t.Run("DeleteAccount", func(t *testing.T) {
		doomed, _ := e.signUp()
		key, _ := createKeyHTMX(t, doomed, "doomed")
		warm(t, key)
		expectStatus(t, doomed.post("/account/delete", url.Values{"password": {"correct horse battery"}}), http.StatusSeeOther)
		expectAPIError(t, me(key), http.StatusUnauthorized, "invalid_api_key")
	})
	t.Run("UnknownKeysAreNotCached", func(t *testing.T) {
		k, _ := apikey.Generate()
		before := e.lookups.Load()
		for range 5 {
			expectAPIError(t, me(k), http.StatusUnauthorized, "invalid_api_key")
		}
		if n := e.lookups.Load() - before; n != 5 {
			t.Fatalf("an unknown key was looked up %d times in 5 requests: it must never be cached", n)
		}
	})
}

// TestKeyChangeRacingRequests deactivates and reactivates a key while other
// requests use it: whatever the interleaving, the first request sent after
// the change has been answered sees it.
func TestKeyChangeRacingRequests(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	key, id := createKeyHTMX(t, b, "raced")
	path := "/account/api-keys/" + strconv.Itoa(int(id))

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				e.apiCall("GET", "/api/v1/me", key, "")
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for i := range 20 {
		expectStatus(t, b.htmx("POST", path+"/deactivate", url.Values{}), http.StatusOK)
		if r := e.apiCall("GET", "/api/v1/me", key, ""); r.StatusCode != http.StatusForbidden {
			t.Fatalf("round %d: %d after deactivation, want 403", i, r.StatusCode)
		}
		expectStatus(t, b.htmx("POST", path+"/activate", url.Values{}), http.StatusOK)
		if r := e.apiCall("GET", "/api/v1/me", key, ""); r.StatusCode != http.StatusOK {
			t.Fatalf("round %d: %d after activation, want 200", i, r.StatusCode)
		}
	}
}
