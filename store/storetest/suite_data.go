package storetest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
)

// testConstraints: the invariants that matter are constraints of the
// schema too, so that even SQL that bypasses the store cannot break them.
// Each statement is run with values that break a constraint, refused, and
// with values that don't, accepted (so a refusal is the constraint's).
func testConstraints(t *testing.T, h *Harness) {
	s, ctx := h.Store, t.Context()
	u, k := renderUser(t, h, 10)
	k2, _ := NewKey(t, s, u.ID, "")
	c := newCoupon(t, s, account.NewCoupon{Code: "LIMITED", Credits: 5, MaxRedemptions: 2})
	free := newCoupon(t, s, account.NewCoupon{Code: "FREE", Credits: 5})
	if _, _, err := s.RedeemCoupon(ctx, u.ID, c.Code); err != nil {
		t.Fatal(err)
	}
	v := NewUser(t, s)
	t.Run("LedgerMismatchesSeesABrokenLedger", func(t *testing.T) {
		w := NewUser(t, s)
		AssertLedgerBalanced(t, s)
		if err := h.Exec(`UPDATE users SET credits = credits + 1 WHERE id = ?`, w.ID); err != nil {
			t.Fatal(err)
		}
		bad, err := s.LedgerMismatches(ctx)
		if err != nil || len(bad) != 1 || bad[0] != w.ID {
			t.Fatalf("mismatches %v %v, want [%d]", bad, err, w.ID)
		}
		if err := h.Exec(`UPDATE users SET credits = credits - 1 WHERE id = ?`, w.ID); err != nil {
			t.Fatal(err)
		}
		bad, err = s.LedgerMismatches(ctx)
		if err != nil || len(bad) != 0 {
			t.Fatalf("mismatches %v %v after the repair", bad, err)
		}
	})
	now := h.Clock.Now().Unix()
	balance, err := s.Credits(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		query     string
		bad, good []any
	}{
		{"NegativeCredits", `UPDATE users SET credits = ? WHERE id = ?`, []any{-1, u.ID}, []any{balance, u.ID}},
		{"OverRedemption", `UPDATE coupons SET redemptions = ? WHERE id = ?`, []any{3, c.ID}, []any{2, c.ID}},
		{"NegativeRedemptions", `UPDATE coupons SET redemptions = ? WHERE id = ?`, []any{-1, free.ID}, []any{0, free.ID}},
		{"UnnormalisedEmail", `UPDATE users SET email = ? WHERE id = ?`, []any{"Ada@Example.com", v.ID}, []any{"ada@example.com", v.ID}},
		{"EmptyEmail", `UPDATE users SET email = ? WHERE id = ?`, []any{"", v.ID}, []any{"ada2@example.com", v.ID}},
		{"LowerCaseCouponCode", `UPDATE coupons SET code = ? WHERE id = ?`, []any{"free", free.ID}, []any{"FREE2", free.ID}},
		{"SecondRedemptionByOneUser", `INSERT INTO coupon_redemptions (coupon_id, user_id, credits, created_at) VALUES (?, ?, 5, ?)`,
			[]any{c.ID, u.ID, now}, []any{c.ID, v.ID, now}},
		{"ZeroLedgerDelta", `INSERT INTO credit_ledger (user_id, delta, reason, created_at) VALUES (?, ?, 'render', ?)`,
			[]any{v.ID, 0, now}, []any{v.ID, -1, now}},
		{"UnknownLedgerReason", `INSERT INTO credit_ledger (user_id, delta, reason, created_at) VALUES (?, 1, ?, ?)`,
			[]any{v.ID, "gift", now}, []any{v.ID, "coupon", now}},
		{"LedgerOfNobody", `INSERT INTO credit_ledger (user_id, delta, reason, created_at) VALUES (?, 1, 'coupon', ?)`,
			[]any{v.ID + 1000, now}, []any{v.ID, now}},
		{"DuplicateKeyHash", `UPDATE api_keys SET key_hash = (SELECT key_hash FROM api_keys WHERE id = ?) WHERE id = ?`,
			[]any{k.ID, k2.ID}, []any{k2.ID, k2.ID}},
		{"ShortKeyHash", `UPDATE api_keys SET key_hash = ? WHERE id = ?`, []any{[]byte("short"), k2.ID}, []any{bytes.Repeat([]byte{7}, 32), k2.ID}},
		{"LongLabel", `UPDATE api_keys SET label = ? WHERE id = ?`, []any{strings.Repeat("x", 65), k2.ID}, []any{strings.Repeat("é", 64), k2.ID}},
		{"NegativeRequestCount", `UPDATE api_keys SET request_count = ? WHERE id = ?`, []any{-1, k2.ID}, []any{7, k2.ID}},
		{"KeyOfNobody", `UPDATE api_keys SET user_id = ? WHERE id = ?`, []any{v.ID + 1000, k2.ID}, []any{v.ID, k2.ID}},
		{"SessionOfNobody", `INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)`,
			[]any{bytes.Repeat([]byte{1}, 32), v.ID + 1000, now, now}, []any{bytes.Repeat([]byte{2}, 32), v.ID, now, now}},
		{"ReservationExpiredAtBirth", `INSERT INTO credit_reservations (user_id, api_key_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
			[]any{v.ID, k2.ID, now, now}, []any{v.ID, k2.ID, now - 200, now - 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.Exec(tc.query, tc.bad...); err == nil {
				t.Fatalf("the schema accepted %v", tc.bad)
			}
			if err := h.Exec(tc.query, tc.good...); err != nil {
				t.Fatalf("the schema refused %v: %v", tc.good, err)
			}
		})
	}

}

// Secrets is what must never be found in what a store keeps.
type Secrets [][]byte

// Add adds a secret in the forms it might be written in.
func (s *Secrets) Add(secret []byte) {
	*s = append(*s, secret, []byte(hex.EncodeToString(secret)))
}

// Find returns the first secret data holds, or nil.
func (s Secrets) Find(data []byte) []byte {
	for _, secret := range s {
		if bytes.Contains(data, secret) {
			return secret
		}
	}
	return nil
}

// StoreSecrets fills the store with one of everything that involves a
// secret (keys, a rotation, a session, a reveal token) and returns them.
func StoreSecrets(t testing.TB, h *Harness) Secrets {
	t.Helper()
	s, ctx := h.Store, t.Context()
	var secrets Secrets
	u, k := renderUser(t, h, 50)
	plain := MustKey(t)
	created, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Label: "secret keeper", Key: plain})
	if err != nil {
		t.Fatal(err)
	}
	secrets.Add([]byte(plain))
	secrets.Add([]byte(plain[4:36])) // its random part
	next := MustKey(t)
	if _, _, err := s.RotateAPIKey(ctx, u.ID, created.ID, next, account.Grace{For: time.Hour}); err != nil {
		t.Fatal(err)
	}
	secrets.Add([]byte(next))
	if err := s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: created.ID, Day: h.Clock.Now(), Requests: 1, Accepted: 1, FirstUsed: h.Clock.Now(), LastUsed: h.Clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	sid, err := account.NewSessionID()
	if err != nil {
		t.Fatal(err)
	}
	now := h.Clock.Now()
	if err := s.CreateSession(ctx, account.Session{ID: sid, UserID: u.ID, Data: []byte("flash"), CreatedAt: now, LastSeenAt: now}); err != nil {
		t.Fatal(err)
	}
	secrets.Add([]byte(sid))
	token := []byte("reveal-token-" + plain[4:20])
	if err := s.PutReveal(ctx, token, u.ID, []byte("sealed elsewhere"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	secrets.Add(token)
	if _, err := s.AdmitLoginAttempt(ctx, u.Email, now.Add(-time.Minute), 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RedeemCoupon(ctx, u.ID, newCoupon(t, s, account.NewCoupon{Code: "SECRETS", Credits: 1}).Code); err != nil {
		t.Fatal(err)
	}
	r, err := s.AdmitRender(ctx, admission(u, k))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChargeRender(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdmitRender(ctx, admission(u, k)); err != nil { // left in progress
		t.Fatal(err)
	}
	return secrets
}

// Dump is every row of every table, through Raw, formatted: what a copy of
// the database would give away.
func Dump(t testing.TB, h *Harness) []byte {
	t.Helper()
	list := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if h.Dialect == "postgres" {
		list = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := h.Raw.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, table := range tables {
		rows, err := h.Raw.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		fmt.Fprintf(&out, "== %s %v\n", table, cols)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out.Write(b)
				} else {
					fmt.Fprint(&out, v)
				}
				out.WriteByte('|')
			}
			out.WriteByte('\n')
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
	}
	return out.Bytes()
}

// testNothingInClear: no plaintext key, raw session id or reveal token in
// any row of any table.
func testNothingInClear(t *testing.T, h *Harness) {
	secrets := StoreSecrets(t, h)
	dump := Dump(t, h)
	for _, want := range []string{"== api_keys", "secret keeper", "== sessions", "flash", "== key_reveals", "sealed elsewhere"} {
		if !bytes.Contains(dump, []byte(want)) {
			t.Fatalf("the dump lacks %q: it does not show what is stored", want)
		}
	}
	if found := secrets.Find(dump); found != nil {
		t.Fatalf("%q is stored in clear", found)
	}
}
