package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// The cache's own rules, without a database (the conformance suite tests
// it on both databases, through Watch).
func TestCacheRules(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	fresh := func() *Cached {
		return &Cached{now: clock, live: true,
			keys: make(map[apikey.Hash]cached[account.APIKey]), users: make(map[int64]cached[emailAndCredits])}
	}
	k := account.APIKey{ID: 7, UserID: 3, Active: true}
	h := apikey.HashOf("psk_example")

	t.Run("ReadRacingAChangeIsNotKept", func(t *testing.T) {
		c := fresh()
		_, gen, ok := get(c, c.keys, h) // miss: the database is read next...
		if ok {
			t.Fatal("hit in an empty cache")
		}
		c.forget(Change{KeyID: k.ID, UserID: k.UserID}) // ...while the key changes
		put(c, c.keys, h, k, gen)
		if _, _, ok := get(c, c.keys, h); ok {
			t.Fatal("a read from before the change was cached")
		}
	})
	t.Run("Expires", func(t *testing.T) {
		c := fresh()
		_, gen, _ := get(c, c.keys, h)
		put(c, c.keys, h, k, gen)
		now = now.Add(cacheTTL - time.Second)
		if got, _, ok := get(c, c.keys, h); !ok || got.ID != k.ID {
			t.Fatalf("get = %+v, %v before its TTL", got, ok)
		}
		now = now.Add(time.Second)
		if _, _, ok := get(c, c.keys, h); ok {
			t.Fatal("kept past its TTL")
		}
	})
	t.Run("NotTrustedWhileTheFeedIsDown", func(t *testing.T) {
		c := fresh()
		_, gen, _ := get(c, c.keys, h)
		put(c, c.keys, h, k, gen)
		c.setLive(false)
		if _, _, ok := get(c, c.keys, h); ok {
			t.Fatal("served from the cache while changes may go unseen")
		}
		_, gen, _ = get(c, c.keys, h)
		put(c, c.keys, h, k, gen)
		c.setLive(true)
		if _, _, ok := get(c, c.keys, h); ok {
			t.Fatal("kept what was read while the feed was down")
		}
	})
	t.Run("WhatAChangeForgets", func(t *testing.T) {
		c := fresh()
		other := apikey.HashOf("psk_other")
		sibling := apikey.HashOf("psk_sibling")
		_, gen, _ := get(c, c.keys, h)
		put(c, c.keys, h, k, gen)
		put(c, c.keys, sibling, account.APIKey{ID: 9, UserID: 3}, gen)
		put(c, c.keys, other, account.APIKey{ID: 8, UserID: 4}, gen)
		put(c, c.users, 3, emailAndCredits{"a@example.com", 5}, gen)

		c.forget(Change{UserID: 3}) // a balance changed
		if _, _, ok := get(c, c.users, 3); ok {
			t.Fatal("the user's credits are still cached after they changed")
		}
		if _, _, ok := get(c, c.keys, h); !ok {
			t.Fatal("a change of credits dropped the user's keys")
		}
		c.forget(Change{KeyID: 7, UserID: 3})
		if _, _, ok := get(c, c.keys, h); ok {
			t.Fatal("the changed key is still cached")
		}
		if _, _, ok := get(c, c.keys, sibling); !ok {
			t.Fatal("another key of the user was dropped")
		}
		c.forget(Change{UserID: 3, AllKeys: true}) // the account was deleted
		if _, _, ok := get(c, c.keys, sibling); ok {
			t.Fatal("a deleted account's key is still cached")
		}
		if _, _, ok := get(c, c.keys, other); !ok {
			t.Fatal("another user's key was dropped")
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		c := fresh()
		_, gen, _ := get(c, c.keys, h)
		for i := range cacheSize + 100 {
			var h apikey.Hash
			h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
			put(c, c.keys, h, account.APIKey{ID: int64(i)}, gen)
		}
		if n := len(c.keys); n != cacheSize {
			t.Fatalf("%d entries, want at most %d", n, cacheSize)
		}
	})
	t.Run("CountsLookups", func(t *testing.T) {
		c := fresh()
		c.Store = oneKeyStore{hash: h, key: k}
		ctx := context.Background()
		lookups := func(want ...uint64) {
			t.Helper()
			if hits, misses := c.KeyLookups(); hits != want[0] || misses != want[1] {
				t.Fatalf("%d hits and %d misses, want %v", hits, misses, want)
			}
		}
		lookups(0, 0)
		if _, err := c.APIKeyByHash(ctx, apikey.HashOf("psk_unknown")); !errors.Is(err, account.ErrNotFound) {
			t.Fatal(err)
		}
		lookups(0, 1) // an unknown key always reads the database
		for range 3 {
			if got, err := c.APIKeyByHash(ctx, h); err != nil || got.ID != k.ID {
				t.Fatalf("%+v %v", got, err)
			}
		}
		lookups(2, 2) // read once, then from memory
		c.forget(Change{KeyID: k.ID, UserID: k.UserID})
		c.APIKeyByHash(ctx, h)
		lookups(2, 3)
	})
}

// oneKeyStore is a database that holds one key.
type oneKeyStore struct {
	Store
	hash apikey.Hash
	key  account.APIKey
}

func (s oneKeyStore) APIKeyByHash(_ context.Context, h apikey.Hash) (account.APIKey, error) {
	if h != s.hash {
		return account.APIKey{}, account.ErrNotFound
	}
	return s.key, nil
}
