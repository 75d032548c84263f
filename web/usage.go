package web

import (
	"context"
	"sync"
	"time"

	"github.com/peekshot/peekshot/account"
)

// usageRecorder counts API key usage in memory, so an authenticated request
// performs no database write; the counts are flushed in batches.
type usageRecorder struct {
	mu      sync.Mutex
	pending map[int64]account.KeyUsage
}

func newUsageRecorder() *usageRecorder {
	return &usageRecorder{pending: make(map[int64]account.KeyUsage)}
}

// record notes one request made with a key.
func (u *usageRecorder) record(keyID int64, at time.Time) {
	u.mu.Lock()
	e := u.pending[keyID]
	e.KeyID = keyID
	e.Requests++
	if at.After(e.LastUsed) {
		e.LastUsed = at
	}
	u.pending[keyID] = e
	u.mu.Unlock()
}

// take empties the pending usage.
func (u *usageRecorder) take() []account.KeyUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return nil
	}
	out := make([]account.KeyUsage, 0, len(u.pending))
	for _, e := range u.pending {
		out = append(out, e)
	}
	clear(u.pending)
	return out
}

// restore puts usage back after a failed flush, so nothing is lost.
func (u *usageRecorder) restore(batch []account.KeyUsage) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, b := range batch {
		e := u.pending[b.KeyID]
		e.KeyID = b.KeyID
		e.Requests += b.Requests
		if b.LastUsed.After(e.LastUsed) {
			e.LastUsed = b.LastUsed
		}
		u.pending[b.KeyID] = e
	}
}

// overlay adds not-yet-flushed usage to keys read from the database, so the
// API Keys tab is exact at every moment.
func (u *usageRecorder) overlay(keys []account.APIKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return
	}
	for i := range keys {
		if e, ok := u.pending[keys[i].ID]; ok {
			keys[i].RequestCount += e.Requests
			if e.LastUsed.After(keys[i].LastUsedAt) {
				keys[i].LastUsedAt = e.LastUsed.Truncate(time.Second)
			}
		}
	}
}

func (s *Server) flushUsage(ctx context.Context) error {
	batch := s.usage.take()
	if len(batch) == 0 {
		return nil
	}
	if err := s.store.RecordAPIKeyUsage(ctx, batch); err != nil {
		s.usage.restore(batch)
		return err
	}
	return nil
}
