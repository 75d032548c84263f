package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

func testAPIKeys(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	alice, bob := NewUser(t, s), NewUser(t, s)
	k1, plain1 := NewKey(t, s, alice.ID, "Server-side app")
	clk.Add(time.Second)
	k2, _ := NewKey(t, s, alice.ID, "")

	t.Run("StoredFields", func(t *testing.T) {
		if k1.ID == 0 || k1.UserID != alice.ID || k1.Label != "Server-side app" || k1.Prefix != plain1[:8] ||
			k1.Last4 != plain1[len(plain1)-4:] || !k1.Active || !k1.CreatedAt.Equal(Start) {
			t.Fatalf("%+v", k1)
		}
		if !k1.ExpiresAt.IsZero() || !k1.RotatedAt.IsZero() || !k1.RetiresAt.IsZero() || k1.ReplacedBy != 0 ||
			!k1.LastUsedAt.IsZero() || k1.RequestCount != 0 {
			t.Fatalf("a new key is not plain: %+v", k1)
		}
		if k1.Masked() != apikey.MaskKey(plain1) {
			t.Fatalf("masked %q", k1.Masked())
		}
		if got, err := s.APIKey(ctx, alice.ID, k1.ID); err != nil || !sameKey(got, k1) {
			t.Fatalf("stored %+v %v, created %+v", got, err, k1)
		}
		if k1.Status(clk.Now()) != account.KeyActive {
			t.Fatalf("status %v", k1.Status(clk.Now()))
		}
	})
	t.Run("ListNewestFirst", func(t *testing.T) {
		keys, err := s.APIKeys(ctx, alice.ID)
		if err != nil || len(keys) != 2 || !sameKey(keys[0], k2) || !sameKey(keys[1], k1) {
			t.Fatalf("%+v %v", keys, err)
		}
		if keys, err := s.APIKeys(ctx, bob.ID); err != nil || len(keys) != 0 {
			t.Fatalf("bob sees %d keys (%v)", len(keys), err)
		}
	})
	t.Run("ByHash", func(t *testing.T) {
		got, err := s.APIKeyByHash(ctx, apikey.HashOf(plain1))
		if err != nil || got.ID != k1.ID || got.UserID != alice.ID || got.Label != k1.Label || got.Prefix != k1.Prefix ||
			got.Last4 != k1.Last4 || !got.Active || !got.ExpiresAt.IsZero() || !got.RetiresAt.IsZero() {
			t.Fatalf("%+v %v", got, err)
		}
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(MustKey(t))); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	})
	t.Run("ByIDForOperators", func(t *testing.T) {
		// The operator's command line finds any user's key by its id,
		// with whose it is.
		got, err := s.APIKeyByID(ctx, k1.ID)
		if err != nil || !sameKey(got, k1) || got.UserID != alice.ID || !got.Policy.HasScope(account.ScopeScreenshots) {
			t.Fatalf("%+v %v, want %+v", got, err, k1)
		}
		if got, err := s.APIKeyByID(ctx, k2.ID); err != nil || got.ID != k2.ID || got.UserID != alice.ID {
			t.Fatalf("%+v %v", got, err)
		}
		for _, id := range []int64{k2.ID + 1000, 0, -1} {
			if _, err := s.APIKeyByID(ctx, id); !errors.Is(err, account.ErrNotFound) {
				t.Errorf("no key %d: %v", id, err)
			}
		}
		doomed, _ := NewKey(t, s, bob.ID, "doomed")
		if err := s.DeleteAPIKey(ctx, bob.ID, doomed.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKeyByID(ctx, doomed.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("deleted key: %v", err)
		}
	})
	t.Run("OwnershipEnforced", func(t *testing.T) {
		before, _ := s.APIKeys(ctx, alice.ID)
		rows := h.Int(t, `SELECT count(*) FROM api_keys`)
		next := MustKey(t)
		for _, tc := range []struct {
			name string
			do   func(keyID int64) error
		}{
			{"Read", func(id int64) error { _, err := s.APIKey(ctx, bob.ID, id); return err }},
			{"Deactivate", func(id int64) error { _, err := s.SetAPIKeyActive(ctx, bob.ID, id, false); return err }},
			{"Activate", func(id int64) error { _, err := s.SetAPIKeyActive(ctx, bob.ID, id, true); return err }},
			{"Rotate", func(id int64) error {
				_, _, err := s.RotateAPIKey(ctx, bob.ID, id, next, account.Grace{For: time.Hour})
				return err
			}},
			{"RotateNow", func(id int64) error { _, _, err := s.RotateAPIKey(ctx, bob.ID, id, next, account.Grace{}); return err }},
			{"Delete", func(id int64) error { return s.DeleteAPIKey(ctx, bob.ID, id) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.do(k1.ID); !errors.Is(err, account.ErrNotFound) {
					t.Errorf("alice's key: %v", err)
				}
				if err := tc.do(k2.ID + 1000); !errors.Is(err, account.ErrNotFound) {
					t.Errorf("no such key: %v", err)
				}
			})
		}
		after, _ := s.APIKeys(ctx, alice.ID)
		if len(after) != len(before) {
			t.Fatalf("alice has %d keys, had %d", len(after), len(before))
		}
		for i := range after {
			if !sameKey(after[i], before[i]) {
				t.Fatalf("alice's key changed by bob: %+v, was %+v", after[i], before[i])
			}
		}
		if keys, _ := s.APIKeys(ctx, bob.ID); len(keys) != 0 {
			t.Fatalf("bob's failed rotations created %d keys", len(keys))
		}
		if n := h.Int(t, `SELECT count(*) FROM api_keys`); n != rows {
			t.Fatalf("%d keys stored, %d before", n, rows)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		k, plain := NewKey(t, s, alice.ID, "doomed")
		if err := s.DeleteAPIKey(ctx, alice.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKey(ctx, alice.ID, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("read: %v", err)
		}
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("by hash: %v", err)
		}
		if err := s.DeleteAPIKey(ctx, alice.ID, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if keys, _ := s.APIKeys(ctx, alice.ID); len(keys) != 2 {
			t.Fatalf("%d keys left, want 2", len(keys))
		}
	})
	t.Run("CountActiveAPIKeys", func(t *testing.T) {
		u := NewUser(t, s)
		if n, err := s.CountActiveAPIKeys(ctx, u.ID); err != nil || n != 0 {
			t.Fatalf("%d %v", n, err)
		}
		NewKey(t, s, u.ID, "active")
		inactive, _ := NewKey(t, s, u.ID, "inactive")
		if _, err := s.SetAPIKeyActive(ctx, u.ID, inactive.ID, false); err != nil {
			t.Fatal(err)
		}
		retiring, _ := NewKey(t, s, u.ID, "retiring") // and its replacement
		if _, _, err := s.RotateAPIKey(ctx, u.ID, retiring.ID, MustKey(t), account.Grace{For: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if log, _ := s.Activity(ctx, u.ID, account.ActivityFilter{KeyID: retiring.ID, Event: account.EventKeyRotated}); len(log) != 1 ||
			!strings.HasSuffix(log[0].Detail, "works for another 1 hour") {
			t.Fatalf("the rotation's activity: %+v", log)
		}
		retired, _ := NewKey(t, s, u.ID, "retired") // and its replacement
		if _, _, err := s.RotateAPIKey(ctx, u.ID, retired.ID, MustKey(t), account.Grace{}); err != nil {
			t.Fatal(err)
		}
		expired, _ := NewKey(t, s, u.ID, "expired")
		setExpiry(t, h, expired.ID, clk.Now())
		// active, retiring and two replacements work.
		if n, err := s.CountActiveAPIKeys(ctx, u.ID); err != nil || n != 4 {
			t.Fatalf("%d active keys (%v), want 4", n, err)
		}
		clk.Add(time.Hour)
		defer clk.Add(-time.Hour)
		if n, err := s.CountActiveAPIKeys(ctx, u.ID); err != nil || n != 3 {
			t.Fatalf("%d active keys after the grace period (%v), want 3", n, err)
		}
	})
}

// setExpiry gives a key an expiry chosen by its owner, through Raw: the
// contract has no setter for it yet.
func setExpiry(t testing.TB, h *Harness, keyID int64, at time.Time) {
	t.Helper()
	if err := h.Exec(`UPDATE api_keys SET expires_at = ? WHERE id = ?`, at.Unix(), keyID); err != nil {
		t.Fatal(err)
	}
}

func testAPIKeyActivation(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u := NewUser(t, s)
	t.Run("DeactivateActivate", func(t *testing.T) {
		k, plain := NewKey(t, s, u.ID, "toggled")
		got, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false)
		if err != nil || got.Active || got.ID != k.ID || got.Label != k.Label || got.Status(clk.Now()) != account.KeyInactive {
			t.Fatalf("%+v %v", got, err)
		}
		if byHash, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || byHash.Active || byHash.Works(clk.Now()) {
			t.Fatalf("a deactivated key authenticates: %+v %v", byHash, err)
		}
		if again, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil || again.Active {
			t.Fatalf("second deactivation: %+v %v", again, err)
		}
		got, err = s.SetAPIKeyActive(ctx, u.ID, k.ID, true)
		if err != nil || !got.Active || got.Status(clk.Now()) != account.KeyActive {
			t.Fatalf("%+v %v", got, err)
		}
		if stored, _ := s.APIKey(ctx, u.ID, k.ID); !sameKey(stored, got) {
			t.Fatalf("stored %+v, returned %+v", stored, got)
		}
	})
	for _, tc := range []struct {
		name   string
		expire func(t *testing.T, k account.APIKey) account.APIKey
	}{
		{"PastItsExpiry", func(t *testing.T, k account.APIKey) account.APIKey {
			setExpiry(t, h, k.ID, clk.Now())
			got, _ := s.APIKey(ctx, u.ID, k.ID)
			return got
		}},
		{"RotatedNow", func(t *testing.T, k account.APIKey) account.APIKey {
			old, _, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{})
			if err != nil {
				t.Fatal(err)
			}
			return old
		}},
	} {
		t.Run("ErrKeyExpired"+tc.name, func(t *testing.T) {
			k, plain := NewKey(t, s, u.ID, "expiring")
			if _, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
				t.Fatal(err)
			}
			k = tc.expire(t, k)
			if k.Status(clk.Now()) != account.KeyExpired {
				t.Fatalf("status %v, want expired", k.Status(clk.Now()))
			}
			if _, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, true); !errors.Is(err, account.ErrKeyExpired) {
				t.Fatalf("activating an expired key: %v", err)
			}
			if got, _ := s.APIKey(ctx, u.ID, k.ID); !sameKey(got, k) {
				t.Fatalf("a refused activation changed %+v into %+v", k, got)
			}
			if byHash, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || byHash.Works(clk.Now()) {
				t.Fatalf("an expired key authenticates: %+v %v", byHash, err)
			}
			// Deactivating it stays possible (and harmless).
			if got, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil || got.Active {
				t.Fatalf("deactivating an expired key: %+v %v", got, err)
			}
		})
	}
}

