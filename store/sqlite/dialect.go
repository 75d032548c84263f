package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
)

var errStorageFull = account.ErrStorageFull

// dialect is how SQLite says what store/sqlstore leaves to it.
type dialect struct{}

func (dialect) Placeholders(query string) string { return query }

func (dialect) Classify(err error) error { return storageErr(err) }

func (dialect) IsUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

func (dialect) IsCheckViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintCheck
}

// LockUser and LockEmail have nothing to do: every write transaction is
// immediate on the one writer connection, so it runs alone.
func (dialect) LockUser(context.Context, *sql.Tx, int64) error { return nil }

func (dialect) LockEmail(context.Context, *sql.Tx, string) error { return nil }

// NextAPIKeyID draws from api_key_ids, whose AUTOINCREMENT high-water mark
// never goes back (see migration 00002).
func (dialect) NextAPIKeyID(ctx context.Context, tx *sql.Tx) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO api_key_ids DEFAULT VALUES`)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM api_key_ids`); err != nil {
		return 0, err
	}
	return id, nil
}

func (dialect) Greatest() string { return "max" }

// APIKeyByHashFrom names the covering index: SQLite would otherwise take
// the unique index on the hash and then read the row too.
func (dialect) APIKeyByHashFrom() string { return "api_keys INDEXED BY api_keys_auth" }

// Notify records the change for other processes, which poll for it.
func (dialect) Notify(ctx context.Context, tx *sql.Tx, c store.Change, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO changes (key_id, user_id, all_keys, at) VALUES (?, ?, ?, ?)`,
		nullInt(c.KeyID), nullInt(c.UserID), c.AllKeys, at.Unix())
	return err
}

// changesKept is how long a change record stays for pollers to read.
const changesKept = 10 * time.Minute

func (dialect) Sweep(ctx context.Context, tx *sql.Tx, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE at < ?`, now.Add(-changesKept).Unix()); err != nil {
		return fmt.Errorf("sweep changes: %w", err)
	}
	return nil
}

func nullInt(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: n != 0} }
