package sqlite_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store/sqlite"
	"github.com/peekshot/peekshot/store/storetest"
)

// openCounter is the SQLite driver counting the read-only connections it
// opens, and how many of them are open.
type openCounter struct {
	sqlite3.SQLiteDriver
	opened, open atomic.Int64
	lookups      atomic.Int64 // key lookups prepared
}

func (d *openCounter) Open(dsn string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(dsn)
	if err != nil || !strings.Contains(dsn, "mode=ro") {
		return c, err
	}
	d.opened.Add(1)
	d.open.Add(1)
	return &countedConn{SQLiteConn: c.(*sqlite3.SQLiteConn), d: d}, nil
}

type countedConn struct {
	*sqlite3.SQLiteConn
	d    *openCounter
	once sync.Once
}

func (c *countedConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if strings.Contains(q, "WHERE key_hash = ?") {
		c.d.lookups.Add(1)
	}
	return c.SQLiteConn.PrepareContext(ctx, q)
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.d.open.Add(-1) })
	return c.SQLiteConn.Close()
}

var openCounters atomic.Int64

// openCounted opens a store at a new path through a new openCounter.
func openCounted(t *testing.T, readConns int) (*sqlite.Store, *openCounter) {
	t.Helper()
	d := &openCounter{}
	name := fmt.Sprintf("sqlite3-open-counter-%d", openCounters.Add(1))
	sql.Register(name, d)
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "peekshot.db"), sqlite.Options{Driver: name, ReadConns: readConns})
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

// TestKeyLookupConnections: the key lookup (which runs on connections of
// its own, with its query prepared) finds keys from many goroutines at
// once on at most ReadConns connections of its own, says a key it does
// not know is not found, and closes every connection with the store; a
// lookup after Close fails instead of opening another.
func TestKeyLookupConnections(t *testing.T) {
	t.Parallel()
	s, d := openCounted(t, 2)
	u := storetest.NewUser(t, s)
	var hashes []apikey.Hash
	for i := range 5 {
		_, plain := storetest.NewKey(t, s, u.ID, fmt.Sprintf("key %d", i))
		hashes = append(hashes, apikey.HashOf(plain))
	}
	before := d.opened.Load() // the read pool's own
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				h := hashes[(g+i)%len(hashes)]
				k, err := s.APIKeyByHash(context.Background(), h)
				if err != nil {
					errs <- err
					return
				}
				if k.UserID != u.ID || !k.Active || !strings.HasPrefix(k.Label, "key ") {
					errs <- fmt.Errorf("found %+v", k)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := d.opened.Load() - before; n < 1 || n > 2 {
		t.Errorf("the key lookup opened %d connections, want 1 or 2 (ReadConns)", n)
	}
	// Each of its connections prepared the lookup once, and 200 lookups
	// ran on those statements.
	if n := d.lookups.Load(); n != d.opened.Load()-before {
		t.Errorf("the key lookup was prepared %d times on %d connections of its own", n, d.opened.Load()-before)
	}
	unknown := apikey.HashOf(storetest.MustKey(t))
	if _, err := s.APIKeyByHash(t.Context(), unknown); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("an unknown key: %v, want account.ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := d.open.Load(); n != 0 {
		t.Errorf("%d read-only connections still open after Close", n)
	}
	if _, err := s.APIKeyByHash(context.Background(), hashes[0]); err == nil {
		t.Error("a lookup after Close succeeded")
	}
	if n := d.open.Load(); n != 0 {
		t.Errorf("a lookup after Close left %d connections open", n)
	}
}

// TestKeyLookupReadsWhatWasWritten: the lookup's connections see every
// change committed through the store, policy included, on the next read.
func TestKeyLookupReadsWhatWasWritten(t *testing.T) {
	t.Parallel()
	s, _ := openCounted(t, 1)
	defer s.Close()
	u := storetest.NewUser(t, s)
	k, plain := storetest.NewKey(t, s, u.ID, "policy")
	h := apikey.HashOf(plain)
	if _, err := s.APIKeyByHash(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParsePrefix("203.0.113.0/24")
	p := account.Policy{Scopes: []account.Scope{account.ScopeScreenshots}, AllowedIPs: []netip.Prefix{ip},
		AllowedTargets: []string{"example.com"}, RateLimit: 7, MonthlyBudget: 9}
	if _, err := s.UpdateAPIKeySettings(t.Context(), u.ID, k.ID, account.KeySettings{Label: "changed", Policy: p}); err != nil {
		t.Fatal(err)
	}
	got, err := s.APIKeyByHash(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	if got.Label != "changed" || !reflect.DeepEqual(got.Policy, p) {
		t.Fatalf("after the update: label %q, policy %+v, want %+v", got.Label, got.Policy, p)
	}
	if _, err := s.SetAPIKeyActive(t.Context(), u.ID, k.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, err := s.APIKeyByHash(t.Context(), h); err != nil || got.Active {
		t.Fatalf("after deactivating: active %v, %v", got.Active, err)
	}
}