func testAPIKeyRotation(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u := NewUser(t, s)
	t.Run("WithGrace", func(t *testing.T) {
		k, plain := NewKey(t, s, u.ID, "Server-side app")
		clk.Add(time.Minute)
		now := clk.Now()
		next := MustKey(t)
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, next, account.Grace{For: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if repl.ID <= k.ID || repl.UserID != u.ID || repl.Label != "Server-side app" || repl.Prefix != next[:8] ||
			repl.Last4 != next[len(next)-4:] || !repl.Active || !repl.CreatedAt.Equal(now) || repl.Rotated() {
			t.Fatalf("replacement %+v", repl)
		}
		if old.ID != k.ID || old.ReplacedBy != repl.ID || !old.RotatedAt.Equal(now) || !old.RetiresAt.Equal(now.Add(24*time.Hour)) ||
			!old.ExpiresAt.IsZero() || !old.Active || !old.CreatedAt.Equal(k.CreatedAt) {
			t.Fatalf("old %+v", old)
		}
		if stored, _ := s.APIKey(ctx, u.ID, k.ID); !sameKey(stored, old) {
			t.Fatalf("stored %+v, returned %+v", stored, old)
		}
		if stored, _ := s.APIKey(ctx, u.ID, repl.ID); !sameKey(stored, repl) {
			t.Fatalf("stored %+v, returned %+v", stored, repl)
		}
		byHash, err := s.APIKeyByHash(ctx, apikey.HashOf(plain))
		if err != nil || !byHash.RetiresAt.Equal(old.RetiresAt) || !byHash.ExpiresAt.IsZero() {
			t.Fatalf("old key by hash %+v %v", byHash, err)
		}
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(next)); err != nil {
			t.Fatalf("replacement by hash: %v", err)
		}
		for _, tc := range []struct {
			at   time.Duration
			want account.KeyStatus
		}{{0, account.KeyRetiring}, {24*time.Hour - time.Second, account.KeyRetiring}, {24 * time.Hour, account.KeyExpired}} {
			if got := byHash.Status(now.Add(tc.at)); got != tc.want {
				t.Errorf("status %v after %v, want %v", got, tc.at, tc.want)
			}
		}
		if !byHash.Works(now) || byHash.Works(now.Add(24*time.Hour)) {
			t.Fatal("the old key does not work exactly for its grace period")
		}
		if keys, _ := s.APIKeys(ctx, u.ID); len(keys) != 2 || keys[0].ID != repl.ID {
			t.Fatalf("list %+v", keys)
		}
		t.Run("ErrAlreadyRotated", func(t *testing.T) {
			if _, _, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{For: time.Hour}); !errors.Is(err, account.ErrAlreadyRotated) {
				t.Fatalf("second rotation: %v", err)
			}
			if got, _ := s.APIKey(ctx, u.ID, k.ID); !sameKey(got, old) {
				t.Fatalf("a refused rotation changed %+v into %+v", old, got)
			}
			if keys, _ := s.APIKeys(ctx, u.ID); len(keys) != 2 {
				t.Fatalf("a refused rotation made a key: %d", len(keys))
			}
		})
		t.Run("ErrKeyExpiredAfterGrace", func(t *testing.T) {
			clk.Add(24 * time.Hour)
			defer clk.Add(-24 * time.Hour)
			if _, _, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{For: time.Hour}); !errors.Is(err, account.ErrKeyExpired) {
				t.Fatalf("rotating a retired key: %v", err)
			}
		})
	})
	t.Run("Now", func(t *testing.T) {
		k, _ := NewKey(t, s, u.ID, "")
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{})
		if err != nil || old.Status(clk.Now()) != account.KeyExpired || !old.RetiresAt.Equal(clk.Now()) || !old.RotatedAt.Equal(clk.Now()) {
			t.Fatalf("%+v %v", old, err)
		}
		if repl.Status(clk.Now()) != account.KeyActive {
			t.Fatalf("replacement status %v", repl.Status(clk.Now()))
		}
	})
	t.Run("ErrKeyExpired", func(t *testing.T) {
		k, _ := NewKey(t, s, u.ID, "")
		setExpiry(t, h, k.ID, clk.Now())
		before := h.Int(t, `SELECT count(*) FROM api_keys`)
		if _, _, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{For: time.Hour}); !errors.Is(err, account.ErrKeyExpired) {
			t.Fatalf("rotating an expired key: %v", err)
		}
		if n := h.Int(t, `SELECT count(*) FROM api_keys`); n != before {
			t.Fatal("a refused rotation made a key")
		}
	})
	t.Run("InactiveKeyKeepsItsState", func(t *testing.T) {
		k, _ := NewKey(t, s, u.ID, "off")
		if _, err := s.SetAPIKeyActive(ctx, u.ID, k.ID, false); err != nil {
			t.Fatal(err)
		}
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{For: time.Hour})
		if err != nil || old.Active || old.Status(clk.Now()) != account.KeyInactive || !repl.Active {
			t.Fatalf("old %+v new %+v %v", old, repl, err)
		}
	})
}

