package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

// CrossProcessLimit is how soon a change committed by one process must
// reach every other (SPEC §9: refused on the others within 1 second).
const CrossProcessLimit = time.Second

// Feed records what a store's Watch reports. As a store it is the store it
// wraps, except that Close leaves that store to its harness, so it can be
// handed to store.NewCached and the cache closed on its own.
type Feed struct {
	store.Store

	mu      sync.Mutex
	changes []store.Change
	lives   []bool
	downs   int
	hold    chan struct{} // when set, a live(false) report waits for it
	wake    chan struct{} // closed and replaced on every report
}

// NewFeed wraps s.
func NewFeed(s store.Store) *Feed { return &Feed{Store: s, wake: make(chan struct{})} }

// Watch watches the wrapped store, passing every report on and recording
// it once passed, so that a test that sees a report knows the cache has
// had it.
func (f *Feed) Watch(ctx context.Context, changed func(store.Change), live func(bool)) {
	f.Store.Watch(ctx, func(c store.Change) {
		changed(c)
		f.record(func() { f.changes = append(f.changes, c) })
	}, func(up bool) {
		if !up { // counted before the cache hears it: see Downs
			f.mu.Lock()
			f.downs++
			f.mu.Unlock()
		}
		live(up)
		f.record(func() { f.lives = append(f.lives, up) })
		f.mu.Lock()
		hold := f.hold
		f.mu.Unlock()
		if !up && hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
		}
	})
}

// Close leaves the wrapped store open.
func (f *Feed) Close() error { return nil }

func (f *Feed) record(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	close(f.wake)
	f.wake = make(chan struct{})
}

// Lives is every live report so far.
func (f *Feed) Lives() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.lives...)
}

// Changes is every change reported so far.
func (f *Feed) Changes() []store.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Change(nil), f.changes...)
}

// Hold makes live(false) reports wait, once passed on, until release is
// called: the watcher that made one is stuck, so the feed stays down,
// however soon it could come back, for as long as a test needs it down.
func (f *Feed) Hold() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hold = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.hold = nil
			f.mu.Unlock()
			close(ch)
		})
	}
}

// WaitFor waits until cond holds of the reports, or fails after limit,
// and returns how long it took.
func (f *Feed) WaitFor(t testing.TB, limit time.Duration, what string, cond func(lives []bool, changes []store.Change) bool) time.Duration {
	t.Helper()
	begin := time.Now()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok := cond(f.lives, f.changes)
		wake := f.wake
		f.mu.Unlock()
		if ok {
			return time.Since(begin)
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: not within %v (live reports %v)", what, limit, f.Lives())
		}
	}
}

// WaitLive waits until the last live report is up, or fails after limit.
func (f *Feed) WaitLive(t testing.TB, up bool, limit time.Duration) time.Duration {
	t.Helper()
	return f.WaitFor(t, limit, fmt.Sprintf("live(%t)", up), func(lives []bool, _ []store.Change) bool {
		return len(lives) > 0 && lives[len(lives)-1] == up
	})
}

// Downs counts the live(false) reports so far, each from the moment it is
// made: a read that may have met an emptied cache comes after a change of
// Downs.
func (f *Feed) Downs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downs
}

// Watching starts watching s as a cache would until the test ends, and
// waits until the feed is live.
func Watching(t testing.TB, s store.Store) *Feed {
	t.Helper()
	f := NewFeed(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Watch(ctx, func(store.Change) {}, func(bool) {})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return when its context ended")
		}
	})
	f.WaitLive(t, true, 10*time.Second)
	return f
}

// Cache is s behind store.NewCached on the harness's clock, with the feed
// that reports to it, closed when the test ends. It returns once the cache
// is live.
func Cache(t testing.TB, h *Harness, s store.Store) (*store.Cached, *Feed) {
	t.Helper()
	f := NewFeed(s)
	c := store.NewCached(f, h.Clock.Now)
	t.Cleanup(func() { c.Close() })
	f.WaitLive(t, true, 10*time.Second)
	return c, f
}

// FromMemory proves that read is answered from memory: it reads once,
// changes what it read behind the store's back (no change announced), and
// reads again expecting the first answer. A feed that goes down meanwhile
// empties the cache, as it must (a busy machine may miss a heartbeat);
// then it tries again.
func FromMemory(t testing.TB, f *Feed, read func() any, behindTheBack func(try int)) {
	t.Helper()
	for try := range 5 {
		f.WaitLive(t, true, 10*time.Second)
		downs := f.Downs()
		first := read()
		behindTheBack(try)
		second := read()
		if f.Downs() != downs {
			t.Logf("the feed went down during try %d; again", try)
			continue
		}
		if first != second {
			t.Fatalf("read %+v, then %+v: not from memory", first, second)
		}
		return
	}
	t.Fatal("the feed never stayed live long enough")
}

