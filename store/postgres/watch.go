package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"github.com/peekshot/peekshot/store"
)

const (
	// beatEvery is how often an instance sends itself a heartbeat through
	// the database, to know that its listening connection still hears.
	beatEvery = 200 * time.Millisecond
	// deafAfter is how long without hearing its own heartbeat an instance
	// stops trusting its caches: well within the 1 s in which a change
	// made elsewhere must be refused here.
	deafAfter = 600 * time.Millisecond
)

// Watch reports this instance's changes as it commits them, and listens on
// the changes channel (LISTEN, through pgxlisten, which reconnects after
// any failure) for each change another instance commits. The feed is live only while this instance hears
// its own heartbeats, sent every beatEvery through the pool: a listener
// that lost its connection, or that no longer hears (a dead server, a
// network gone silent), is noticed within deafAfter, and a reconnection
// is not live again before a heartbeat made it round, since notifications
// sent in between are lost.
func (s *Store) Watch(ctx context.Context, changed func(store.Change), live func(bool)) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	w := &watch{beat: "beat:" + hex.EncodeToString(b[:]), changed: changed, live: live}
	defer s.Subscribe(changed)()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { w.heartbeat(ctx, s) })
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			w.reconnecting()
			return pgx.ConnectConfig(ctx, s.config.Copy())
		},
		LogError:       func(context.Context, error) { w.reconnecting() },
		ReconnectDelay: 100 * time.Millisecond,
	}
	l.Handle(channel, pgxlisten.HandlerFunc(w.handle))
	_ = l.Listen(ctx) // returns when ctx ends
	cancel()
	wg.Wait()
}

type watch struct {
	beat    string
	changed func(store.Change)
	live    func(bool)

	mu      sync.Mutex
	heardAt time.Time // when this instance last heard its own heartbeat
	// sinceConnect is false from a (re)connection until the first
	// heartbeat heard on it.
	sinceConnect bool
	up           bool
}

func (w *watch) handle(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	if n.Payload == w.beat {
		w.mu.Lock()
		w.heardAt, w.sinceConnect = time.Now(), true
		w.mu.Unlock()
		w.check()
		return nil
	}
	if c, ok := decodeChange(n.Payload); ok {
		w.changed(c)
	}
	return nil
}

// reconnecting marks the feed down: what was sent while the listener
// reconnects is lost.
func (w *watch) reconnecting() {
	w.mu.Lock()
	w.sinceConnect = false
	w.mu.Unlock()
	w.check()
}

// check tells live about a change of state. The heartbeat and the
// listener both call it, so it reports under the lock: otherwise a
// live(true) decided just before the connection dropped could reach the
// cache after the live(false) that followed it, and the cache would be
// trusted while changes go unheard.
func (w *watch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	up := w.sinceConnect && time.Since(w.heardAt) < deafAfter
	if up != w.up {
		w.up = up
		w.live(up)
	}
}

func (w *watch) heartbeat(ctx context.Context, s *Store) {
	t := time.NewTicker(beatEvery)
	defer t.Stop()
	for {
		bctx, cancel := context.WithTimeout(ctx, deafAfter)
		_, _ = s.db.ExecContext(bctx, `SELECT pg_notify($1, $2)`, channel, w.beat)
		cancel()
		w.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
