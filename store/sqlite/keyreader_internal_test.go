package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// TestAssign: a row's values go into the key lookup's destinations as
// database/sql's Scan would put them, and a value of another kind is an
// error naming the column, not a zero.
func TestAssign(t *testing.T) {
	var (
		id     int64
		label  string
		raw    string
		active bool
		yes    bool
		rate   sql.NullInt64
		none   sql.NullInt64
	)
	vals := []driver.Value{int64(7), "a label", []byte("bytes"), int64(1), true, int64(60), nil}
	if err := assign([]any{&id, &label, &raw, &active, &yes, &rate, &none}, vals); err != nil {
		t.Fatal(err)
	}
	if id != 7 || label != "a label" || raw != "bytes" || !active || !yes || rate != (sql.NullInt64{Int64: 60, Valid: true}) || none.Valid {
		t.Fatalf("assigned %v %q %q %v %v %+v %+v", id, label, raw, active, yes, rate, none)
	}
	for _, tt := range []struct {
		dest any
		val  driver.Value
		want string
	}{
		{new(int64), "7", "column 0: can't scan string into *int64"},
		{new(int64), nil, "column 0: can't scan <nil> into *int64"},
		{new(string), int64(7), "column 0: can't scan int64 into *string"},
		{new(bool), "yes", "column 0: can't scan string into *bool"},
		{new(sql.NullInt64), "x", "column 0: converting driver.Value type string"},
		{new(float32), 1.5, "column 0: can't scan into *float32"},
	} {
		err := assign([]any{tt.dest}, []driver.Value{tt.val})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%T from %#v: %v, want %q", tt.dest, tt.val, err, tt.want)
		}
	}
}

// TestKeyLookupWaitsForAConnection: with every connection of the key
// lookup in use, a lookup waits for one and gives up when its context
// ends; once the connection is back, lookups run on it again.
func TestKeyLookupWaitsForAConnection(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "peekshot.db"), Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.CreateUser(t.Context(), account.NewUser{Email: "wait@example.com", Name: "Wait", PasswordHash: "$2a$10$hash"})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAPIKey(t.Context(), account.NewAPIKey{UserID: u.ID, Label: "wait", Key: plain}); err != nil {
		t.Fatal(err)
	}
	h := apikey.HashOf(plain)
	busy, err := s.keys.get(t.Context()) // the only connection
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.APIKeyByHash(ctx, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a lookup with the connection in use: %v, want context.DeadlineExceeded", err)
	}
	found := make(chan error, 1)
	go func() {
		_, err := s.APIKeyByHash(t.Context(), h)
		found <- err
	}()
	select {
	case err := <-found:
		t.Fatalf("a lookup ran with the only connection in use: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.keys.put(busy, nil)
	if err := <-found; err != nil {
		t.Fatalf("the waiting lookup: %v", err)
	}
}
