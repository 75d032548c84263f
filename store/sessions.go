package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// SessionID is the random id a session cookie carries (256 bits). Only its
// SHA-256 is stored, so the database never holds a usable cookie value.
type SessionID string

// NewSessionID returns a fresh random session id.
func NewSessionID() (SessionID, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new session id: %w", err)
	}
	return SessionID(base64.RawURLEncoding.EncodeToString(b[:])), nil
}

func (id SessionID) hash() []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// Session is a server-side session; UserID is 0 before sign-in.
type Session struct {
	ID         SessionID
	UserID     int64
	Data       []byte
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id_hash, user_id, data, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)`,
			sess.ID.hash(), nullID(sess.UserID), nonNil(sess.Data), sess.CreatedAt.Unix(), sess.LastSeenAt.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionByID loads a session; a revoked or unknown id is ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id SessionID) (Session, error) {
	sess := Session{ID: id}
	var user sql.NullInt64
	var created, seen int64
	err := s.read.QueryRowContext(ctx,
		`SELECT user_id, data, created_at, last_seen_at FROM sessions WHERE id_hash = ?`, id.hash()).
		Scan(&user, &sess.Data, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	sess.UserID = user.Int64
	sess.CreatedAt, sess.LastSeenAt = time.Unix(created, 0), time.Unix(seen, 0)
	return sess, nil
}

// UpdateSession stores a session's data and last-seen time. A session that
// was revoked meanwhile stays revoked: ErrNotFound.
func (s *Store) UpdateSession(ctx context.Context, sess Session) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return expectOne(tx.ExecContext(ctx,
			`UPDATE sessions SET data = ?, last_seen_at = ? WHERE id_hash = ?`,
			nonNil(sess.Data), sess.LastSeenAt.Unix(), sess.ID.hash()))
	})
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// DeleteSession revokes one session.
func (s *Store) DeleteSession(ctx context.Context, id SessionID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, id.hash())
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteStaleSessions removes sessions idle since before idleBefore or
// created before createdBefore, returning how many went.
func (s *Store) DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?`,
			idleBefore.Unix(), createdBefore.Unix())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete stale sessions: %w", err)
	}
	return n, nil
}

// UserSessionCount counts a user's live sessions (tests and the profile use it).
func (s *Store) UserSessionCount(ctx context.Context, userID int64) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE user_id = ?`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("session count: %w", err)
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
