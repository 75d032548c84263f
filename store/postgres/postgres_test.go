package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/postgres"
	"github.com/peekshot/peekshot/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RequirePostgres(t) // one line when there is no server, not one per area
	storetest.Run(t, storetest.Postgres)
}

func open(t testing.TB, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rawDB(t testing.TB, u string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestCreatedOnlyOnFirstOpen: Created says whether this Open made the
// schema.
func TestCreatedOnlyOnFirstOpen(t *testing.T) {
	t.Parallel()
	u := storetest.FreshPostgres(t)
	first := open(t, u)
	if !first.Created() {
		t.Fatal("a new database is not reported as created")
	}
	user := storetest.NewUser(t, first)
	first.Close()
	again := open(t, u)
	if again.Created() {
		t.Fatal("an existing database is reported as created")
	}
	if got, err := again.UserByID(t.Context(), user.ID); err != nil || got.Email != user.Email {
		t.Fatalf("user lost across reopen: %+v %v", got, err)
	}
}

// TestConcurrentOpensMigrateOnce: instances that start together on a new
// database take turns (goose's session lock): the schema is made once,
// every instance works, and exactly one says it made it.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	u := storetest.FreshPostgres(t)
	const n = 3
	opened := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			opened[i], errs[i] = postgres.Open(context.Background(), u, postgres.Options{})
		})
	}
	begin := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent opens of a new database took %v", n, time.Since(begin))
	created := 0
	for i, s := range opened {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
		if s.Created() {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d of %d opens say they created the schema, want 1", created, n)
	}
	raw := rawDB(t, u)
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations %v %v", files, err)
	}
	if got := count(t, raw, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`); got != len(files) {
		t.Fatalf("%d migrations recorded, want %d (each once)", got, len(files))
	}
	// Every instance works, and they share one database.
	users := make([]account.User, n)
	for i, s := range opened {
		users[i] = storetest.NewUser(t, s)
	}
	for i, s := range opened {
		for _, u := range users {
			if _, err := s.UserByID(t.Context(), u.ID); err != nil {
				t.Fatalf("instance %d cannot see user %d: %v", i, u.ID, err)
			}
		}
	}
}

// TestOpenUnreachableFailsFast: a server that refuses or never answers is
// reported at start, within seconds, naming the server and never the
// password.
func TestOpenUnreachableFailsFast(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url string
	}{
		{"Refused", "postgres://peekshot:s3cret-pw@" + freePort(t) + "/peekshot?sslmode=disable"},
		{"Silent", "postgres://peekshot:s3cret-pw@" + silentServer(t) + "/peekshot?sslmode=disable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			s, err := postgres.Open(context.Background(), tc.url, postgres.Options{})
			took := time.Since(begin)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("after %v: %v", took, err)
			if took > 10*time.Second {
				t.Fatalf("Open took %v to fail", took)
			}
			host := strings.Split(strings.TrimPrefix(tc.url, "postgres://peekshot:s3cret-pw@"), "/")[0]
			if msg := err.Error(); !strings.Contains(msg, "PostgreSQL") || !strings.Contains(msg, host) {
				t.Fatalf("the message does not say which database failed: %v", err)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("the message shows the password: %v", err)
			}
		})
	}
	t.Run("BadURL", func(t *testing.T) {
		if _, err := postgres.Open(context.Background(), "postgres://[::1", postgres.Options{}); err == nil {
			t.Fatal("Open of a malformed URL succeeded")
		}
	})
}

// freePort is a loopback address on which nothing listens.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer is a loopback address that accepts connections and never
// says a word, as a hung server or a black-holing network would.
func silentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// proxy stands between a store and the PostgreSQL server, so a test can
// take the server away from the store (as a network or server failure
// would) and give it back.
type proxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.up("127.0.0.1:0")
	t.Cleanup(p.down)
	return p
}

// up listens (again) at addr.
func (p *proxy) up(addr string) {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c) || !p.track(s) {
		c.Close()
		s.Close()
		return
	}
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// down stops listening and cuts every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// via is u with its server replaced by addr.
func via(t testing.TB, u, addr string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	parsed.Host = addr
	return parsed.String()
}

// unavailable is every kind of use case, for checking what each answers.
func unavailable(s store.Store, u account.User, k account.APIKey, plain string) []struct {
	name string
	do   func(ctx context.Context) error
} {
	return []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
		{"UserByID", func(ctx context.Context) error { _, err := s.UserByID(ctx, u.ID); return err }},
		{"EmailAndCredits", func(ctx context.Context) error { _, _, err := s.EmailAndCredits(ctx, u.ID); return err }},
		{"APIKeyByHash", func(ctx context.Context) error { _, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); return err }},
		{"APIKeys", func(ctx context.Context) error { _, err := s.APIKeys(ctx, u.ID); return err }},
		{"CreateUser", func(ctx context.Context) error {
			_, err := s.CreateUser(ctx, account.NewUser{Email: "while-down@example.com", PasswordHash: "h"})
			return err
		}},
		{"SetAPIKeyActive", func(ctx context.Context) error { _, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false); return err }},
		{"AdmitRender", func(ctx context.Context) error {
			_, err := s.AdmitRender(ctx, account.RenderAdmission{UserID: u.ID, KeyID: k.ID, RatePerMinute: 60})
			return err
		}},
		{"AdmitLoginAttempt", func(ctx context.Context) error {
			_, err := s.AdmitLoginAttempt(ctx, u.Email, time.Now().Add(-time.Minute), 10)
			return err
		}},
		{"RedeemCoupon", func(ctx context.Context) error { _, _, err := s.RedeemCoupon(ctx, u.ID, "ANY"); return err }},
		{"SessionByID", func(ctx context.Context) error {
			_, err := s.SessionByID(ctx, account.SessionID("unknown"))
			return err
		}},
		{"RecordAPIKeyUsage", func(ctx context.Context) error {
			return s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: time.Now(), Requests: 1, Accepted: 1, FirstUsed: time.Now(), LastUsed: time.Now()}})
		}},
		{"Sweep", func(ctx context.Context) error { return s.Sweep(ctx) }},
	}
}

// checkUnavailable requires every use case to answer ErrUnavailable, soon.
func checkUnavailable(t *testing.T, s store.Store, u account.User, k account.APIKey, plain string) {
	t.Helper()
	for _, op := range unavailable(s, u, k, plain) {
		t.Run(op.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			begin := time.Now()
			err := op.do(ctx)
			if !errors.Is(err, account.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if took := time.Since(begin); took > 10*time.Second {
				t.Fatalf("answered after %v", took)
			}
		})
	}
}

// TestDatabaseGoesAway: while the server can't be reached every use case
// answers ErrUnavailable (never a wrong answer, and never a cached one:
// the cache is bypassed since its feed is down), and once it is back the
// same store works again without being reopened.
func TestDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	direct := storetest.FreshPostgres(t)
	target, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, target.Host)
	clk := storetest.NewClock(storetest.Start)
	h := &storetest.Harness{Store: storetest.OpenPostgres(t, via(t, direct, p.addr), clk), Clock: clk, Dialect: "postgres",
		Raw: rawDB(t, direct), Again: func() store.Store { return storetest.OpenPostgres(t, direct, clk) }}
	c, feed := storetest.Cache(t, h, h.Store)
	u := storetest.NewUser(t, c)
	k, plain := storetest.NewKey(t, c, u.ID, "")
	if _, err := c.APIKeyByHash(t.Context(), apikey.HashOf(plain)); err != nil {
		t.Fatal(err)
	}

	addr := p.addr
	p.down()
	latency := feed.WaitLive(t, false, storetest.CrossProcessLimit)
	t.Logf("the feed went down %v after the server", latency)
	if c.Live() {
		t.Fatal("the cache is trusted while its feed is down")
	}
	t.Run("Unavailable", func(t *testing.T) { checkUnavailable(t, c, u, k, plain) })
	if lives := feed.Lives(); lives[len(lives)-1] {
		t.Fatal("the feed came back while the server was away")
	}

	p.up(addr)
	latency = feed.WaitLive(t, true, 10*time.Second)
	t.Logf("the feed came back %v after the server", latency)
	t.Run("Recovers", func(t *testing.T) {
		ctx := t.Context()
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
		if err != nil || got.ID != k.ID {
			t.Fatalf("%+v %v", got, err)
		}
		storetest.NewUser(t, c)
		// And the cache is kept in step again.
		if _, err := h.Again().SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
			t.Fatal(err)
		}
		d := feed.WaitFor(t, storetest.CrossProcessLimit, "a change after the recovery", func(_ []bool, changes []store.Change) bool {
			for _, ch := range changes {
				if ch.KeyID == k.ID {
					return true
				}
			}
			return false
		})
		t.Logf("a change made elsewhere arrived %v after it was made", d)
		if got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || got.Active {
			t.Fatalf("the cache serves a deactivated key: %+v %v", got, err)
		}
	})
}

// TestDatabaseDropped: a database that no longer exists (dropped, with its
// connections) answers ErrUnavailable, not an unclassified error.
func TestDatabaseDropped(t *testing.T) {
	t.Parallel()
	storetest.RequirePostgres(t)
	admin := rawDB(t, storetest.PostgresURL())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "peekshot_test_dropped_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
	parsed, err := url.Parse(storetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	parsed.Path = "/" + name
	s := open(t, parsed.String())
	u := storetest.NewUser(t, s)
	k, plain := storetest.NewKey(t, s, u.ID, "")
	if _, err := admin.Exec(`DROP DATABASE ` + name + ` WITH (FORCE)`); err != nil {
		t.Fatal(err)
	}
	checkUnavailable(t, s, u, k, plain)
}

// TestListenerKilled: when the connection that listens for changes dies,
// Watch reports live(false) and the cache is bypassed until the listener
// is back and hears again (live(true)); then changes made elsewhere reach
// it as before.
func TestListenerKilled(t *testing.T) {
	t.Parallel()
	h := storetest.Postgres(t, storetest.NewClock(storetest.Start))
	ctx := t.Context()
	c, feed := storetest.Cache(t, h, h.Store)
	other := h.Again()
	u := storetest.NewUser(t, h.Store)
	k, plain := storetest.NewKey(t, h.Store, u.ID, "before")
	read := func(t *testing.T) account.APIKey {
		t.Helper()
		got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	read(t)

	var pid int
	if err := h.Raw.QueryRow(`SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen%' AND pid <> pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatalf("the listening backend: %v", err)
	}
	release := feed.Hold() // the feed stays down until the checks are done
	defer release()
	if _, err := h.Raw.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	latency := feed.WaitLive(t, false, storetest.CrossProcessLimit)
	t.Logf("live(false) %v after the listener's backend was terminated", latency)
	t.Run("CacheBypassed", func(t *testing.T) {
		if c.Live() {
			t.Fatal("the cache is trusted while its feed is down")
		}
		// Changes made meanwhile announce nothing anyone hears; every
		// read goes to the database and sees them.
		for i, label := range []string{"during 1", "during 2"} {
			if err := h.Exec(`UPDATE api_keys SET label = ? WHERE id = ?`, label, k.ID); err != nil {
				t.Fatal(err)
			}
			if got := read(t); got.Label != label {
				t.Fatalf("read %d while down: label %q, want %q (served from memory)", i, got.Label, label)
			}
		}
		if _, err := other.SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
			t.Fatal(err)
		}
		if got := read(t); got.Active {
			t.Fatal("a key deactivated elsewhere while the feed was down is served")
		}
	})
	release()
	latency = feed.WaitLive(t, true, 10*time.Second)
	t.Logf("live(true) %v after the hold was released", latency)
	if n := count(t, h.Raw, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen%' AND pid <> $1`, pid); n != 1 {
		t.Fatalf("%d new listening backends, want 1", n)
	}
	t.Run("CachedAgain", func(t *testing.T) {
		storetest.FromMemory(t, feed, func() any { return read(t).Label }, func(try int) {
			if err := h.Exec(`UPDATE api_keys SET label = ? WHERE id = ?`, fmt.Sprintf("after %d", try), k.ID); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("InStepAgain", func(t *testing.T) {
		if _, err := other.SetAPIKeyActive(ctx, u.ID, k.ID, true); err != nil {
			t.Fatal(err)
		}
		d := storetest.CrossProcessLimit
		begin := time.Now()
		for !read(t).Active {
			if time.Since(begin) > d {
				t.Fatalf("a change made elsewhere after the recovery: not within %v", d)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("a change made elsewhere after the recovery reached the cache in %v", time.Since(begin))
	})
}
