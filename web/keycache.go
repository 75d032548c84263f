package web

import (
	"sync"
	"time"

	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

const (
	// keyCacheSize bounds the keys kept in memory (a few hundred bytes each).
	keyCacheSize = 10_000
	// keyCacheTTL is how long a key read from the database is trusted.
	// Changes made in this process are seen at once (see forget); the TTL
	// only bounds how long a change made by another process could go unseen.
	keyCacheTTL = time.Minute
)

// keyCache keeps the API keys that authenticated recently, by hash, so that
// a client calling the API in bursts has its key verified without a
// database read. It keeps only keys that exist (an unknown key costs a read
// every time, so garbage cannot fill it) and never credits.
//
// Every change of a key made by this process (deactivate, activate, rotate,
// delete, account deletion) calls forget before it answers, so the next
// request reads the database again. The generation counter stops a lookup
// that raced with such a change from putting the old state back.
type keyCache struct {
	mu      sync.RWMutex
	gen     uint64
	entries map[apikey.Hash]cachedKey
}

type cachedKey struct {
	key    *store.APIKey // never changed once cached: requests share it
	readAt time.Time
}

func newKeyCache() *keyCache {
	return &keyCache{entries: make(map[apikey.Hash]cachedKey)}
}

// get returns the cached key for h, which the caller must not change. On a
// miss it returns the generation to hand to put after reading the database.
func (c *keyCache) get(h apikey.Hash, now time.Time) (k *store.APIKey, gen uint64, ok bool) {
	c.mu.RLock()
	e, ok := c.entries[h]
	gen = c.gen
	c.mu.RUnlock()
	if !ok || now.Sub(e.readAt) >= keyCacheTTL || now.Before(e.readAt) {
		return nil, gen, false
	}
	return e.key, gen, true
}

// put remembers k, read from the database at now, unless a key changed
// since get returned gen.
func (c *keyCache) put(h apikey.Hash, k store.APIKey, gen uint64, now time.Time) {
	// Usage is counted elsewhere; a cached copy of it would only go stale.
	k.LastUsedAt, k.RequestCount = time.Time{}, 0
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.entries[h]; !ok && len(c.entries) >= keyCacheSize {
		for old := range c.entries { // map order: an arbitrary victim
			delete(c.entries, old)
			break
		}
	}
	c.entries[h] = cachedKey{key: &k, readAt: now}
}

// forgetKey drops one key; call it after changing the key.
func (c *keyCache) forgetKey(keyID int64) {
	c.forget(func(k *store.APIKey) bool { return k.ID == keyID })
}

// forgetUser drops every key of a user; call it after deleting the account.
func (c *keyCache) forgetUser(userID int64) {
	c.forget(func(k *store.APIKey) bool { return k.UserID == userID })
}

func (c *keyCache) forget(match func(*store.APIKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if match(e.key) {
			delete(c.entries, h)
		}
	}
}
