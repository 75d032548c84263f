package sqlstore

import (
	"context"
	"time"

	"github.com/peekshot/peekshot/account"
)

// CreateSession stores a new signed-in session.
func (db *DB) CreateSession(ctx context.Context, s account.Session) error {
	return db.inTx(ctx, "create session", func(t *tx) error {
		_, err := t.exec(`INSERT INTO sessions (id_hash, user_id, data, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)`,
			s.ID.Hash(), s.UserID, nonNil(s.Data), s.CreatedAt.Unix(), s.LastSeenAt.Unix())
		return err
	})
}

// SessionByID loads a session; a revoked or unknown id is ErrNotFound.
func (db *DB) SessionByID(ctx context.Context, id account.SessionID) (account.Session, error) {
	s := account.Session{ID: id}
	var created, seen int64
	err := noRows(db.row(ctx, `SELECT user_id, data, created_at, last_seen_at FROM sessions WHERE id_hash = ?`, id.Hash()).
		Scan(&s.UserID, &s.Data, &created, &seen))
	if err != nil {
		return account.Session{}, db.fail("session", err)
	}
	s.CreatedAt, s.LastSeenAt = time.Unix(created, 0), time.Unix(seen, 0)
	return s, nil
}

// UpdateSession stores a session's data and last-seen time. A session that
// was revoked meanwhile stays revoked: ErrNotFound.
func (db *DB) UpdateSession(ctx context.Context, s account.Session) error {
	return db.inTx(ctx, "update session", func(t *tx) error {
		return expectOne(t.exec(`UPDATE sessions SET data = ?, last_seen_at = ? WHERE id_hash = ?`,
			nonNil(s.Data), s.LastSeenAt.Unix(), s.ID.Hash()))
	})
}

// DeleteSession revokes one session.
func (db *DB) DeleteSession(ctx context.Context, id account.SessionID) error {
	return db.inTx(ctx, "delete session", func(t *tx) error {
		_, err := t.exec(`DELETE FROM sessions WHERE id_hash = ?`, id.Hash())
		return err
	})
}

// DeleteStaleSessions removes sessions idle since before idleBefore or
// created before createdBefore, returning how many went.
func (db *DB) DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, "delete stale sessions", func(t *tx) error {
		res, err := t.exec(`DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?`, idleBefore.Unix(), createdBefore.Unix())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// UserSessionCount counts a user's live sessions.
func (db *DB) UserSessionCount(ctx context.Context, userID int64) (int, error) {
	var n int
	if err := db.row(ctx, `SELECT count(*) FROM sessions WHERE user_id = ?`, userID).Scan(&n); err != nil {
		return 0, db.fail("session count", err)
	}
	return n, nil
}

// nonNil keeps empty session data an empty blob rather than NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
