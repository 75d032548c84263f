package web

import (
	"math"
	"sync"
	"time"
)

// keyLimiter is a token bucket per API key: perMinute requests a minute,
// with bursts up to perMinute. It lives in memory; limits restart with the
// process, which errs on the side of the user.
type keyLimiter struct {
	mu        sync.Mutex
	perMinute float64
	buckets   map[int64]*bucket
	sweptAt   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newKeyLimiter(perMinute int) *keyLimiter {
	return &keyLimiter{perMinute: float64(perMinute), buckets: make(map[int64]*bucket)}
}

// allow takes a token for keyID at now. When none is left it returns how
// long until one is.
func (l *keyLimiter) allow(keyID int64, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate := l.perMinute / 60 // tokens per second
	b, ok := l.buckets[keyID]
	if !ok {
		b = &bucket{tokens: l.perMinute, at: now}
		l.buckets[keyID] = b
	}
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = math.Min(l.perMinute, b.tokens+elapsed*rate)
		b.at = now
	}
	l.sweep(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / rate * float64(time.Second))
	return false, wait
}

// sweep forgets buckets that have been full for a while, so the map stays
// as small as the set of keys in use.
func (l *keyLimiter) sweep(now time.Time) {
	if now.Sub(l.sweptAt) < time.Minute {
		return
	}
	l.sweptAt = now
	for id, b := range l.buckets {
		if now.Sub(b.at) > 2*time.Minute {
			delete(l.buckets, id)
		}
	}
}