func testAPIKeyUsage(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u := NewUser(t, s)
	k, _ := NewKey(t, s, u.ID, "")
	other := h.Again()
	at := clk.Now().Add(time.Minute)
	t.Run("Additive", func(t *testing.T) {
		if err := s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: at, Requests: 3, Accepted: 3, FirstUsed: at, LastUsed: at}, {KeyID: k.ID + 1000, Day: at, Requests: 1, Accepted: 1, FirstUsed: at, LastUsed: at}}); err != nil {
			t.Fatalf("a flush with a deleted key: %v", err)
		}
		got, _ := s.APIKey(ctx, u.ID, k.ID)
		if got.RequestCount != 3 || !got.LastUsedAt.Equal(at) {
			t.Fatalf("%+v", got)
		}
		// Another server's flush adds to it; its older last use does not
		// move the time back.
		if err := other.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: at.Add(-time.Hour), Requests: 2, Accepted: 2, FirstUsed: at.Add(-time.Hour), LastUsed: at.Add(-time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.APIKey(ctx, u.ID, k.ID)
		if got.RequestCount != 5 || !got.LastUsedAt.Equal(at) {
			t.Fatalf("last used went backwards or count wrong: %+v", got)
		}
		// ... but its earlier first use is the key's first use.
		if !got.FirstUsedAt.Equal(at.Add(-time.Hour)) {
			t.Fatalf("first used %v, want the earlier %v", got.FirstUsedAt, at.Add(-time.Hour))
		}
		if err := s.RecordAPIKeyUsage(ctx, nil); err != nil {
			t.Fatalf("an empty flush: %v", err)
		}
	})
	t.Run("RacingFlushesAddUp", func(t *testing.T) {
		before, _ := s.APIKey(ctx, u.ID, k.ID)
		ss := []store.Store{s, other}
		race(t, 40, func(i int) error {
			return ss[i%2].RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: at.Add(time.Duration(i) * time.Second), Requests: int64(i + 1), Accepted: int64(i + 1), FirstUsed: at.Add(time.Duration(i) * time.Second), LastUsed: at.Add(time.Duration(i) * time.Second)}})
		}, nil)
		got, _ := s.APIKey(ctx, u.ID, k.ID)
		if got.RequestCount != before.RequestCount+40*41/2 || !got.LastUsedAt.Equal(at.Add(39*time.Second)) {
			t.Fatalf("%d requests last used %v, want %d at %v", got.RequestCount, got.LastUsedAt, before.RequestCount+40*41/2, at.Add(39*time.Second))
		}
	})
	t.Run("NotInTheHotLookup", func(t *testing.T) {
		// Authentication reads no usage: a flush changes nothing it reads.
		_, plain := NewKey(t, s, u.ID, "")
		byHash, err := s.APIKeyByHash(ctx, apikey.HashOf(plain))
		if err != nil || !byHash.LastUsedAt.IsZero() || byHash.RequestCount != 0 {
			t.Fatalf("%+v %v", byHash, err)
		}
	})
}

