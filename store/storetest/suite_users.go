package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

func testUsers(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	u, err := s.CreateUser(ctx, account.NewUser{Email: "ada@example.com", Name: "Ada", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("SignupCredits", func(t *testing.T) {
		if u.ID == 0 || u.Credits != account.SignupCredits || u.Email != "ada@example.com" || u.Name != "Ada" ||
			u.PasswordHash != "h" || !u.CreatedAt.Equal(h.Clock.Now()) {
			t.Fatalf("created %+v", u)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil || got.Credits != account.SignupCredits || got.Email != u.Email || got.Name != u.Name ||
			got.PasswordHash != u.PasswordHash || !got.CreatedAt.Equal(u.CreatedAt) {
			t.Fatalf("stored %+v %v, created %+v", got, err, u)
		}
		led, err := s.Ledger(ctx, u.ID)
		if err != nil || len(led) != 1 || led[0].Delta != account.SignupCredits || led[0].Reason != "signup" ||
			!led[0].CreatedAt.Equal(h.Clock.Now()) {
			t.Fatalf("ledger %+v %v", led, err)
		}
		AssertLedgerBalanced(t, s)
	})
	t.Run("ErrEmailTaken", func(t *testing.T) {
		if _, err := s.CreateUser(ctx, account.NewUser{Email: "ada@example.com", PasswordHash: "h"}); !errors.Is(err, account.ErrEmailTaken) {
			t.Fatalf("err = %v", err)
		}
		if led, _ := s.Ledger(ctx, u.ID); len(led) != 1 {
			t.Fatalf("a refused sign-up wrote to the ledger: %+v", led)
		}
	})
	t.Run("UnnormalisedEmailRefusedBySchema", func(t *testing.T) {
		for _, email := range []string{" bob@example.com", "Bob@example.com", "bob@example.com ", ""} {
			_, err := s.CreateUser(ctx, account.NewUser{Email: email, PasswordHash: "h"})
			if err == nil || errors.Is(err, account.ErrEmailTaken) {
				t.Errorf("%q: err = %v, want the schema's refusal", email, err)
			}
		}
		if n := h.Int(t, `SELECT count(*) FROM users`); n != 1 {
			t.Fatalf("%d users stored", n)
		}
	})
	t.Run("ByEmailAndID", func(t *testing.T) {
		got, err := s.UserByEmail(ctx, "ada@example.com")
		if err != nil || got.ID != u.ID {
			t.Fatalf("%+v %v", got, err)
		}
		if _, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown email: %v", err)
		}
		if _, err := s.UserByID(ctx, u.ID+1000); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown id: %v", err)
		}
	})
	t.Run("EmailAndCredits", func(t *testing.T) {
		email, credits, err := s.EmailAndCredits(ctx, u.ID)
		if err != nil || email != "ada@example.com" || credits != account.SignupCredits {
			t.Fatalf("%q %d %v", email, credits, err)
		}
		if _, _, err := s.EmailAndCredits(ctx, u.ID+1000); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
	})
	t.Run("UpdateName", func(t *testing.T) {
		if err := s.UpdateUserName(ctx, u.ID, "Ada L."); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.Name != "Ada L." {
			t.Fatalf("name %q", got.Name)
		}
		if err := s.UpdateUserName(ctx, u.ID+1000, "x"); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
	})
	t.Run("DeleteCascades", func(t *testing.T) {
		v := NewUser(t, s)
		_, plain := NewKey(t, s, v.ID, "x")
		k2, _ := NewKey(t, s, v.ID, "y")
		sid := newSession(t, h, v.ID)
		if _, _, err := s.RedeemCoupon(ctx, v.ID, newCoupon(t, s, account.NewCoupon{Code: "GONE-WITH-USER", Credits: 5}).Code); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdmitRender(ctx, admission(v, k2)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutReveal(ctx, []byte("token-of-v"), v.ID, []byte("sealed"), h.Clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		keep := NewUser(t, s)
		_, keepPlain := NewKey(t, s, keep.ID, "kept")
		keepSession := newSession(t, h, keep.ID)

		if err := s.DeleteUser(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UserByID(ctx, v.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("user survived: %v", err)
		}
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("key survived account deletion: %v", err)
		}
		if _, err := s.SessionByID(ctx, sid); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("session survived account deletion: %v", err)
		}
		if _, err := s.TakeReveal(ctx, []byte("token-of-v"), v.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("reveal survived account deletion: %v", err)
		}
		for _, table := range []string{"api_keys", "sessions", "credit_ledger", "coupon_redemptions", "credit_reservations", "key_reveals"} {
			if n := h.Int(t, `SELECT count(*) FROM `+table+` WHERE user_id = ?`, v.ID); n != 0 {
				t.Errorf("%d rows of %s outlived the account", n, table)
			}
		}
		if led, _ := s.Ledger(ctx, v.ID); len(led) != 0 {
			t.Fatalf("ledger outlived the account: %+v", led)
		}
		if n, _ := s.UserSessionCount(ctx, v.ID); n != 0 {
			t.Fatalf("%d sessions outlived the account", n)
		}
		if err := s.DeleteUser(ctx, v.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		// Nobody else's rows went with it.
		if _, err := s.APIKeyByHash(ctx, apikey.HashOf(keepPlain)); err != nil {
			t.Fatalf("another user's key: %v", err)
		}
		if _, err := s.SessionByID(ctx, keepSession); err != nil {
			t.Fatalf("another user's session: %v", err)
		}
		AssertLedgerBalanced(t, s)
	})
}

// newSession stores a signed-in session for the user at the harness's
// clock and returns its id.
func newSession(t testing.TB, h *Harness, userID int64) account.SessionID {
	t.Helper()
	sid, err := account.NewSessionID()
	if err != nil {
		t.Fatal(err)
	}
	now := h.Clock.Now()
	if err := h.Store.CreateSession(context.Background(), account.Session{ID: sid, UserID: userID, CreatedAt: now, LastSeenAt: now}); err != nil {
		t.Fatal(err)
	}
	return sid
}

func testSessions(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	u := NewUser(t, s)
	sid, err := account.NewSessionID()
	if err != nil || len(sid) < 40 {
		t.Fatalf("session id %q: %v", sid, err)
	}
	if other, _ := account.NewSessionID(); other == sid {
		t.Fatal("two session ids alike")
	}
	now := h.Clock.Now()
	if err := s.CreateSession(ctx, account.Session{ID: sid, UserID: u.ID, Data: []byte("d"), CreatedAt: now, LastSeenAt: now}); err != nil {
		t.Fatal(err)
	}
	t.Run("Load", func(t *testing.T) {
		got, err := s.SessionByID(ctx, sid)
		if err != nil || got.ID != sid || got.UserID != u.ID || string(got.Data) != "d" || !got.CreatedAt.Equal(now) || !got.LastSeenAt.Equal(now) {
			t.Fatalf("%+v %v", got, err)
		}
		unknown, _ := account.NewSessionID()
		if _, err := s.SessionByID(ctx, unknown); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
	})
	t.Run("OnlyTheHashIsStored", func(t *testing.T) {
		hash := sha256.Sum256([]byte(sid))
		if n := h.Int(t, `SELECT count(*) FROM sessions WHERE id_hash = ?`, []byte(sid)); n != 0 {
			t.Fatal("raw session id stored")
		}
		if n := h.Int(t, `SELECT count(*) FROM sessions WHERE id_hash = ?`, hash[:]); n != 1 {
			t.Fatalf("%d sessions stored under the id's SHA-256", n)
		}
	})
	t.Run("UserIDRequired", func(t *testing.T) {
		for name, userID := range map[string]int64{"None": 0, "Unknown": u.ID + 1000} {
			t.Run(name, func(t *testing.T) {
				id, _ := account.NewSessionID()
				if err := s.CreateSession(ctx, account.Session{ID: id, UserID: userID, CreatedAt: now, LastSeenAt: now}); err == nil {
					t.Fatal("a session without a user was stored")
				}
			})
		}
	})
	t.Run("EmptyData", func(t *testing.T) {
		id := newSession(t, h, u.ID)
		got, err := s.SessionByID(ctx, id)
		if err != nil || len(got.Data) != 0 {
			t.Fatalf("%+v %v", got, err)
		}
		if err := s.DeleteSession(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Update", func(t *testing.T) {
		later := now.Add(time.Hour)
		if err := s.UpdateSession(ctx, account.Session{ID: sid, UserID: u.ID, Data: []byte("e"), LastSeenAt: later}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.SessionByID(ctx, sid)
		if string(got.Data) != "e" || !got.LastSeenAt.Equal(later) || !got.CreatedAt.Equal(now) {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("UserSessionCount", func(t *testing.T) {
		other := NewUser(t, s)
		newSession(t, h, other.ID)
		newSession(t, h, other.ID)
		for _, tc := range []struct {
			user int64
			want int
		}{{u.ID, 1}, {other.ID, 2}, {other.ID + 1000, 0}} {
			if n, err := s.UserSessionCount(ctx, tc.user); err != nil || n != tc.want {
				t.Errorf("user %d: %d sessions (%v), want %d", tc.user, n, err, tc.want)
			}
		}
	})
	t.Run("ChangePasswordEndsOtherSessions", func(t *testing.T) {
		other := newSession(t, h, u.ID)
		bystander := NewUser(t, s)
		theirs := newSession(t, h, bystander.ID)
		if err := s.ChangePassword(ctx, u.ID, "newhash", sid); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByID(ctx, other); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("other session survived: %v", err)
		}
		if _, err := s.SessionByID(ctx, sid); err != nil {
			t.Fatalf("current session ended: %v", err)
		}
		if _, err := s.SessionByID(ctx, theirs); err != nil {
			t.Fatalf("another user's session ended: %v", err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != "newhash" {
			t.Fatal("hash not changed")
		}
		if err := s.ChangePassword(ctx, u.ID+1000, "x", sid); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
	})
	t.Run("DeleteIsFinal", func(t *testing.T) {
		if err := s.DeleteSession(ctx, sid); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByID(ctx, sid); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if err := s.UpdateSession(ctx, account.Session{ID: sid, UserID: u.ID, LastSeenAt: now}); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("update of revoked session: %v", err)
		}
		if _, err := s.SessionByID(ctx, sid); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("the update brought the session back: %v", err)
		}
	})
	t.Run("DeleteStale", func(t *testing.T) {
		v := NewUser(t, s)
		mk := func(created, seen time.Time) account.SessionID {
			id, _ := account.NewSessionID()
			if err := s.CreateSession(ctx, account.Session{ID: id, UserID: v.ID, CreatedAt: created, LastSeenAt: seen}); err != nil {
				t.Fatal(err)
			}
			return id
		}
		idle := mk(now.Add(-48*time.Hour), now.Add(-25*time.Hour))
		old := mk(now.Add(-31*24*time.Hour), now)
		fresh := mk(now.Add(-29*24*time.Hour), now.Add(-23*time.Hour))
		n, err := s.DeleteStaleSessions(ctx, now.Add(-24*time.Hour), now.Add(-30*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("deleted %d, %v; want 2", n, err)
		}
		for _, gone := range []account.SessionID{idle, old} {
			if _, err := s.SessionByID(ctx, gone); !errors.Is(err, account.ErrNotFound) {
				t.Fatalf("stale session kept: %v", err)
			}
		}
		if _, err := s.SessionByID(ctx, fresh); err != nil {
			t.Fatalf("fresh session deleted: %v", err)
		}
	})
}

func testLoginAttempts(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	since := func() time.Time { return clk.Now().Add(-15 * time.Minute) }
	t.Run("LimitAndWindow", func(t *testing.T) {
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
		clk.Add(10 * time.Minute)
		if admit("a@example.com") {
			t.Fatal("attempts 10 minutes old no longer count")
		}
		clk.Add(6 * time.Minute)
		if !admit("a@example.com") {
			t.Fatal("old attempts still count")
		}
		if n, _ := s.LoginFailures(ctx, "a@example.com", since()); n != 1 {
			t.Fatalf("%d attempts in the window, want 1", n)
		}
	})
	// Attempts that race are counted one by one: 40 at once with a limit
	// of 10 admit exactly 10, in one process or spread over several.
	for _, tc := range []struct {
		name   string
		stores int
	}{{"RaceOneStore", 1}, {"RaceFourStores", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			ss := stores(h, tc.stores)
			email := "race-" + tc.name + "@example.com"
			var admitted atomic.Int64
			race(t, 40, func(i int) error {
				ok, err := ss[i%len(ss)].AdmitLoginAttempt(ctx, email, since(), 10)
				if ok {
					admitted.Add(1)
				}
				return err
			}, nil)
			if n := admitted.Load(); n != 10 {
				t.Fatalf("%d attempts admitted, want 10", n)
			}
			if n, _ := s.LoginFailures(ctx, email, since()); n != 10 {
				t.Fatalf("%d attempts counted, want 10", n)
			}
		})
	}
}
