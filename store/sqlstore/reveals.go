package sqlstore

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/peekshot/peekshot/account"
)

// PutReveal keeps a sealed new key for the page that shows it, under the
// hash of a random token that only the user's session knows.
func (db *DB) PutReveal(ctx context.Context, token []byte, userID int64, sealed []byte, expires time.Time) error {
	h := sha256.Sum256(token)
	return db.inTx(ctx, "put reveal", func(t *tx) error {
		_, err := t.exec(`INSERT INTO key_reveals (token_hash, user_id, sealed, expires_at) VALUES (?, ?, ?, ?)`,
			h[:], userID, sealed, expires.Unix())
		return err
	})
}

// TakeReveal returns a sealed key once: the row goes in the statement that
// reads it, so two requests racing for it cannot both have it, and it goes
// whether or not it could be shown.
func (db *DB) TakeReveal(ctx context.Context, token []byte, userID int64) ([]byte, error) {
	h := sha256.Sum256(token)
	var sealed []byte
	var owner, expires int64
	err := db.inTx(ctx, "take reveal", func(t *tx) error {
		err := noRows(t.row(`DELETE FROM key_reveals WHERE token_hash = ? RETURNING user_id, sealed, expires_at`, h[:]).Scan(&owner, &sealed, &expires))
		if err == nil && (owner != userID || !t.now.Before(time.Unix(expires, 0))) {
			sealed = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if sealed == nil {
		return nil, errNotFound
	}
	return sealed, nil
}

// Sweep deletes what has outlived its use: expired reveals and
// reservations, full rate-limit buckets (no row means the same), and
// change records every watcher has long seen.
func (db *DB) Sweep(ctx context.Context) error {
	return db.inTx(ctx, "sweep", func(t *tx) error {
		now := t.now
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM key_reveals WHERE expires_at <= ?`, now.Unix()},
			{`DELETE FROM credit_reservations WHERE expires_at <= ?`, now.Unix()},
			{`DELETE FROM signed_link_charges WHERE expires_at <= ?`, now.Unix()},
			{`DELETE FROM api_key_rates WHERE tat <= ?`, now.UnixMicro()},
			{`DELETE FROM activity WHERE at < ?`, now.Add(-account.ActivityKept).Unix()},
			{`DELETE FROM key_day_ips WHERE day < ?`, account.DayStart(now).Add(-account.ManyIPsWithin - 24*time.Hour).Unix()},
		} {
			if _, err := t.exec(q.sql, q.arg); err != nil {
				return err
			}
		}
		return db.d.Sweep(ctx, t.Tx, now)
	})
}