func hasChange(want store.Change) func([]bool, []store.Change) bool {
	return func(_ []bool, changes []store.Change) bool {
		for _, c := range changes {
			if c == want {
				return true
			}
		}
		return false
	}
}

// writes is every use case that changes what a cache may hold, with the
// change it announces.
func writes(h *Harness) []struct {
	name string
	do   func(t *testing.T, s store.Store) store.Change
} {
	return append([]struct {
		name string
		do   func(t *testing.T, s store.Store) store.Change
	}{
		{"SetAPIKeyActive", func(t *testing.T, s store.Store) store.Change {
			ctx := t.Context()
			u := NewUser(t, h.Store)
			k, _ := NewKey(t, h.Store, u.ID, "")
			if _, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
				t.Fatal(err)
			}
			return store.Change{KeyID: k.ID, UserID: u.ID}
		}},
		{"RotateAPIKey", func(t *testing.T, s store.Store) store.Change {
			ctx := t.Context()
			u := NewUser(t, h.Store)
			k, _ := NewKey(t, h.Store, u.ID, "")
			if _, _, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{}); err != nil {
				t.Fatal(err)
			}
			return store.Change{KeyID: k.ID, UserID: u.ID}
		}},
		{"DeleteAPIKey", func(t *testing.T, s store.Store) store.Change {
			ctx := t.Context()
			u := NewUser(t, h.Store)
			k, _ := NewKey(t, h.Store, u.ID, "")
			if err := s.DeleteAPIKey(ctx, u.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			return store.Change{KeyID: k.ID, UserID: u.ID}
		}},
		{"ChargeRender", func(t *testing.T, s store.Store) store.Change {
			ctx := t.Context()
			u, k := renderUser(t, h, 5)
			r, err := h.Store.AdmitRender(ctx, admission(u, k))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ChargeRender(ctx, r); err != nil {
				t.Fatal(err)
			}
			return store.Change{UserID: u.ID}
		}},
		{"RedeemCoupon", func(t *testing.T, s store.Store) store.Change {
			ctx := t.Context()
			u := NewUser(t, h.Store)
			c := newCoupon(t, h.Store, account.NewCoupon{Code: fmt.Sprintf("WATCHED-%d", userSeq.Add(1)), Credits: 5})
			if _, _, err := s.RedeemCoupon(ctx, u.ID, c.Code); err != nil {
				t.Fatal(err)
			}
			return store.Change{UserID: u.ID}
		}},
		{"DeleteUser", func(t *testing.T, s store.Store) store.Change {
			ctx := t.Context()
			u := NewUser(t, h.Store)
			NewKey(t, h.Store, u.ID, "")
			if err := s.DeleteUser(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
			return store.Change{UserID: u.ID, AllKeys: true}
		}},
	}, signingWrites(h)...)
}

func testWatch(t *testing.T, h *Harness) {
	f := Watching(t, h.Store)
	if lives := f.Lives(); len(lives) == 0 || !lives[0] {
		t.Fatalf("the first report is %v, want live(true)", lives)
	}
	other := h.Again()
	t.Run("OwnChangeBeforeTheWriteReturns", func(t *testing.T) {
		for _, w := range writes(h) {
			t.Run(w.name, func(t *testing.T) {
				want := w.do(t, h.Store)
				if !hasChange(want)(nil, f.Changes()) {
					t.Fatalf("%+v not reported when the write returned", want)
				}
			})
		}
	})
	t.Run("OtherProcessWithin1s", func(t *testing.T) {
		for _, w := range writes(h) {
			t.Run(w.name, func(t *testing.T) {
				want := w.do(t, other)
				latency := f.WaitFor(t, CrossProcessLimit, "a change made by another process", hasChange(want))
				t.Logf("%s watch latency (%s, other process): %v", h.Dialect, w.name, latency)
			})
		}
	})
	t.Run("EndsWithItsContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		g := NewFeed(h.Store)
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.Watch(ctx, func(store.Change) {}, func(bool) {})
		}()
		g.WaitLive(t, true, 10*time.Second)
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not return")
		}
	})
	if downs := f.Downs(); downs != 0 {
		t.Logf("the feed went down %d times (reports %v): a busy machine missed heartbeats", downs, f.Lives())
	}
}

