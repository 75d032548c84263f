package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/peekshot/peekshot/account"
)

// log appends an entry to the user's activity inside t, by the actor t's
// context names: a change and its entry commit together or not at all.
func (t *tx) log(userID int64, ev account.Event, k *account.APIKey, detail string) error {
	return t.logAs(account.ActorFrom(t.ctx), userID, ev, k, detail)
}

// logAs appends an entry by a given actor.
func (t *tx) logAs(a account.Actor, userID int64, ev account.Event, k *account.APIKey, detail string) error {
	var keyID sql.NullInt64
	label, masked := "", ""
	if k != nil {
		keyID, label, masked = nullID(k.ID), k.Label, k.Masked()
	}
	_, err := t.exec(`INSERT INTO activity (user_id, at, event, actor, actor_key_masked, key_id, key_label, key_masked, ip, user_agent, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		userID, t.now.Unix(), string(ev), string(a.Kind), a.KeyMasked, keyID, label, masked, a.IP, a.UserAgent, detail)
	return err
}

// LogActivity appends an entry that no other change writes (a sign-in),
// about no key.
func (db *DB) LogActivity(ctx context.Context, userID int64, ev account.Event, detail string) error {
	return db.inTx(ctx, "log activity", func(t *tx) error { return t.log(userID, ev, nil, detail) })
}

// Activity is a page of the user's log, newest first, narrowed by f.
func (db *DB) Activity(ctx context.Context, userID int64, f account.ActivityFilter) ([]account.Activity, error) {
	q := `SELECT id, at, event, actor, actor_key_masked, coalesce(key_id, 0), key_label, key_masked, ip, user_agent, detail
		FROM activity WHERE user_id = ?`
	args := []any{userID}
	if f.KeyID != 0 {
		q += ` AND key_id = ?`
		args = append(args, f.KeyID)
	}
	if f.Event != "" {
		q += ` AND event = ?`
		args = append(args, string(f.Event))
	}
	if f.Before > 0 {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.rows(ctx, q, args...)
	if err != nil {
		return nil, db.fail("activity", err)
	}
	defer rows.Close()
	var out []account.Activity
	for rows.Next() {
		a := account.Activity{UserID: userID}
		var at int64
		var ev, actor string
		if err := rows.Scan(&a.ID, &at, &ev, &actor, &a.Actor.KeyMasked, &a.KeyID, &a.KeyLabel, &a.KeyMasked, &a.Actor.IP, &a.Actor.UserAgent, &a.Detail); err != nil {
			return nil, db.fail("activity", err)
		}
		a.At, a.Event, a.Actor.Kind = time.Unix(at, 0), account.Event(ev), account.ActorKind(actor)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("activity", err)
	}
	return out, nil
}
