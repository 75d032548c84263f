package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

const (
	// cacheSize bounds the keys (and the users) kept in memory, a few
	// hundred bytes each.
	cacheSize = 10_000
	// cacheTTL bounds how long an entry is trusted even while the feed of
	// changes is live: a backstop, not the mechanism.
	cacheTTL = time.Minute
)

// Cached is a Store whose hot reads, an API key by its hash, a key and its
// signing secret by the key's id (for signed links), and the email and
// credits that GET /api/v1/me shows, are answered from memory,
// so that the API's hot path makes no database round trip. The cache is
// only a cache: every change any process commits reaches it through the
// Store's Watch (this process's own before the write returns, others'
// within the feed's delay), and while the feed is not live it is
// bypassed. It keeps only what exists, so an unknown key costs a read
// every time and garbage cannot fill it.
type Cached struct {
	Store
	now func() time.Time

	mu     sync.RWMutex
	live   bool
	gen    uint64 // moves on every change: a read that raced one isn't kept
	keys   map[apikey.Hash]cached[account.APIKey]
	signed map[int64]cached[account.SignedLinkKey]
	users  map[int64]cached[emailAndCredits]

	// keyHits and keyMisses count the key lookups answered from memory
	// and those that read the database, for monitoring.
	keyHits, keyMisses atomic.Uint64

	stop context.CancelFunc
	done chan struct{}
}

type cached[T any] struct {
	v      *T // never changed once cached: requests share it
	readAt time.Time
}

type emailAndCredits struct {
	email   string
	credits int64
}

// NewCached wraps s and starts watching its changes; Close stops it and
// closes s. now is the clock (nil: time.Now).
func NewCached(s Store, now func() time.Time) *Cached {
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cached{
		Store: s, now: now, stop: cancel, done: make(chan struct{}),
		keys: make(map[apikey.Hash]cached[account.APIKey]), users: make(map[int64]cached[emailAndCredits]),
		signed: make(map[int64]cached[account.SignedLinkKey]),
	}
	go func() {
		defer close(c.done)
		s.Watch(ctx, c.forget, c.setLive)
	}()
	return c
}

// Close stops watching and closes the store.
func (c *Cached) Close() error {
	c.stop()
	<-c.done
	return c.Store.Close()
}

// Live reports whether the cache is in use (the feed of changes is live).
func (c *Cached) Live() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.live
}

// APIKeyByHash answers from memory when it can. The key it returns must
// not be changed by the caller.
func (c *Cached) APIKeyByHash(ctx context.Context, hash apikey.Hash) (account.APIKey, error) {
	k, gen, ok := get(c, c.keys, hash)
	if ok {
		c.keyHits.Add(1)
		return *k, nil
	}
	c.keyMisses.Add(1)
	stored, err := c.Store.APIKeyByHash(ctx, hash)
	if err != nil {
		return account.APIKey{}, err
	}
	stored.LastUsedAt, stored.RequestCount = time.Time{}, 0 // counted elsewhere
	put(c, c.keys, hash, stored, gen)
	return stored, nil
}

// KeyLookups counts the key lookups answered from memory (hits) and those
// that read the database (misses: every unknown key is one).
func (c *Cached) KeyLookups() (hits, misses uint64) {
	return c.keyHits.Load(), c.keyMisses.Load()
}

// SignedLinkKey answers from memory when it can. What it returns must not
// be changed by the caller.
func (c *Cached) SignedLinkKey(ctx context.Context, keyID int64) (account.SignedLinkKey, error) {
	k, gen, ok := get(c, c.signed, keyID)
	if ok {
		return *k, nil
	}
	stored, err := c.Store.SignedLinkKey(ctx, keyID)
	if err != nil {
		return account.SignedLinkKey{}, err
	}
	put(c, c.signed, keyID, stored, gen)
	return stored, nil
}

// EmailAndCredits answers from memory when it can.
func (c *Cached) EmailAndCredits(ctx context.Context, userID int64) (string, int64, error) {
	u, gen, ok := get(c, c.users, userID)
	if ok {
		return u.email, u.credits, nil
	}
	email, credits, err := c.Store.EmailAndCredits(ctx, userID)
	if err != nil {
		return "", 0, err
	}
	put(c, c.users, userID, emailAndCredits{email, credits}, gen)
	return email, credits, nil
}

// get returns the cached entry for id. On a miss it returns the generation
// to hand to put after reading the database.
func get[K comparable, T any](c *Cached, m map[K]cached[T], id K) (*T, uint64, bool) {
	now := c.now()
	c.mu.RLock()
	e, ok := m[id]
	gen, live := c.gen, c.live
	c.mu.RUnlock()
	if !live || !ok || now.Sub(e.readAt) >= cacheTTL || now.Before(e.readAt) {
		return nil, gen, false
	}
	return e.v, gen, true
}

// put remembers v, read from the database, unless something changed since
// get returned gen or the feed is not live.
func put[K comparable, T any](c *Cached, m map[K]cached[T], id K, v T, gen uint64) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.live {
		return
	}
	if _, ok := m[id]; !ok && len(m) >= cacheSize {
		for old := range m { // map order: an arbitrary victim
			delete(m, old)
			break
		}
	}
	m[id] = cached[T]{v: &v, readAt: now}
}

// forget drops what a change makes stale.
func (c *Cached) forget(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if ch.KeyID == 0 {
		delete(c.users, ch.UserID)
	}
	if ch.KeyID == 0 && !ch.AllKeys {
		return
	}
	for h, e := range c.keys {
		if e.v.ID == ch.KeyID || ch.AllKeys && e.v.UserID == ch.UserID {
			delete(c.keys, h)
		}
	}
	delete(c.signed, ch.KeyID)
	if ch.AllKeys {
		for id, e := range c.signed {
			if e.v.Key.UserID == ch.UserID {
				delete(c.signed, id)
			}
		}
	}
}

// setLive trusts the cache again, emptied, or stops trusting it.
func (c *Cached) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.live = live
	clear(c.keys)
	clear(c.signed)
	clear(c.users)
}
