package web

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

// dataVersion reads PRAGMA data_version on conn, which changes whenever
// another connection commits a write to the database.
func dataVersion(t *testing.T, conn *sql.Conn) int64 {
	t.Helper()
	var v int64
	if err := conn.QueryRowContext(context.Background(), `PRAGMA data_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAPIRequestWritesNothing: an authenticated API request performs no
// SQLite write; its usage is written by the next flush, in one batch.
func TestAPIRequestWritesNothing(t *testing.T) {
	e := newTestEnv(t, withConfig(func(c *Config) { c.UsageFlushInterval = time.Hour }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "quiet")

	db, err := sql.Open("sqlite3", "file:"+e.store.Path()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	probe, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()

	before := dataVersion(t, probe)
	const n = 50
	for range n {
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
	}
	if after := dataVersion(t, probe); after != before {
		t.Fatalf("%d API requests wrote to the database (data_version %d → %d)", n, before, after)
	}
	// The probe does see writes: the flush is one.
	if err := e.srv.flushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := dataVersion(t, probe); after == before {
		t.Fatal("data_version did not move after the usage flush: the probe sees nothing")
	}
	if keys := userKeys(t, e, email); keys[0].RequestCount != n {
		t.Fatalf("flushed request count %d, want %d", keys[0].RequestCount, n)
	}
}

// TestKeyChangesApplyToTheNextRequest: with the key in the key cache, every
// change of it is seen by the very next API request.
func TestKeyChangesApplyToTheNextRequest(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	me := func(key string) response { return e.apiCall("GET", "/api/v1/me", key, "") }
	warm := func(t *testing.T, key string) {
		t.Helper()
		expectStatus(t, me(key), http.StatusOK)
		if _, _, ok := e.srv.keys.get(apikey.HashOf(key), e.clock.Now()); !ok {
			t.Fatal("the key is not in the key cache after a request")
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
		// Cached a moment before the expiry, still cached after it.
		e.clock.Advance(time.Hour - 10*time.Second)
		warm(t, key)
		e.clock.Advance(10 * time.Second)
		if _, _, ok := e.srv.keys.get(apikey.HashOf(key), e.clock.Now()); !ok {
			t.Fatal("the key left the cache; this test needs it cached")
		}
		expectAPIError(t, me(key), http.StatusUnauthorized, "api_key_expired")
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
		if _, _, ok := e.srv.keys.get(apikey.HashOf(key), e.clock.Now()); ok {
			t.Fatal("a deleted account's key is still cached")
		}
	})
	t.Run("UnknownKeysAreNotCached", func(t *testing.T) {
		before := len(e.srv.keys.entries)
		for range 20 {
			k, _ := apikey.Generate()
			expectAPIError(t, me(k), http.StatusUnauthorized, "invalid_api_key")
		}
		if n := len(e.srv.keys.entries); n != before {
			t.Fatalf("cache grew from %d to %d entries on unknown keys", before, n)
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

func TestKeyCache(t *testing.T) {
	now := time.Now()
	k := store.APIKey{ID: 7, UserID: 3, Active: true, RequestCount: 9}
	h := apikey.HashOf("psk_example")

	t.Run("ReadRacingAChangeIsNotKept", func(t *testing.T) {
		c := newKeyCache()
		_, gen, ok := c.get(h, now) // miss: the database is read next...
		if ok {
			t.Fatal("hit in an empty cache")
		}
		c.forgetKey(k.ID) // ...while the key changes
		c.put(h, k, gen, now)
		if _, _, ok := c.get(h, now); ok {
			t.Fatal("a read from before the change was cached")
		}
	})
	t.Run("Expires", func(t *testing.T) {
		c := newKeyCache()
		_, gen, _ := c.get(h, now)
		c.put(h, k, gen, now)
		got, _, ok := c.get(h, now.Add(keyCacheTTL-time.Second))
		if !ok || got.ID != k.ID || got.RequestCount != 0 {
			t.Fatalf("get = %+v, %v; want the key without usage", got, ok)
		}
		if _, _, ok := c.get(h, now.Add(keyCacheTTL)); ok {
			t.Fatal("kept past its TTL")
		}
	})
	t.Run("ForgetUser", func(t *testing.T) {
		c := newKeyCache()
		other := apikey.HashOf("psk_other")
		_, gen, _ := c.get(h, now)
		c.put(h, k, gen, now)
		c.put(other, store.APIKey{ID: 8, UserID: 4}, gen, now)
		c.forgetUser(3)
		if _, _, ok := c.get(h, now); ok {
			t.Fatal("the user's key is still cached")
		}
		if _, _, ok := c.get(other, now); !ok {
			t.Fatal("another user's key was dropped")
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		c := newKeyCache()
		_, gen, _ := c.get(h, now)
		for i := range keyCacheSize + 100 {
			var h apikey.Hash
			h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
			c.put(h, store.APIKey{ID: int64(i)}, gen, now)
		}
		if n := len(c.entries); n != keyCacheSize {
			t.Fatalf("%d entries, want at most %d", n, keyCacheSize)
		}
	})
}
