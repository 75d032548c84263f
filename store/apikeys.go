package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"time"

	"github.com/peekshot/peekshot/apikey"
)

// MaxAPIKeys is how many live (not expired) keys one user may hold.
const MaxAPIKeys = 50

// APIKey is a stored key: never the key itself, only its hash and the parts
// needed to recognise it.
type APIKey struct {
	ID           int64
	UserID       int64
	Label        string
	Prefix       string // "psk_" + first four characters
	Last4        string
	Active       bool
	CreatedAt    time.Time
	ExpiresAt    time.Time // zero unless rotated
	ReplacedBy   int64     // the key that replaced this one, if rotated
	LastUsedAt   time.Time // zero if never used
	RequestCount int64
}

// Masked is the key as lists show it, e.g. "psk_7Gq2…x9Lb".
func (k APIKey) Masked() string { return apikey.Mask(k.Prefix, k.Last4) }

// KeyStatus is what a key's status badge says.
type KeyStatus int

// Key statuses, in the order the API checks them.
const (
	KeyActive KeyStatus = iota
	KeyInactive
	KeyExpiring
	KeyExpired
)

// Status is the key's state at now. Expiry wins over deactivation: an
// expired key can never work again.
func (k APIKey) Status(now time.Time) KeyStatus {
	switch {
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return KeyExpired
	case !k.Active:
		return KeyInactive
	case !k.ExpiresAt.IsZero():
		return KeyExpiring
	default:
		return KeyActive
	}
}

// NewAPIKey is a freshly generated key to store; the plaintext goes no
// further than this struct.
type NewAPIKey struct {
	UserID int64
	Label  string
	Key    string
}

const apiKeyColumns = `id, user_id, label, prefix, last4, active, created_at, expires_at, replaced_by, last_used_at, request_count`

func scanAPIKey(row interface{ Scan(...any) error }) (APIKey, error) {
	var k APIKey
	var created int64
	var expires, replaced, used sql.NullInt64
	err := row.Scan(&k.ID, &k.UserID, &k.Label, &k.Prefix, &k.Last4, &k.Active, &created, &expires, &replaced, &used, &k.RequestCount)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrNotFound
	}
	k.CreatedAt = time.Unix(created, 0)
	k.ExpiresAt, k.LastUsedAt, k.ReplacedBy = unix(expires), unix(used), replaced.Int64
	return k, err
}

// CreateAPIKey stores a new key for its user, refusing the one past
// MaxAPIKeys live keys.
func (s *Store) CreateAPIKey(ctx context.Context, nk NewAPIKey) (APIKey, error) {
	var k APIKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = insertAPIKey(ctx, tx, nk, s.now().Unix())
		return err
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("create API key: %w", err)
	}
	return k, nil
}

func insertAPIKey(ctx context.Context, tx *sql.Tx, nk NewAPIKey, now int64) (APIKey, error) {
	var live int
	err := tx.QueryRowContext(ctx,
		`SELECT count(*) FROM api_keys WHERE user_id = ? AND (expires_at IS NULL OR expires_at > ?)`,
		nk.UserID, now).Scan(&live)
	if err != nil {
		return APIKey{}, err
	}
	if live >= MaxAPIKeys {
		return APIKey{}, ErrKeyLimit
	}
	hash := apikey.HashOf(nk.Key)
	k := APIKey{
		UserID: nk.UserID, Label: nk.Label, Active: true, CreatedAt: time.Unix(now, 0),
		Prefix: apikey.DisplayPrefix(nk.Key), Last4: apikey.Last4(nk.Key),
	}
	// A fresh id, never used before (see migration 0002).
	res, err := tx.ExecContext(ctx, `INSERT INTO api_key_ids DEFAULT VALUES`)
	if err != nil {
		return APIKey{}, err
	}
	if k.ID, err = res.LastInsertId(); err != nil {
		return APIKey{}, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM api_key_ids`); err != nil {
		return APIKey{}, err
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO api_keys (id, user_id, label, key_hash, prefix, last4, active, created_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)`,
		k.ID, k.UserID, k.Label, hash[:], k.Prefix, k.Last4, now)
	return k, err
}

// APIKeys lists a user's keys, newest first, in one query.
func (s *Store) APIKeys(ctx context.Context, userID int64) ([]APIKey, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = ? ORDER BY id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	keys := make([]APIKey, 0, 8)
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// APIKey returns one of the user's keys; another user's key is ErrNotFound.
func (s *Store) APIKey(ctx context.Context, userID, keyID int64) (APIKey, error) {
	k, err := scanAPIKey(s.read.QueryRowContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID))
	if err != nil {
		return APIKey{}, fmt.Errorf("API key: %w", err)
	}
	return k, nil
}

