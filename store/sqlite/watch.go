package sqlite

import (
	"context"
	"time"

	"github.com/peekshot/peekshot/store"
)

// pollEvery is how often Watch reads what other processes changed: the
// most a key changed by the command line is served from a cache.
const pollEvery = 100 * time.Millisecond

// Watch reports this process's changes as it commits them, and reads the
// changes table every pollEvery for what other processes (the command
// line) committed. The table keeps what a failed read missed, so the next
// read delivers it; until then the feed is not live.
func (s *Store) Watch(ctx context.Context, changed func(store.Change), live func(bool)) {
	defer s.Subscribe(changed)()
	var last int64
	for {
		if err := s.read.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM changes`).Scan(&last); err == nil {
			break
		}
		live(false)
		if !sleep(ctx, pollEvery) {
			return
		}
	}
	live(true)
	up := true
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := s.pollChanges(ctx, last, changed)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if up {
				live(false)
				up = false
			}
		default:
			last = next
			if !up {
				live(true)
				up = true
			}
		}
	}
}

// pollChanges delivers the changes after seq and returns the last one seen.
func (s *Store) pollChanges(ctx context.Context, seq int64, changed func(store.Change)) (int64, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT seq, coalesce(key_id, 0), coalesce(user_id, 0), all_keys FROM changes WHERE seq > ? ORDER BY seq`, seq)
	if err != nil {
		return seq, err
	}
	defer rows.Close()
	for rows.Next() {
		var c store.Change
		if err := rows.Scan(&seq, &c.KeyID, &c.UserID, &c.AllKeys); err != nil {
			return seq, err
		}
		changed(c)
	}
	return seq, rows.Err()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
