package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/sqlite"
	"github.com/peekshot/peekshot/store/storetest"
)

func TestConformance(t *testing.T) { storetest.Run(t, storetest.SQLite) }

// rawDB opens a file without the store, for what the contract does not
// show.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", sqlite.DSN(path, "_busy_timeout=10000"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data", "peekshot.db") // the folder is made too
	s := open(t, path)
	if !s.Created() {
		t.Fatal("a new database is not reported as created")
	}
	u := storetest.NewUser(t, s)
	k, plain := storetest.NewKey(t, s, u.ID, "kept")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if s.Created() {
		t.Fatal("an existing database is reported as created")
	}
	if got, err := s.UserByID(ctx, u.ID); err != nil || got.Email != u.Email {
		t.Fatalf("user lost across reopen: %+v %v", got, err)
	}
	if got, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || got.ID != k.ID {
		t.Fatalf("key lost across reopen: %+v %v", got, err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		if fi, _ := os.Stat(path + "-wal"); fi.Size() != 0 {
			t.Logf("WAL of %d bytes while open", fi.Size())
		}
	}
}

// TestPathWithURICharacters: a folder whose name holds ?, # or % (a test's
// temporary folder of a repeated subtest does) opens exactly that file —
// unescaped, the DSN cut the path at the # and opened another database.
func TestPathWithURICharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a#b?c%41d")
	path := filepath.Join(dir, "peekshot.db")
	s := open(t, path)
	u := storetest.NewUser(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("nothing was made in %s (%v): the database went elsewhere", dir, err)
	}
	s = open(t, path)
	defer s.Close()
	if s.Created() {
		t.Fatal("the database at that path was made again: the first one went elsewhere")
	}
	if got, err := s.UserByID(t.Context(), u.ID); err != nil || got.Email != u.Email {
		t.Fatalf("user not found at that path: %+v %v", got, err)
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "peekshot.db")
	s := open(t, path)
	defer s.Close()
	raw := rawDB(t, path)
	t.Run("WAL", func(t *testing.T) {
		// The journal mode is the file's: the store set it.
		var mode string
		if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
		}
	})
	t.Run("ForeignKeys", func(t *testing.T) {
		// foreign_keys belongs to a connection: the store's must refuse an
		// orphan and cascade a deletion.
		if _, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: 424242, Key: storetest.MustKey(t)}); err == nil {
			t.Fatal("a key of no user was stored: foreign keys are off")
		}
		u := storetest.NewUser(t, s)
		storetest.NewKey(t, s, u.ID, "")
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM api_keys WHERE user_id = ?`, u.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d keys outlived their user (%v): no cascade", n, err)
		}
	})
}

// tracer is the sqlite3 driver, recording every query it is given.
type tracer struct {
	sqlite3.SQLiteDriver
	mu      sync.Mutex
	queries []string
}

func (d *tracer) Open(name string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(name)
	if err != nil {
		return nil, err
	}
	return &tracedConn{SQLiteConn: c.(*sqlite3.SQLiteConn), d: d}, nil
}

func (d *tracer) record(q string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queries = append(d.queries, q)
}

func (d *tracer) find(substr string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, q := range d.queries {
		if strings.Contains(q, substr) {
			out = append(out, q)
		}
	}
	return out
}

type tracedConn struct {
	*sqlite3.SQLiteConn
	d *tracer
}

func (c *tracedConn) Prepare(q string) (driver.Stmt, error) {
	c.d.record(q)
	return c.SQLiteConn.Prepare(q)
}

func (c *tracedConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.d.record(q)
	return c.SQLiteConn.PrepareContext(ctx, q)
}

func (c *tracedConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.d.record(q)
	return c.SQLiteConn.QueryContext(ctx, q, args)
}

func (c *tracedConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.d.record(q)
	return c.SQLiteConn.ExecContext(ctx, q, args)
}

var registerTracer = sync.OnceValue(func() *tracer {
	d := &tracer{}
	sql.Register("sqlite3-traced", d)
	return d
})

// TestAPIKeyByHashUsesCoveringIndex: API authentication is answered from
// the covering index alone; a change that made it read the table again
// would double its cost. The query checked is the one the store sends.
func TestAPIKeyByHashUsesCoveringIndex(t *testing.T) {
	t.Parallel()
	tr := registerTracer()
	path := filepath.Join(t.TempDir(), "peekshot.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{Driver: "sqlite3-traced"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := storetest.NewUser(t, s)
	_, plain := storetest.NewKey(t, s, u.ID, "")
	hash := apikey.HashOf(plain)
	if _, err := s.APIKeyByHash(t.Context(), hash); err != nil {
		t.Fatal(err)
	}
	var lookup string
	for _, q := range tr.find("key_hash = ?") {
		if strings.HasPrefix(strings.TrimSpace(q), "SELECT") && !strings.Contains(q, "sqlite_master") {
			lookup = q
		}
	}
	if lookup == "" {
		t.Fatal("APIKeyByHash sent no SELECT by key_hash")
	}
	rows, err := rawDB(t, path).Query(`EXPLAIN QUERY PLAN `+lookup, hash[:])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "\n"
	}
	if !strings.Contains(plan, "USING COVERING INDEX api_keys_auth") {
		t.Fatalf("%s\nplan:\n%s", lookup, plan)
	}
}

// TestNothingInClearOnDisk: no plaintext key, session id or reveal token in
// the database file or its WAL, neither while open nor once closed.
func TestNothingInClearOnDisk(t *testing.T) {
	t.Parallel()
	h := storetest.SQLite(t, storetest.NewClock(storetest.Start))
	secrets := storetest.StoreSecrets(t, h)
	path := h.Store.(*sqlite.Store).Path()
	check := func(t *testing.T) {
		t.Helper()
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil && (suffix == "" || !errors.Is(err, os.ErrNotExist)) {
				t.Fatal(err)
			}
			if found := secrets.Find(b); found != nil {
				t.Fatalf("%q found in %s", found, path+suffix)
			}
		}
	}
	t.Run("Open", check)
	if err := h.Store.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("Closed", check)
}

// TestChangesSwept: the records of changes other processes poll for are
// kept long enough for any of them, then swept.
func TestChangesSwept(t *testing.T) {
	t.Parallel()
	h := storetest.SQLite(t, storetest.NewClock(storetest.Start))
	u := storetest.NewUser(t, h.Store)
	k, _ := storetest.NewKey(t, h.Store, u.ID, "")
	if _, err := h.Store.SetAPIKeyActive(t.Context(), u.ID, k.ID, false); err != nil {
		t.Fatal(err)
	}
	before := h.Int(t, `SELECT count(*) FROM changes`)
	if before == 0 {
		t.Fatal("a deactivation left no change record")
	}
	h.Clock.Add(time.Minute)
	if err := h.Store.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := h.Int(t, `SELECT count(*) FROM changes`); n != before {
		t.Fatalf("a sweep a minute later took %d of %d change records", before-n, before)
	}
	h.Clock.Add(10 * time.Minute)
	if err := h.Store.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := h.Int(t, `SELECT count(*) FROM changes`); n != 0 {
		t.Fatalf("%d old change records kept", n)
	}
	// A change after the sweep is still seen by a watcher (seq goes on).
	f := storetest.Watching(t, h.Again())
	if _, err := h.Store.SetAPIKeyActive(t.Context(), u.ID, k.ID, true); err != nil {
		t.Fatal(err)
	}
	f.WaitFor(t, storetest.CrossProcessLimit, "a change after a sweep", func(_ []bool, changes []store.Change) bool {
		return len(changes) > 0
	})
}

// TestAPIKeyIDTableStaysEmpty: ids are drawn from api_key_ids, whose
// high-water mark is all it keeps.
func TestAPIKeyIDTableStaysEmpty(t *testing.T) {
	t.Parallel()
	h := storetest.SQLite(t, storetest.NewClock(storetest.Start))
	u := storetest.NewUser(t, h.Store)
	for range 3 {
		storetest.NewKey(t, h.Store, u.ID, "")
	}
	if n := h.Int(t, `SELECT count(*) FROM api_key_ids`); n != 0 {
		t.Fatalf("the id table holds %d rows; it should stay empty", n)
	}
}

// fillUntilFull repeats op with a fresh n until it fails, and requires the
// failure to be ErrStorageFull; it returns the n that failed.
func fillUntilFull(t *testing.T, what string, op func(n int) error) int {
	t.Helper()
	for n := range 5000 {
		err := op(n)
		if err == nil {
			continue
		}
		if !errors.Is(err, account.ErrStorageFull) {
			t.Fatalf("%s #%d failed with %v, want ErrStorageFull", what, n, err)
		}
		return n
	}
	t.Fatalf("%s never filled the capped database", what)
	return 0
}

// counts is a summary of every table a use case writes.
type counts struct {
	users, ledger, keys, redemptions, sessions, couponUses, attempts, reservations, reveals, coupons int64
}

func countAll(t *testing.T, h *storetest.Harness) counts {
	t.Helper()
	var c counts
	err := h.Raw.QueryRow(`SELECT
		(SELECT count(*) FROM users), (SELECT count(*) FROM credit_ledger),
		(SELECT count(*) FROM api_keys), (SELECT count(*) FROM coupon_redemptions),
		(SELECT count(*) FROM sessions), (SELECT coalesce(sum(redemptions), 0) FROM coupons),
		(SELECT count(*) FROM login_attempts), (SELECT count(*) FROM credit_reservations),
		(SELECT count(*) FROM key_reveals), (SELECT count(*) FROM coupons)`).
		Scan(&c.users, &c.ledger, &c.keys, &c.redemptions, &c.sessions, &c.couponUses, &c.attempts, &c.reservations, &c.reveals, &c.coupons)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStorageFull caps the database (PRAGMA max_page_count, as a full disk
// or quota would) and drives every kind of write into the cap: each failed
// write is ErrStorageFull and leaves nothing half-written, the ledger still
// balances, and once the cap is raised the same writes succeed on the same
// Store, without a restart.
func TestStorageFull(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := storetest.SQLite(t, storetest.NewClock(storetest.Start))
	s := h.Store.(*sqlite.Store)
	clk := h.Clock
	if _, err := s.CreateCoupon(ctx, account.NewCoupon{Code: "FILL", Credits: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCoupon(ctx, account.NewCoupon{Code: "BIG", Credits: account.MaxCouponCredits}); err != nil {
		t.Fatal(err)
	}
	u := storetest.NewUser(t, s)
	if _, _, err := s.RedeemCoupon(ctx, u.ID, "BIG"); err != nil {
		t.Fatal(err)
	}
	key, _ := storetest.NewKey(t, s, u.ID, "renders")
	spare := make([]account.User, 40) // redeemers, made while there is room
	for i := range spare {
		spare[i] = storetest.NewUser(t, s)
	}
	pad := strings.Repeat("x", 900) // rows this wide fill a 4 KiB page in a few inserts

	// The disk is full: the database may not grow past its current size.
	pages, err := s.PageCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.SetMaxPageCount(ctx, 1); err != nil || got != pages {
		t.Fatalf("cap %d (%v), want the current size %d: SQLite never caps below it", got, err, pages)
	}

	t.Run("CreateUser", func(t *testing.T) {
		var failed string
		var before counts
		n := fillUntilFull(t, "sign-up", func(n int) error {
			failed = fmt.Sprintf("full%d@example.com", n)
			before = countAll(t, h)
			_, err := s.CreateUser(ctx, account.NewUser{Email: failed, Name: pad[:100], PasswordHash: pad})
			return err
		})
		if _, err := s.UserByEmail(ctx, failed); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("the failed sign-up #%d left its user behind: %v", n, err)
		}
		if after := countAll(t, h); after != before {
			t.Fatalf("a failed sign-up changed the tables: %+v → %+v", before, after)
		}
		storetest.AssertLedgerBalanced(t, s)
	})
	t.Run("ChargeRender", func(t *testing.T) {
		// Spend the credits one at a time until a debit cannot be recorded.
		var before counts
		var balance int64
		fillUntilFull(t, "render debit", func(int) error {
			before = countAll(t, h)
			balance, _ = s.Credits(ctx, u.ID)
			r, err := s.AdmitRender(ctx, account.RenderAdmission{UserID: u.ID, KeyID: key.ID, RatePerMinute: 1_000_000})
			if err == nil {
				if _, err = s.ChargeRender(ctx, r); err != nil {
					// The render could not be paid for: it failed, and
					// its reservation goes.
					if err := s.ReleaseRender(ctx, r); err != nil {
						t.Fatalf("release after a failed debit: %v", err)
					}
				}
			}
			if errors.Is(err, account.ErrInsufficientCredits) {
				t.Fatal("the balance ran out before the ledger filled")
			}
			return err
		})
		if after := countAll(t, h); after != before {
			t.Fatalf("a failed debit changed the tables: %+v → %+v", before, after)
		}
		if now, _ := s.Credits(ctx, u.ID); now != balance {
			t.Fatalf("a failed debit moved the balance from %d to %d", balance, now)
		}
		if n, _ := s.LiveReservations(ctx); n != 0 {
			t.Fatalf("%d reservations stuck", n)
		}
		storetest.AssertLedgerBalanced(t, s)
	})
	t.Run("EveryOtherWrite", func(t *testing.T) {
		for _, w := range []struct {
			name string
			// op makes one write; mark snapshots the tables just before it.
			op func(n int, mark func()) error
		}{
			{"CreateAPIKey", func(n int, mark func()) error {
				mark()
				_, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: spare[n%len(spare)].ID, Label: pad[:64], Key: storetest.MustKey(t)})
				if errors.Is(err, account.ErrKeyLimit) {
					t.Fatal("the key limit answered before the database filled")
				}
				return err
			}},
			{"CreateSession", func(n int, mark func()) error {
				mark()
				id, _ := account.NewSessionID()
				return s.CreateSession(ctx, account.Session{ID: id, UserID: u.ID, Data: []byte(pad), CreatedAt: clk.Now(), LastSeenAt: clk.Now()})
			}},
			{"AdmitLoginAttempt", func(n int, mark func()) error {
				mark()
				_, err := s.AdmitLoginAttempt(ctx, fmt.Sprintf("%s%d@example.com", pad[:200], n), clk.Now().Add(-time.Second), 10)
				return err
			}},
			{"CreateCoupon", func(n int, mark func()) error {
				mark()
				_, err := s.CreateCoupon(ctx, account.NewCoupon{Code: fmt.Sprintf("%s%d", strings.Repeat("C", 56), n), Credits: 1})
				return err
			}},
			{"RedeemCoupon", func(n int, mark func()) error {
				if n >= len(spare) {
					t.Fatal("every spare user redeemed before the database filled")
				}
				mark()
				_, _, err := s.RedeemCoupon(ctx, spare[n].ID, "FILL")
				return err
			}},
			{"PutReveal", func(n int, mark func()) error {
				mark()
				return s.PutReveal(ctx, []byte(fmt.Sprintf("token%d", n)), u.ID, []byte(pad), clk.Now().Add(time.Minute))
			}},
			{"AdmitRender", func(n int, mark func()) error {
				mark()
				_, err := s.AdmitRender(ctx, account.RenderAdmission{UserID: spare[n%len(spare)].ID, KeyID: int64(1_000_000 + n), RatePerMinute: 60})
				return err
			}},
		} {
			t.Run(w.name, func(t *testing.T) {
				var before counts
				fillUntilFull(t, w.name, func(n int) error {
					return w.op(n, func() { before = countAll(t, h) })
				})
				if after := countAll(t, h); after != before {
					t.Fatalf("a failed %s changed the tables: %+v → %+v", w.name, before, after)
				}
				storetest.AssertLedgerBalanced(t, s)
			})
		}
	})
	t.Run("ReadsStillWork", func(t *testing.T) {
		if _, err := s.UserByID(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKeys(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("RecoversWhenSpaceReturns", func(t *testing.T) {
		if _, err := s.SetMaxPageCount(ctx, 1<<30); err != nil {
			t.Fatal(err)
		}
		nu, err := s.CreateUser(ctx, account.NewUser{Email: "after@example.com", Name: pad[:100], PasswordHash: pad})
		if err != nil {
			t.Fatalf("sign-up after the space came back: %v", err)
		}
		k, _ := storetest.NewKey(t, s, nu.ID, "after")
		r, err := s.AdmitRender(ctx, account.RenderAdmission{UserID: nu.ID, KeyID: k.ID, RatePerMinute: 60})
		if err != nil {
			t.Fatalf("admission after the space came back: %v", err)
		}
		if _, err := s.ChargeRender(ctx, r); err != nil {
			t.Fatalf("debit after the space came back: %v", err)
		}
		if _, _, err := s.RedeemCoupon(ctx, nu.ID, "FILL"); err != nil {
			t.Fatalf("redemption after the space came back: %v", err)
		}
		storetest.AssertLedgerBalanced(t, s)
		var check string
		if err := h.Raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check: %q, %v", check, err)
		}
	})
}

// release1 is a copy of the database made by the previous release (see
// testdata), open on the current code, and the plaintexts of its keys.
func release1(t *testing.T) (*storetest.Harness, []string) {
	t.Helper()
	path, keys := copyRelease1(t)
	return openAt(t, path, storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))), keys
}

// copyRelease1 copies the previous release's database to a temporary
// folder, unopened, and returns its path and the plaintexts of its keys.
func copyRelease1(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "peekshot.db")
	src, err := os.Open(filepath.Join("testdata", "release-1.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "release-1.keys"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			keys = append(keys, line)
		}
	}
	if err := sc.Err(); err != nil || len(keys) != 4 {
		t.Fatalf("release-1.keys: %d keys, %v", len(keys), err)
	}
	return path, keys
}

// TestUpgradeDoesNotLogOldEnds: a key of release 1 whose grace period
// ended before the upgrade is not logged as retiring at the upgrade
// (release 1 had no activity log), while a later end still is.
func TestUpgradeDoesNotLogOldEnds(t *testing.T) {
	t.Parallel()
	path, _ := copyRelease1(t)
	raw, err := sql.Open("sqlite3", sqlite.DSN(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	long := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Release 1 kept a rotated key's end of grace as its expiry.
	if _, err := raw.Exec(`UPDATE api_keys SET expires_at = ? WHERE id = 3`, long.Unix()); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	h := openAt(t, path, storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)))
	ctx := t.Context()
	if n, err := h.Store.UpdateKeyLifecycles(ctx); err != nil || n != 0 {
		t.Fatalf("the first lifecycle run after the upgrade logged %d ends, %v", n, err)
	}
	if n := h.Int(t, `SELECT count(*) FROM activity WHERE event = 'key.retired'`); n != 0 {
		t.Fatalf("%d key.retired entries for a key that retired before the upgrade", n)
	}
	// A key that ends from now on is logged as ever.
	u, err := h.Store.UserByEmail(ctx, "old@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Store.RotateAPIKey(ctx, u.ID, 1, storetest.MustKey(t), account.Grace{}); err != nil {
		t.Fatal(err)
	}
	h.Clock.Add(time.Second)
	if n, err := h.Store.UpdateKeyLifecycles(ctx); err != nil || n != 1 {
		t.Fatalf("a key retired after the upgrade: %d ends logged, %v", n, err)
	}
}

// openAt is a harness on an existing file.
func openAt(t *testing.T, path string, clk *storetest.Clock) *storetest.Harness {
	t.Helper()
	s := storetest.OpenSQLite(t, path, clk)
	return &storetest.Harness{Store: s, Clock: clk, Raw: rawDB(t, path), Dialect: "sqlite",
		Again: func() store.Store { return storetest.OpenSQLite(t, path, clk) }}
}

// TestUpgradeFromRelease1 opens a database made by the previous release,
// which upgrades in place and keeps everything in it.
func TestUpgradeFromRelease1(t *testing.T) {
	t.Parallel()
	h, plain := release1(t)
	s, ctx := h.Store, t.Context()
	rotatedAt := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	if s.(*sqlite.Store).Created() {
		t.Fatal("an upgraded database is reported as created")
	}
	u, err := s.UserByEmail(ctx, "old@example.com")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("User", func(t *testing.T) {
		if u.Name != "Old Timer" || u.Credits != 599 || !u.CreatedAt.Equal(rotatedAt) || !strings.HasPrefix(u.PasswordHash, "$2a$") {
			t.Fatalf("%+v", u)
		}
		led, err := s.Ledger(ctx, u.ID)
		if err != nil || len(led) != 3 || led[0].Reason != "signup" || led[1].Reason != "coupon" || led[2].Reason != "render" {
			t.Fatalf("ledger %+v %v", led, err)
		}
		storetest.AssertLedgerBalanced(t, s)
	})
	t.Run("Coupons", func(t *testing.T) {
		cs, err := s.Coupons(ctx)
		if err != nil || len(cs) != 1 || cs[0].Code != "WELCOME" || cs[0].Credits != 500 || cs[0].MaxRedemptions != 10 || cs[0].Redemptions != 1 {
			t.Fatalf("%+v %v", cs, err)
		}
		hist, err := s.Redemptions(ctx, u.ID)
		if err != nil || len(hist) != 1 || hist[0].Code != "WELCOME" || hist[0].Credits != 500 {
			t.Fatalf("%+v %v", hist, err)
		}
		if _, _, err := s.RedeemCoupon(ctx, u.ID, "welcome"); !errors.Is(err, account.ErrCouponRedeemed) {
			t.Fatalf("redeeming WELCOME again: %v", err)
		}
	})
	t.Run("Keys", func(t *testing.T) {
		keys, err := s.APIKeys(ctx, u.ID)
		if err != nil || len(keys) != 4 {
			t.Fatalf("%d keys, %v", len(keys), err)
		}
		byID := map[int64]account.APIKey{}
		for _, k := range keys {
			byID[k.ID] = k
		}
		now := h.Clock.Now()
		for _, tc := range []struct {
			id       int64
			label    string
			status   account.KeyStatus
			requests int64
		}{
			{1, "Server-side app", account.KeyActive, 42},
			{2, "Zapier integration", account.KeyInactive, 0},
			{3, "Old CI", account.KeyRetiring, 0},
			{4, "Old CI", account.KeyActive, 0},
		} {
			k := byID[tc.id]
			if k.Label != tc.label || k.Status(now) != tc.status || k.RequestCount != tc.requests || k.Masked() != apikey.MaskKey(plain[tc.id-1]) {
				t.Errorf("key %d: %+v, status %v; want %q, %v, %d requests", tc.id, k, k.Status(now), tc.label, tc.status, tc.requests)
			}
			if !k.ExpiresAt.IsZero() {
				t.Errorf("key %d expires at %v: a retirement became an expiry", tc.id, k.ExpiresAt)
			}
			if !reflect.DeepEqual(k.Policy, account.DefaultPolicy()) {
				t.Errorf("key %d has the policy %+v after the upgrade, want the default (it could do that before)", tc.id, k.Policy)
			}
			byHash, err := s.APIKeyByHash(ctx, apikey.HashOf(plain[tc.id-1]))
			if err != nil || byHash.ID != tc.id || byHash.Status(now) != tc.status {
				t.Errorf("key %d by its plaintext: %+v %v", tc.id, byHash, err)
			}
		}
		if !byID[1].LastUsedAt.Equal(rotatedAt) {
			t.Errorf("key 1 last used %v", byID[1].LastUsedAt)
		}
		k3 := byID[3]
		if !k3.RotatedAt.Equal(rotatedAt) || !k3.RetiresAt.Equal(rotatedAt.Add(7*24*time.Hour)) || k3.ReplacedBy != 4 {
			t.Errorf("key 3: rotated %v, retires %v, replaced by %d", k3.RotatedAt, k3.RetiresAt, k3.ReplacedBy)
		}
		if k3.Status(rotatedAt.Add(7*24*time.Hour)) != account.KeyExpired {
			t.Error("key 3 does not retire at the end of its grace period")
		}
		for _, id := range []int64{1, 2, 4} {
			if k := byID[id]; k.Rotated() || !k.RotatedAt.IsZero() || k.ReplacedBy != 0 {
				t.Errorf("key %d looks rotated: %+v", id, k)
			}
		}
		if _, _, err := s.RotateAPIKey(ctx, u.ID, 3, storetest.MustKey(t), account.Grace{}); !errors.Is(err, account.ErrAlreadyRotated) {
			t.Errorf("rotating key 3 again: %v", err)
		}
		if n, err := s.CountActiveAPIKeys(ctx, u.ID); err != nil || n != 3 {
			t.Errorf("%d active keys, %v", n, err)
		}
	})
	t.Run("Sessions", func(t *testing.T) {
		if n, err := s.UserSessionCount(ctx, u.ID); err != nil || n != 1 {
			t.Fatalf("%d sessions of the user, %v", n, err)
		}
		if n := h.Int(t, `SELECT count(*) FROM sessions`); n != 1 {
			t.Fatalf("%d sessions kept: the anonymous one must go", n)
		}
	})
	t.Run("Migrations", func(t *testing.T) {
		if n := h.Int(t, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`); n != 0 {
			t.Fatal("the old record of migrations is still there")
		}
		files, err := filepath.Glob("migrations/*.sql")
		if err != nil || len(files) < 4 {
			t.Fatalf("migrations %v %v", files, err)
		}
		if n := h.Int(t, `SELECT max(version_id) FROM goose_db_version`); n != int64(len(files)) {
			t.Fatalf("goose is at version %d, want %d (every migration)", n, len(files))
		}
		if n := h.Int(t, `SELECT count(*) FROM sqlite_master WHERE name IN ('login_failures', 'login_failures_email')`); n != 0 {
			t.Fatal("the old sign-in table is still there")
		}
		var check string
		if err := h.Raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check: %q, %v", check, err)
		}
		var fk int
		if err := h.Raw.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
			t.Fatalf("%d foreign key violations (%v)", fk, err)
		}
	})
	t.Run("WorksAsNew", func(t *testing.T) {
		k, _ := storetest.NewKey(t, s, u.ID, "new")
		if k.ID != 5 {
			t.Fatalf("a new key got id %d, want 5", k.ID)
		}
		r, err := s.AdmitRender(ctx, account.RenderAdmission{UserID: u.ID, KeyID: 1, RatePerMinute: 60})
		if err != nil {
			t.Fatal(err)
		}
		if ch, err := s.ChargeRender(ctx, r); err != nil || ch.Balance != 598 {
			t.Fatalf("%d %v", ch.Balance, err)
		}
		ok, err := s.AdmitLoginAttempt(ctx, u.Email, h.Clock.Now().Add(-15*time.Minute), 10)
		if err != nil || !ok {
			t.Fatalf("%v %v", ok, err)
		}
		storetest.AssertLedgerBalanced(t, s)
	})
	t.Run("ReopenIsANoOp", func(t *testing.T) {
		before := storetest.Dump(t, h)
		again := h.Again()
		if again.(*sqlite.Store).Created() {
			t.Fatal("reopening reports a created database")
		}
		if after := storetest.Dump(t, h); !bytes.Equal(before, after) {
			t.Fatalf("reopening changed the database:\n%s\n---\n%s", before, after)
		}
	})
}

// TestUpgradeKeepsIDsAboveTheOldest: a database made before key ids had a
// sequence of their own (the first release's 0001 alone) continues above
// its largest key id, even once that key is deleted.
func TestUpgradeKeepsIDsAboveTheOldest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "peekshot.db")
	b, err := os.ReadFile(filepath.Join("testdata", "release-1.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	for _, q := range []string{
		`DELETE FROM schema_migrations WHERE version >= 2`, `DROP TABLE api_key_ids`,
		`DELETE FROM sqlite_sequence WHERE name = 'api_key_ids'`, `DROP INDEX api_keys_auth`,
		`UPDATE api_keys SET id = 41 WHERE id = 2`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	h := openAt(t, path, storetest.NewClock(storetest.Start))
	u, err := h.Store.UserByEmail(t.Context(), "old@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.DeleteAPIKey(t.Context(), u.ID, 41); err != nil {
		t.Fatal(err)
	}
	if k, _ := storetest.NewKey(t, h.Store, u.ID, "new"); k.ID != 42 {
		t.Fatalf("first key after the upgrade got id %d, want 42", k.ID)
	}
}