const apiKeyByHashQuery = `SELECT id, user_id, label, prefix, last4, active, expires_at
	FROM api_keys INDEXED BY api_keys_auth WHERE key_hash = ?`

// APIKeyByHash finds a key by the SHA-256 of the whole key, for API
// authentication. It reads only what authentication and /api/v1/me need
// (no usage, creation time or rotation link), all of it from the covering
// index api_keys_auth: SQLite would otherwise take the unique index on the
// hash and then read the row too. (PostgreSQL would say the same with a
// unique index INCLUDE-ing these columns.)
func (s *Store) APIKeyByHash(ctx context.Context, hash apikey.Hash) (APIKey, error) {
	k := APIKey{}
	var expires sql.NullInt64
	err := s.read.QueryRowContext(ctx, apiKeyByHashQuery, hash[:]).
		Scan(&k.ID, &k.UserID, &k.Label, &k.Prefix, &k.Last4, &k.Active, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("API key by hash: %w", err)
	}
	k.ExpiresAt = unix(expires)
	return k, nil
}

// SetAPIKeyActive deactivates or reactivates one of the user's keys and
// returns it as it now is. An expired key cannot be reactivated.
func (s *Store) SetAPIKeyActive(ctx context.Context, userID, keyID int64, active bool) (APIKey, error) {
	var k APIKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := expectOne(tx.ExecContext(ctx,
			`UPDATE api_keys SET active = ? WHERE id = ? AND user_id = ?`, active, keyID, userID)); err != nil {
			return err
		}
		var err error
		k, err = scanAPIKey(tx.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, keyID))
		return err
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("set API key active: %w", err)
	}
	return k, nil
}

// RotateAPIKey replaces one of the user's keys with next (same label): the
// old key keeps working for grace, then is refused as expired. A key that
// was already rotated or has expired cannot be rotated again. It returns
// the old key as it now is and the new key.
func (s *Store) RotateAPIKey(ctx context.Context, userID, keyID int64, next string, grace time.Duration) (old, replacement APIKey, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now().Unix()
		k, err := scanAPIKey(tx.QueryRowContext(ctx,
			`SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID))
		if err != nil {
			return err
		}
		if !k.ExpiresAt.IsZero() {
			return ErrAlreadyRotated
		}
		expires := now + int64(grace/time.Second)
		// Expire the old key first so that, with grace "now", the
		// replacement takes its place under the key limit.
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET expires_at = ? WHERE id = ?`, expires, keyID); err != nil {
			return err
		}
		replacement, err = insertAPIKey(ctx, tx, NewAPIKey{UserID: userID, Label: k.Label, Key: next}, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET replaced_by = ? WHERE id = ?`, replacement.ID, keyID); err != nil {
			return err
		}
		old, err = scanAPIKey(tx.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, keyID))
		return err
	})
	if err != nil {
		return APIKey{}, APIKey{}, fmt.Errorf("rotate API key: %w", err)
	}
	return old, replacement, nil
}

// DeleteAPIKey removes one of the user's keys for good.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, keyID int64) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return expectOne(tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID))
	})
	if err != nil {
		return fmt.Errorf("delete API key: %w", err)
	}
	return nil
}

// KeyUsage is usage of one key accumulated in memory since the last flush.
type KeyUsage struct {
	KeyID    int64
	Requests int64
	LastUsed time.Time
}

// RecordAPIKeyUsage adds accumulated usage to many keys in one transaction.
// Keys deleted meanwhile are skipped.
func (s *Store) RecordAPIKeyUsage(ctx context.Context, usage []KeyUsage) error {
	if len(usage) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE api_keys
			SET request_count = request_count + ?, last_used_at = max(coalesce(last_used_at, 0), ?)
			WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, u := range usage {
			if _, err := stmt.ExecContext(ctx, u.Requests, u.LastUsed.Unix(), u.KeyID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record API key usage: %w", err)
	}
	return nil
}

// CountActiveAPIKeys counts a user's keys that work right now.
func (s *Store) CountActiveAPIKeys(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx,
		`SELECT count(*) FROM api_keys WHERE user_id = ? AND active = 1 AND (expires_at IS NULL OR expires_at > ?)`,
		userID, s.now().Unix()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count active API keys: %w", err)
	}
	return n, nil
}