// testAPIKeyIDs: deleting the newest key must not hand its id to the next
// key, which would inherit usage still counted for the old one (and its
// rate-limit bucket).
func testAPIKeyIDs(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	u := NewUser(t, s)
	other := h.Again()
	var last int64
	next := func(t *testing.T, st store.Store, what string) account.APIKey {
		t.Helper()
		k, _ := NewKey(t, st, u.ID, what)
		if k.ID <= last {
			t.Fatalf("%s got id %d after %d: reused", what, k.ID, last)
		}
		last = k.ID
		return k
	}
	for i, st := range []store.Store{s, s, other, s, other, other} {
		k := next(t, st, "created")
		if err := st.DeleteAPIKey(ctx, u.ID, k.ID); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	// Rotation draws from the same sequence.
	k := next(t, s, "rotated")
	_, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{})
	if err != nil || repl.ID <= k.ID {
		t.Fatalf("replacement id %d after %d: %v", repl.ID, k.ID, err)
	}
	last = repl.ID
	if err := s.DeleteAPIKey(ctx, u.ID, repl.ID); err != nil {
		t.Fatal(err)
	}
	next(t, other, "after the replacement")
	// Another user's next key too.
	v := NewUser(t, other)
	if kv, _ := NewKey(t, s, v.ID, ""); kv.ID <= last {
		t.Fatalf("another user's key got id %d after %d", kv.ID, last)
	}
}