func testCached(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	other := h.Again()
	c, f := Cache(t, h, s)

	t.Run("KeyFromMemory", func(t *testing.T) {
		u := NewUser(t, s)
		k, plain := NewKey(t, s, u.ID, "cached")
		FromMemory(t, f, func() any {
			got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
			if err != nil {
				t.Fatal(err)
			}
			return got.Label
		}, func(i int) {
			if err := h.Exec(`UPDATE api_keys SET label = ? WHERE id = ?`, "changed behind its back", k.ID); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("EmailAndCreditsFromMemory", func(t *testing.T) {
		u := NewUser(t, s)
		FromMemory(t, f, func() any {
			_, credits, err := c.EmailAndCredits(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			return credits
		}, func(i int) {
			SetBalance(t, h, u.ID, int64(i+1))
		})
	})
	t.Run("UnknownKeyNotRemembered", func(t *testing.T) {
		u := NewUser(t, s)
		plain := MustKey(t)
		if _, err := c.APIKeyByHash(ctx, apikey.HashOf(plain)); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		k, err := other.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: plain})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || got.ID != k.ID {
			t.Fatalf("a key created elsewhere after a miss: %+v %v", got, err)
		}
	})

	// Each change is seen at once through the cache's own store, and
	// within CrossProcessLimit through another process's.
	for _, via := range []struct {
		name  string
		store func() store.Store
		limit time.Duration
	}{{"SameStore", func() store.Store { return c }, 0}, {"OtherProcess", func() store.Store { return other }, CrossProcessLimit}} {
		t.Run(via.name, func(t *testing.T) {
			// seen waits for cond, at once or within via.limit.
			seen := func(t *testing.T, what string, cond func() bool) {
				t.Helper()
				if via.limit == 0 {
					if !cond() {
						t.Fatalf("%s: not seen at once", what)
					}
					return
				}
				latency := within(t, via.limit, what, cond)
				t.Logf("%s cache invalidation latency (%s, other process): %v", h.Dialect, what, latency)
			}
			t.Run("Deactivate", func(t *testing.T) {
				u := NewUser(t, s)
				k, plain := NewKey(t, s, u.ID, "")
				if got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || !got.Works(h.Clock.Now()) {
					t.Fatalf("%+v %v", got, err)
				}
				if _, err := via.store().SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
					t.Fatal(err)
				}
				seen(t, "deactivated", func() bool {
					got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
					return err == nil && !got.Active
				})
				if _, err := via.store().SetAPIKeyActive(ctx, u.ID, k.ID, true); err != nil {
					t.Fatal(err)
				}
				seen(t, "activated", func() bool {
					got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
					return err == nil && got.Active
				})
			})
			t.Run("Rotate", func(t *testing.T) {
				u := NewUser(t, s)
				k, plain := NewKey(t, s, u.ID, "")
				keyByPlain(t, c, plain)
				if _, _, err := via.store().RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{}); err != nil {
					t.Fatal(err)
				}
				seen(t, "retired", func() bool {
					got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
					return err == nil && got.Status(h.Clock.Now()) == account.KeyExpired
				})
			})
			t.Run("Delete", func(t *testing.T) {
				u := NewUser(t, s)
				k, plain := NewKey(t, s, u.ID, "")
				keyByPlain(t, c, plain)
				if err := via.store().DeleteAPIKey(ctx, u.ID, k.ID); err != nil {
					t.Fatal(err)
				}
				seen(t, "deleted", func() bool {
					_, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
					return errors.Is(err, account.ErrNotFound)
				})
			})
			t.Run("DeleteUser", func(t *testing.T) {
				u := NewUser(t, s)
				_, plain := NewKey(t, s, u.ID, "")
				keyByPlain(t, c, plain)
				if _, _, err := c.EmailAndCredits(ctx, u.ID); err != nil {
					t.Fatal(err)
				}
				if err := via.store().DeleteUser(ctx, u.ID); err != nil {
					t.Fatal(err)
				}
				seen(t, "account deleted", func() bool {
					_, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
					_, _, err2 := c.EmailAndCredits(ctx, u.ID)
					return errors.Is(err, account.ErrNotFound) && errors.Is(err2, account.ErrNotFound)
				})
			})
			t.Run("ChargeRender", func(t *testing.T) {
				u, k := renderUser(t, h, 5)
				if _, credits, err := c.EmailAndCredits(ctx, u.ID); err != nil || credits != 5 {
					t.Fatalf("%d %v", credits, err)
				}
				r, err := via.store().AdmitRender(ctx, admission(u, k))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := via.store().ChargeRender(ctx, r); err != nil {
					t.Fatal(err)
				}
				seen(t, "charged", func() bool {
					_, credits, err := c.EmailAndCredits(ctx, u.ID)
					return err == nil && credits == 4
				})
			})
			t.Run("RotateSigningSecret", func(t *testing.T) {
				u := NewUser(t, s)
				k, _ := NewKey(t, s, u.ID, "")
				first, _ := newSigningSecret(t, 7)
				if _, _, err := s.SetSigningSecret(ctx, u.ID, k.ID, first); err != nil {
					t.Fatal(err)
				}
				if got, err := c.SignedLinkKey(ctx, k.ID); err != nil || !bytes.Equal(got.Sealed, first.Sealed) {
					t.Fatalf("%+v %v", got, err)
				}
				next, _ := newSigningSecret(t, 8)
				if _, _, err := via.store().SetSigningSecret(ctx, u.ID, k.ID, next); err != nil {
					t.Fatal(err)
				}
				seen(t, "signing secret rotated", func() bool {
					got, err := c.SignedLinkKey(ctx, k.ID)
					return err == nil && bytes.Equal(got.Sealed, next.Sealed)
				})
				if _, err := via.store().SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
					t.Fatal(err)
				}
				seen(t, "signed link key deactivated", func() bool {
					got, err := c.SignedLinkKey(ctx, k.ID)
					return err == nil && !got.Key.Active
				})
				if err := via.store().DeleteUser(ctx, u.ID); err != nil {
					t.Fatal(err)
				}
				seen(t, "signed link key's account deleted", func() bool {
					_, err := c.SignedLinkKey(ctx, k.ID)
					return errors.Is(err, account.ErrNotFound)
				})
			})
			t.Run("ReportLeakedKey", func(t *testing.T) {
				u := NewUser(t, s)
				_, plain := NewKey(t, s, u.ID, "")
				keyByPlain(t, c, plain)
				if _, err := via.store().ReportLeakedKey(ctx, apikey.HashOf(plain), account.Leak{URL: "https://example.com/leak"}); err != nil {
					t.Fatal(err)
				}
				seen(t, "reported leaked", func() bool {
					got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
					return err == nil && !got.Active
				})
			})
			t.Run("RedeemCoupon", func(t *testing.T) {
				u := NewUser(t, s)
				code := newCoupon(t, s, account.NewCoupon{Code: "CACHED-" + via.name, Credits: 7}).Code
				if _, _, err := c.EmailAndCredits(ctx, u.ID); err != nil {
					t.Fatal(err)
				}
				if _, _, err := via.store().RedeemCoupon(ctx, u.ID, code); err != nil {
					t.Fatal(err)
				}
				seen(t, "redeemed", func() bool {
					_, credits, err := c.EmailAndCredits(ctx, u.ID)
					return err == nil && credits == account.SignupCredits+7
				})
			})
		})
	}
	t.Run("SignedLinkKeyFromMemory", func(t *testing.T) {
		u := NewUser(t, s)
		k, _ := NewKey(t, s, u.ID, "")
		// Stored behind the store's back, so that no announcement of it
		// (PostgreSQL sends this process its own too, a moment later)
		// comes between the two reads.
		if err := h.Exec(`INSERT INTO key_signing_secrets (api_key_id, prefix, last4, sealed, created_at) VALUES (?, ?, ?, ?, ?)`,
			k.ID, "pss_abcd", "wxyz", bytes.Repeat([]byte{'s'}, 70), h.Clock.Now().Unix()); err != nil {
			t.Fatal(err)
		}
		FromMemory(t, f, func() any {
			got, err := c.SignedLinkKey(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			return string(got.Sealed)
		}, func(i int) {
			if err := h.Exec(`UPDATE key_signing_secrets SET sealed = ? WHERE api_key_id = ?`, bytes.Repeat([]byte{byte(100 + i)}, 70), k.ID); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("NoUsage", func(t *testing.T) {
		u := NewUser(t, s)
		k, plain := NewKey(t, s, u.ID, "")
		if err := s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: h.Clock.Now(), Requests: 3, Accepted: 3, FirstUsed: h.Clock.Now(), LastUsed: h.Clock.Now()}}); err != nil {
			t.Fatal(err)
		}
		if got := keyByPlain(t, c, plain); got.RequestCount != 0 || !got.LastUsedAt.IsZero() {
			t.Fatalf("the cache serves usage: %+v", got)
		}
	})
}
