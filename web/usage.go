package web

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/peekshot/peekshot/account"
)

// usageRecorder counts API key usage in memory, per key and day (UTC), so
// an authenticated request performs no database write; the counts are
// flushed in batches, as additions.
type usageRecorder struct {
	mu      sync.Mutex
	pending map[usageSlot]*account.KeyUsage
	// flushing is held by a flush from taking the batch until it is
	// written, so that a flush returns only once all usage taken before it
	// is in the database (a shutdown's or a test's, after the ticker's).
	flushing sync.Mutex
}

type usageSlot struct {
	key int64
	day int64 // Unix seconds of the day's start
}

func newUsageRecorder() *usageRecorder {
	return &usageRecorder{pending: make(map[usageSlot]*account.KeyUsage)}
}

// slot is the pending usage of a key's day; u.mu must be held.
func (u *usageRecorder) slot(keyID int64, at time.Time) *account.KeyUsage {
	day := account.DayStart(at)
	k := usageSlot{keyID, day.Unix()}
	e := u.pending[k]
	if e == nil {
		e = &account.KeyUsage{KeyID: keyID, Day: day}
		u.pending[k] = e
	}
	return e
}

// request notes one request made with a key, from ip with agent; accepted
// says the key's state and policy let it through.
func (u *usageRecorder) request(keyID int64, at time.Time, ip, agent string, accepted bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.slot(keyID, at)
	e.Requests++
	if ip != "" && len(e.IPs) < account.MaxDayIPs && !slices.Contains(e.IPs, ip) {
		e.IPs = append(e.IPs, ip)
	}
	if !accepted {
		return
	}
	e.Accepted++
	if e.FirstUsed.IsZero() || at.Before(e.FirstUsed) {
		e.FirstUsed = at
	}
	if !at.Before(e.LastUsed) {
		e.LastUsed, e.LastIP, e.LastAgent = at, ip, agent
	}
}

// outcome notes how a key's request ended: a render, or refused with an
// error code ("" for neither: a request that rendered nothing and failed
// nothing, such as /me).
func (u *usageRecorder) outcome(keyID int64, at time.Time, rendered bool, code string) {
	if !rendered && code == "" {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.slot(keyID, at)
	if rendered {
		e.Renders++
	}
	if code != "" {
		if e.Errors == nil {
			e.Errors = map[string]int64{}
		}
		e.Errors[code]++
	}
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
		out = append(out, *e)
	}
	clear(u.pending)
	return out
}

// restore puts usage back after a failed flush, so nothing is lost.
func (u *usageRecorder) restore(batch []account.KeyUsage) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, b := range batch {
		k := usageSlot{b.KeyID, account.DayStart(b.Day).Unix()}
		e := u.pending[k]
		if e == nil {
			c := b
			c.IPs, c.Errors = slices.Clone(b.IPs), maps.Clone(b.Errors)
			u.pending[k] = &c
			continue
		}
		e.Requests += b.Requests
		e.Accepted += b.Accepted
		e.Renders += b.Renders
		for code, n := range b.Errors {
			if e.Errors == nil {
				e.Errors = map[string]int64{}
			}
			e.Errors[code] += n
		}
		for _, ip := range b.IPs {
			if len(e.IPs) < account.MaxDayIPs && !slices.Contains(e.IPs, ip) {
				e.IPs = append(e.IPs, ip)
			}
		}
		if !b.FirstUsed.IsZero() && (e.FirstUsed.IsZero() || b.FirstUsed.Before(e.FirstUsed)) {
			e.FirstUsed = b.FirstUsed
		}
		if b.LastUsed.After(e.LastUsed) {
			e.LastUsed, e.LastIP, e.LastAgent = b.LastUsed, b.LastIP, b.LastAgent
		}
	}
}

// overlay adds not-yet-flushed usage to keys read from the database, so the
// API Keys tab is exact at every moment.
func (u *usageRecorder) overlay(keys []account.APIKey) {
	byID := make(map[int64]*account.APIKey, len(keys))
	for i := range keys {
		byID[keys[i].ID] = &keys[i]
	}
	// One pass over the pending usage, which may hold every busy key of
	// the instance, under the lock the API's requests take too.
	u.mu.Lock()
	defer u.mu.Unlock()
	for slot, e := range u.pending {
		if k := byID[slot.key]; k != nil {
			k.RequestCount += e.Accepted
			if e.LastUsed.After(k.LastUsedAt) {
				k.LastUsedAt, k.LastIP, k.LastUserAgent = e.LastUsed.Truncate(time.Second), e.LastIP, e.LastAgent
			}
			if !e.FirstUsed.IsZero() && (k.FirstUsedAt.IsZero() || e.FirstUsed.Before(k.FirstUsedAt)) {
				k.FirstUsedAt = e.FirstUsed.Truncate(time.Second)
			}
		}
	}
}

// overlayKey is k with its usage not yet flushed.
func (u *usageRecorder) overlayKey(k account.APIKey) account.APIKey {
	one := []account.APIKey{k}
	u.overlay(one)
	return one[0]
}

// overlayDays adds a key's not-yet-flushed usage to its days read from
// the database, so its chart is exact at every moment.
func (u *usageRecorder) overlayDays(keyID int64, days []account.KeyDay) []account.KeyDay {
	u.mu.Lock()
	defer u.mu.Unlock()
	for slot, e := range u.pending {
		if slot.key != keyID {
			continue
		}
		i := slices.IndexFunc(days, func(d account.KeyDay) bool { return d.Day.Unix() == slot.day })
		if i < 0 {
			days = append(days, account.KeyDay{Day: time.Unix(slot.day, 0).UTC()})
			i = len(days) - 1
		}
		d := &days[i]
		d.Requests += e.Requests
		d.Renders += e.Renders
		for code, n := range e.Errors {
			d.Errors += n
			if d.ErrorsByCode == nil {
				d.ErrorsByCode = map[string]int64{}
			}
			d.ErrorsByCode[code] += n
		}
	}
	return days
}

func (s *Server) flushUsage(ctx context.Context) error {
	s.usage.flushing.Lock()
	defer s.usage.flushing.Unlock()
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