func testAPIKeyLimit(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	t.Run("FiftyFirstRefused", func(t *testing.T) {
		u := NewUser(t, s)
		var first account.APIKey
		for i := range account.MaxAPIKeys {
			k, _ := NewKey(t, s, u.ID, "")
			if i == 0 {
				first = k
			}
		}
		if _, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t)}); !errors.Is(err, account.ErrKeyLimit) {
			t.Fatalf("51st key: %v", err)
		}
		// A deactivated key still counts.
		if _, err := s.SetAPIKeyActive(ctx, u.ID, first.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t)}); !errors.Is(err, account.ErrKeyLimit) {
			t.Fatalf("51st key with one inactive: %v", err)
		}
		if _, err := s.SetAPIKeyActive(ctx, u.ID, first.ID, true); err != nil {
			t.Fatal(err)
		}

		before, _ := s.APIKeys(ctx, u.ID)
		if _, _, err := s.RotateAPIKey(ctx, u.ID, first.ID, MustKey(t), account.Grace{For: time.Hour}); !errors.Is(err, account.ErrKeyLimit) {
			t.Fatalf("rotate with grace at the limit: %v", err)
		}
		after, _ := s.APIKeys(ctx, u.ID)
		if len(after) != len(before) {
			t.Fatalf("a refused rotation left %d keys, %d before", len(after), len(before))
		}
		for i := range after {
			if !sameKey(after[i], before[i]) {
				t.Fatalf("a refused rotation changed %+v into %+v", before[i], after[i])
			}
		}
		old, _, err := s.RotateAPIKey(ctx, u.ID, first.ID, MustKey(t), account.Grace{})
		if err != nil {
			t.Fatalf("rotate now at the limit should replace in place: %v", err)
		}
		if old.Live(h.Clock.Now()) {
			t.Fatal("the key rotated now still counts")
		}
		if keys, _ := s.APIKeys(ctx, u.ID); len(keys) != account.MaxAPIKeys+1 || account.LiveKeys(keys, h.Clock.Now()) != account.MaxAPIKeys {
			t.Fatalf("%d keys, %d live", len(keys), account.LiveKeys(keys, h.Clock.Now()))
		}
		if _, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: MustKey(t)}); !errors.Is(err, account.ErrKeyLimit) {
			t.Fatalf("51st live key after a rotation: %v", err)
		}
		t.Run("PerUser", func(t *testing.T) {
			other := NewUser(t, s)
			NewKey(t, s, other.ID, "limit is per user")
		})
	})
	t.Run("RacingCreatesNeverExceedIt", func(t *testing.T) {
		ss := stores(h, 2)
		for round := range raceRounds {
			u := NewUser(t, s)
			for range account.MaxAPIKeys - 5 {
				NewKey(t, s, u.ID, "")
			}
			plain := make([]string, 20)
			for i := range plain {
				plain[i] = MustKey(t)
			}
			var mu sync.Mutex
			made := map[int64]bool{}
			ok := race(t, len(plain), func(i int) error {
				k, err := ss[i%2].CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Key: plain[i]})
				if err == nil {
					mu.Lock()
					made[k.ID] = true
					mu.Unlock()
				}
				return err
			}, account.ErrKeyLimit)
			if ok != 5 || len(made) != 5 {
				t.Fatalf("round %d: %d racing creations succeeded (%d ids), want 5", round, ok, len(made))
			}
			if n, _ := s.CountActiveAPIKeys(ctx, u.ID); n != account.MaxAPIKeys {
				t.Fatalf("%d keys, the limit is %d", n, account.MaxAPIKeys)
			}
		}
	})
}

// keyByPlain reads a key the way the API does.
func keyByPlain(t testing.TB, s store.APIKeys, plain string) account.APIKey {
	t.Helper()
	k, err := s.APIKeyByHash(context.Background(), apikey.HashOf(plain))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
