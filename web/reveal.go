package web

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// revealTTL is how long a new key waits in memory for the page that shows
// it, on the no-JavaScript path (POST, then 303, then GET).
const revealTTL = 2 * time.Minute

// revealCache hands a freshly created key across a redirect without ever
// writing it anywhere: it lives in memory, under a random token kept in the
// session, and is deleted when shown or after revealTTL.
type revealCache struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]pendingReveal
}

type pendingReveal struct {
	userID     int64
	keyID      int64
	key        string
	replacedID int64
	expires    time.Time
}

func newRevealCache(now func() time.Time) *revealCache {
	return &revealCache{now: now, entries: make(map[string]pendingReveal)}
}

func (rc *revealCache) put(r pendingReveal) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.now()
	for t, e := range rc.entries {
		if now.After(e.expires) {
			delete(rc.entries, t)
		}
	}
	r.expires = now.Add(revealTTL)
	rc.entries[token] = r
	return token
}

// take returns the key once, and only to the user it was made for.
func (rc *revealCache) take(token string, userID int64) (pendingReveal, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	r, ok := rc.entries[token]
	if !ok {
		return pendingReveal{}, false
	}
	delete(rc.entries, token)
	if r.userID != userID || rc.now().After(r.expires) {
		return pendingReveal{}, false
	}
	return r, true
}
