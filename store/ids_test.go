package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestAPIKeyIDsNeverReused: deleting the newest key must not hand its id to
// the next key, which would inherit usage still counted for the old one.
// Found by the soak (web.TestSoak), where a deleted key's id came back as
// another client's new key.
func TestAPIKeyIDsNeverReused(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	u := newUser(t, s)
	seen := map[int64]bool{}
	var last int64
	for i := range 5 {
		k, _ := newKey(t, s, u.ID, "k")
		if seen[k.ID] || k.ID <= last {
			t.Fatalf("key %d got id %d after %d: reused", i, k.ID, last)
		}
		seen[k.ID], last = true, k.ID
		if err := s.DeleteAPIKey(ctx, u.ID, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Rotation draws from the same sequence.
	k, _ := newKey(t, s, u.ID, "rotated")
	_, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, mustKey(t), 0)
	if err != nil || repl.ID <= k.ID {
		t.Fatalf("replacement id %d after %d: %v", repl.ID, k.ID, err)
	}
	if err := s.DeleteAPIKey(ctx, u.ID, repl.ID); err != nil {
		t.Fatal(err)
	}
	next, _ := newKey(t, s, u.ID, "next")
	if next.ID <= repl.ID {
		t.Fatalf("id %d handed out again", next.ID)
	}
	var rows int
	if err := s.read.QueryRow(`SELECT count(*) FROM api_key_ids`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the id table holds %d rows (%v); it should stay empty", rows, err)
	}

	t.Run("AfterUpgrade", func(t *testing.T) {
		// A database made before the sequence existed continues above its
		// largest key id.
		path := filepath.Join(t.TempDir(), "old.db")
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		u := newUser(t, s)
		k, _ := newKey(t, s, u.ID, "old")
		for _, q := range []string{
			`DELETE FROM schema_migrations WHERE version = 2`, `DROP TABLE api_key_ids`,
			`DELETE FROM sqlite_sequence WHERE name = 'api_key_ids'`,
			`UPDATE api_keys SET id = 41 WHERE id = ` + itoa64(k.ID),
		} {
			if _, err := s.write.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s.Close()
		s, err = Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.DeleteAPIKey(ctx, u.ID, 41); err != nil {
			t.Fatal(err)
		}
		next, _ := newKey(t, s, u.ID, "new")
		if next.ID != 42 {
			t.Fatalf("first key after the upgrade got id %d, want 42", next.ID)
		}
	})
}

func itoa64(n int64) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
