package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peekshot/peekshot/apikey"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openTest(t testing.TB) (*Store, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

var userSeq atomic.Int64

func newUser(t testing.TB, s *Store) User {
	t.Helper()
	n := userSeq.Add(1)
	u, err := s.CreateUser(context.Background(), NewUser{
		Email: "user" + string(rune('a'+n%26)) + time.Now().Format("150405.000000000") + "@example.com",
		Name:  "User", PasswordHash: "$2a$10$hash",
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newKey(t testing.TB, s *Store, userID int64, label string) (APIKey, string) {
	t.Helper()
	plain, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateAPIKey(context.Background(), NewAPIKey{UserID: userID, Label: label, Key: plain})
	if err != nil {
		t.Fatal(err)
	}
	return k, plain
}

func assertLedgerBalanced(t testing.TB, s *Store) {
	t.Helper()
	bad, err := s.LedgerMismatches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("balances differ from their ledger sums for users %v", bad)
	}
}

func TestOpenMigratesOnceAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "peekshot.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := newUser(t, s)
	s.Close()
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.UserByID(ctx, u.ID); err != nil {
		t.Fatalf("user lost across reopen: %v", err)
	}
	var mode string
	if err := s.write.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.read.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
}

func TestUsers(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, NewUser{Email: "ada@example.com", Name: "Ada", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("SignupCredits", func(t *testing.T) {
		got, _ := s.UserByID(ctx, u.ID)
		if got.Credits != SignupCredits || got.Email != "ada@example.com" || got.Name != "Ada" {
			t.Fatalf("got %+v", got)
		}
		led, _ := s.Ledger(ctx, u.ID)
		if len(led) != 1 || led[0].Delta != SignupCredits || led[0].Reason != "signup" {
			t.Fatalf("ledger %+v", led)
		}
	})
	t.Run("ErrEmailTaken", func(t *testing.T) {
		_, err := s.CreateUser(ctx, NewUser{Email: "ada@example.com", PasswordHash: "h"})
		if !errors.Is(err, ErrEmailTaken) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("UnnormalisedEmailRefusedBySchema", func(t *testing.T) {
		if _, err := s.CreateUser(ctx, NewUser{Email: " Bob@Example.com", PasswordHash: "h"}); err == nil {
			t.Fatal("schema accepted an unnormalised email")
		}
	})
	t.Run("ByEmail", func(t *testing.T) {
		got, err := s.UserByEmail(ctx, "ada@example.com")
		if err != nil || got.ID != u.ID {
			t.Fatalf("%+v %v", got, err)
		}
		if _, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("UpdateName", func(t *testing.T) {
		if err := s.UpdateUserName(ctx, u.ID, "Ada L."); err != nil {
			t.Fatal(err)
		}
		got, _ := s.UserByID(ctx, u.ID)
		if got.Name != "Ada L." {
			t.Fatalf("name %q", got.Name)
		}
	})
	t.Run("DeleteCascades", func(t *testing.T) {
		v := newUser(t, s)
		k, plain := newKey(t, s, v.ID, "x")
		sid, _ := NewSessionID()
		if err := s.CreateSession(ctx, Session{ID: sid, UserID: v.ID, CreatedAt: time.Now(), LastSeenAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("key %d survived account deletion: %v", k.ID, err)
		}
		if _, err := s.SessionByID(ctx, sid); !errors.Is(err, ErrNotFound) {
			t.Fatalf("session survived account deletion: %v", err)
		}
		if err := s.DeleteUser(ctx, v.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestSessions(t *testing.T) {
	s, clk := openTest(t)
	ctx := context.Background()
	u := newUser(t, s)
	sid, err := NewSessionID()
	if err != nil || len(sid) < 40 {
		t.Fatalf("session id %q: %v", sid, err)
	}
	now := clk.Now()
	if err := s.CreateSession(ctx, Session{ID: sid, UserID: u.ID, Data: []byte("d"), CreatedAt: now, LastSeenAt: now}); err != nil {
		t.Fatal(err)
	}
	t.Run("Load", func(t *testing.T) {
		got, err := s.SessionByID(ctx, sid)
		if err != nil || got.UserID != u.ID || string(got.Data) != "d" {
			t.Fatalf("%+v %v", got, err)
		}
	})
	t.Run("IDNotStored", func(t *testing.T) {
		var n int
		s.read.QueryRow(`SELECT count(*) FROM sessions WHERE id_hash = ?`, []byte(sid)).Scan(&n)
		if n != 0 {
			t.Fatal("raw session id stored")
		}
	})
	t.Run("Update", func(t *testing.T) {
		later := now.Add(time.Hour)
		if err := s.UpdateSession(ctx, Session{ID: sid, Data: []byte("e"), LastSeenAt: later}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.SessionByID(ctx, sid)
		if string(got.Data) != "e" || !got.LastSeenAt.Equal(later) {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("ChangePasswordEndsOtherSessions", func(t *testing.T) {
		other, _ := NewSessionID()
		s.CreateSession(ctx, Session{ID: other, UserID: u.ID, CreatedAt: now, LastSeenAt: now})
		if err := s.ChangePassword(ctx, u.ID, "newhash", sid); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByID(ctx, other); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other session survived: %v", err)
		}
		if _, err := s.SessionByID(ctx, sid); err != nil {
			t.Fatalf("current session ended: %v", err)
		}
		got, _ := s.UserByID(ctx, u.ID)
		if got.PasswordHash != "newhash" {
			t.Fatal("hash not changed")
		}
	})
	t.Run("DeleteIsFinal", func(t *testing.T) {
		if err := s.DeleteSession(ctx, sid); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByID(ctx, sid); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if err := s.UpdateSession(ctx, Session{ID: sid, LastSeenAt: now}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update of revoked session: %v", err)
		}
	})
	t.Run("DeleteStale", func(t *testing.T) {
		idle, _ := NewSessionID()
		fresh, _ := NewSessionID()
		s.CreateSession(ctx, Session{ID: idle, CreatedAt: now.Add(-48 * time.Hour), LastSeenAt: now.Add(-25 * time.Hour)})
		s.CreateSession(ctx, Session{ID: fresh, CreatedAt: now, LastSeenAt: now})
		n, err := s.DeleteStaleSessions(ctx, now.Add(-24*time.Hour), now.Add(-30*24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("deleted %d, %v", n, err)
		}
		if _, err := s.SessionByID(ctx, fresh); err != nil {
			t.Fatal("fresh session deleted")
		}
	})
}

func TestAPIKeys(t *testing.T) {
	s, clk := openTest(t)
	ctx := context.Background()
	alice, bob := newUser(t, s), newUser(t, s)
	k1, plain1 := newKey(t, s, alice.ID, "Server-side app")
	clk.Add(time.Second)
	k2, _ := newKey(t, s, alice.ID, "")

	t.Run("StoredFields", func(t *testing.T) {
		if k1.Prefix != plain1[:8] || k1.Last4 != plain1[len(plain1)-4:] || !k1.Active {
			t.Fatalf("%+v", k1)
		}
		if k1.Masked() != apikey.MaskKey(plain1) {
			t.Fatalf("masked %q", k1.Masked())
		}
	})
	t.Run("NeverStoresPlaintext", func(t *testing.T) {
		s.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(s.Path() + suffix)
			if err != nil && suffix == "" {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(plain1)) || bytes.Contains(b, []byte(plain1[4:36])) {
				t.Fatalf("plaintext key found in %s", s.Path()+suffix)
			}
		}
	})
	t.Run("ListNewestFirst", func(t *testing.T) {
		keys, err := s.APIKeys(ctx, alice.ID)
		if err != nil || len(keys) != 2 || keys[0].ID != k2.ID || keys[1].ID != k1.ID {
			t.Fatalf("%+v %v", keys, err)
		}
		if keys, _ := s.APIKeys(ctx, bob.ID); len(keys) != 0 {
			t.Fatalf("bob sees %d keys", len(keys))
		}
	})
	t.Run("ByHash", func(t *testing.T) {
		got, err := s.APIKeyByHash(ctx, apikey.HashOf(plain1))
		if err != nil || got.ID != k1.ID || got.UserID != alice.ID {
			t.Fatalf("%+v %v", got, err)
		}
		other, _ := apikey.Generate()
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(other)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("OwnershipEnforced", func(t *testing.T) {
		if _, err := s.APIKey(ctx, bob.ID, k1.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("read: %v", err)
		}
		if _, err := s.SetAPIKeyActive(ctx, bob.ID, k1.ID, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("deactivate: %v", err)
		}
		nextKey, _ := apikey.Generate()
		if _, _, err := s.RotateAPIKey(ctx, bob.ID, k1.ID, nextKey, time.Hour); !errors.Is(err, ErrNotFound) {
			t.Errorf("rotate: %v", err)
		}
		if err := s.DeleteAPIKey(ctx, bob.ID, k1.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete: %v", err)
		}
		got, err := s.APIKey(ctx, alice.ID, k1.ID)
		if err != nil || !got.Active || !got.ExpiresAt.IsZero() {
			t.Fatalf("alice's key changed by bob: %+v %v", got, err)
		}
		if keys, _ := s.APIKeys(ctx, bob.ID); len(keys) != 0 {
			t.Fatalf("bob's failed rotate created %d keys", len(keys))
		}
	})
	t.Run("DeactivateActivate", func(t *testing.T) {
		got, err := s.SetAPIKeyActive(ctx, alice.ID, k1.ID, false)
		if err != nil || got.Active || got.Status(clk.Now()) != KeyInactive {
			t.Fatalf("%+v %v", got, err)
		}
		got, err = s.SetAPIKeyActive(ctx, alice.ID, k1.ID, true)
		if err != nil || !got.Active || got.Status(clk.Now()) != KeyActive {
			t.Fatalf("%+v %v", got, err)
		}
	})
	t.Run("Rotate", func(t *testing.T) {
		next, _ := apikey.Generate()
		old, repl, err := s.RotateAPIKey(ctx, alice.ID, k1.ID, next, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if repl.Label != "Server-side app" || repl.Prefix != next[:8] || old.ReplacedBy != repl.ID {
			t.Fatalf("old %+v new %+v", old, repl)
		}
		if old.Status(clk.Now()) != KeyExpiring || !old.ExpiresAt.Equal(clk.Now().Add(24*time.Hour)) {
			t.Fatalf("old status %v expires %v", old.Status(clk.Now()), old.ExpiresAt)
		}
		if old.Status(clk.Now().Add(24*time.Hour)) != KeyExpired {
			t.Fatal("old key not expired after grace")
		}
		again, _ := apikey.Generate()
		if _, _, err := s.RotateAPIKey(ctx, alice.ID, k1.ID, again, time.Hour); !errors.Is(err, ErrAlreadyRotated) {
			t.Fatalf("second rotation: %v", err)
		}
	})
	t.Run("RotateNow", func(t *testing.T) {
		next, _ := apikey.Generate()
		old, _, err := s.RotateAPIKey(ctx, alice.ID, k2.ID, next, 0)
		if err != nil || old.Status(clk.Now()) != KeyExpired {
			t.Fatalf("%v %v", old.Status(clk.Now()), err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		if err := s.DeleteAPIKey(ctx, alice.ID, k2.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKey(ctx, alice.ID, k2.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if err := s.DeleteAPIKey(ctx, alice.ID, k2.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
	t.Run("Usage", func(t *testing.T) {
		at := clk.Now().Add(time.Minute)
		err := s.RecordAPIKeyUsage(ctx, []KeyUsage{{KeyID: k1.ID, Requests: 3, LastUsed: at}, {KeyID: 999999, Requests: 1, LastUsed: at}})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.APIKey(ctx, alice.ID, k1.ID)
		if got.RequestCount != 3 || !got.LastUsedAt.Equal(at) {
			t.Fatalf("%+v", got)
		}
		s.RecordAPIKeyUsage(ctx, []KeyUsage{{KeyID: k1.ID, Requests: 2, LastUsed: at.Add(-time.Hour)}})
		got, _ = s.APIKey(ctx, alice.ID, k1.ID)
		if got.RequestCount != 5 || !got.LastUsedAt.Equal(at) {
			t.Fatalf("last used went backwards or count wrong: %+v", got)
		}
	})
}

func TestAPIKeyLimit(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u := newUser(t, s)
	var first APIKey
	for i := range MaxAPIKeys {
		k, _ := newKey(t, s, u.ID, "")
		if i == 0 {
			first = k
		}
	}
	plain, _ := apikey.Generate()
	if _, err := s.CreateAPIKey(ctx, NewAPIKey{UserID: u.ID, Key: plain}); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("51st key: %v", err)
	}
	next, _ := apikey.Generate()
	if _, _, err := s.RotateAPIKey(ctx, u.ID, first.ID, next, time.Hour); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("rotate with grace at the limit: %v", err)
	}
	if got, _ := s.APIKey(ctx, u.ID, first.ID); !got.ExpiresAt.IsZero() {
		t.Fatal("failed rotation left the old key expiring")
	}
	if _, _, err := s.RotateAPIKey(ctx, u.ID, first.ID, next, 0); err != nil {
		t.Fatalf("rotate now at the limit should replace in place: %v", err)
	}
	if keys, _ := s.APIKeys(ctx, u.ID); len(keys) != MaxAPIKeys+1 {
		t.Fatalf("%d keys", len(keys))
	}
	other := newUser(t, s)
	newKey(t, s, other.ID, "limit is per user")
}

func TestChargeRender(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u := newUser(t, s)
	k, _ := newKey(t, s, u.ID, "")
	bal, err := s.ChargeRender(ctx, u.ID, k.ID)
	if err != nil || bal != SignupCredits-1 {
		t.Fatalf("%d %v", bal, err)
	}
	if _, err := s.write.Exec(`UPDATE users SET credits = credits + ? WHERE id = ?`, 1-bal, u.ID); err != nil {
		t.Fatal(err)
	}
	// The direct update above broke the ledger on purpose; the check sees it.
	if bad, _ := s.LedgerMismatches(ctx); len(bad) != 1 {
		t.Fatalf("mismatch not detected: %v", bad)
	}
	if _, err := s.write.Exec(`UPDATE users SET credits = ? WHERE id = ?`, bal, u.ID); err != nil {
		t.Fatal(err)
	}
	t.Run("CheckConstraint", func(t *testing.T) {
		if _, err := s.write.Exec(`UPDATE users SET credits = -1 WHERE id = ?`, u.ID); err == nil {
			t.Fatal("schema allowed a negative balance")
		}
	})
	t.Run("ConcurrentAtZero", func(t *testing.T) {
		v := newUser(t, s)
		// Spend all but 5 through the real path.
		for range SignupCredits - 5 {
			if _, err := s.ChargeRender(ctx, v.ID, 0); err != nil {
				t.Fatal(err)
			}
		}
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				_, err := s.ChargeRender(ctx, v.ID, 0)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrInsufficientCredits):
					refused.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 5 || refused.Load() != 15 {
			t.Fatalf("ok %d refused %d", ok.Load(), refused.Load())
		}
		if c, _ := s.Credits(ctx, v.ID); c != 0 {
			t.Fatalf("balance %d", c)
		}
		assertLedgerBalanced(t, s)
	})
}

func TestAdmitLoginAttempt(t *testing.T) {
	s, clk := openTest(t)
	ctx := context.Background()
	since := func() time.Time { return clk.Now().Add(-15 * time.Minute) }
	admit := func(email string) bool {
		t.Helper()
		ok, err := s.AdmitLoginAttempt(ctx, email, since(), 3)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := 1; i <= 3; i++ {
		if !admit("a@example.com") {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if admit("a@example.com") {
		t.Fatal("a fourth attempt was admitted with a limit of 3")
	}
	if n, _ := s.LoginFailures(ctx, "a@example.com", since()); n != 3 {
		t.Fatalf("refused attempts must not count: %d", n)
	}
	if !admit("b@example.com") {
		t.Fatal("attempts leak across emails")
	}
	clk.Add(16 * time.Minute)
	if !admit("a@example.com") {
		t.Fatal("old attempts still count")
	}
	if n, _ := s.LoginFailures(ctx, "a@example.com", since()); n != 1 {
		t.Fatalf("%d attempts in the window, want 1", n)
	}
}

// Attempts that race are counted one by one: 40 at once with a limit of 10
// admit exactly 10.
func TestAdmitLoginAttemptRace(t *testing.T) {
	s, clk := openTest(t)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			ok, err := s.AdmitLoginAttempt(context.Background(), "race@example.com", clk.Now().Add(-15*time.Minute), 10)
			if err != nil {
				t.Error(err)
			}
			if ok {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 10 {
		t.Fatalf("%d attempts admitted, want 10", n)
	}
}

// API authentication is answered from the covering index alone; a change
// that made it read the table again would double its cost.
func TestAPIKeyByHashUsesCoveringIndex(t *testing.T) {
	s, _ := openTest(t)
	rows, err := s.read.Query(`EXPLAIN QUERY PLAN `+apiKeyByHashQuery, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "\n"
	}
	if !strings.Contains(plan, "USING COVERING INDEX api_keys_auth") {
		t.Fatalf("plan:\n%s", plan)
	}
}
