package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/sqlstore"
)

// channel is where instances announce their changes to each other.
const channel = "peekshot_changes"

// dialect is how PostgreSQL says what store/sqlstore leaves to it.
type dialect struct{}

func (dialect) Placeholders(query string) string { return sqlstore.PlaceholdersNumbered(query) }

// Classify tells a full disk and an unreachable database from every other
// error, so that the web layer answers 507 and 503 rather than 500.
func (dialect) Classify(err error) error {
	if err == nil {
		return nil
	}
	// A connection that could not be made is unavailability whatever the
	// server said (the database was dropped, the server is shutting down):
	// nothing was read or changed.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", account.ErrUnavailable, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53100": // disk_full
			return fmt.Errorf("%w: %w", account.ErrStorageFull, err)
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "53300",                                         // too_many_connections
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutting down, starting up
			return fmt.Errorf("%w: %w", account.ErrUnavailable, err)
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed") {
		return fmt.Errorf("%w: %w", account.ErrUnavailable, err)
	}
	return err
}

func pgCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

func (dialect) IsUniqueViolation(err error) bool { return pgCode(err, "23505") }

func (dialect) IsCheckViolation(err error) bool { return pgCode(err, "23514") }

// LockUser locks the user's row for the transaction. NO KEY UPDATE, not
// UPDATE: rows that only refer to the user (sessions, ledger) may still be
// written meanwhile.
func (dialect) LockUser(ctx context.Context, tx *sql.Tx, userID int64) error {
	_, err := tx.ExecContext(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, userID)
	return err
}

// LockEmail takes a transaction-scoped advisory lock on the email, which
// may have no row of its own.
func (dialect) LockEmail(ctx context.Context, tx *sql.Tx, email string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "peekshot login "+email)
	return err
}

func (dialect) NextAPIKeyID(ctx context.Context, tx *sql.Tx) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT nextval(pg_get_serial_sequence('api_keys', 'id'))`).Scan(&id)
	return id, err
}

func (dialect) Greatest() string { return "GREATEST" }

func (dialect) APIKeyByHashFrom() string { return "api_keys" }

// Notify announces the change on the channel; PostgreSQL delivers it to
// every listening instance when, and only if, the transaction commits.
func (dialect) Notify(ctx context.Context, tx *sql.Tx, c store.Change, _ time.Time) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, encodeChange(c))
	return err
}

func (dialect) Sweep(context.Context, *sql.Tx, time.Time) error { return nil }

// encodeChange is a change as a notification's payload:
// "keyID:userID:all", all being 1 or 0.
func encodeChange(c store.Change) string {
	all := "0"
	if c.AllKeys {
		all = "1"
	}
	return strconv.FormatInt(c.KeyID, 10) + ":" + strconv.FormatInt(c.UserID, 10) + ":" + all
}

func decodeChange(payload string) (store.Change, bool) {
	parts := strings.Split(payload, ":")
	if len(parts) != 3 {
		return store.Change{}, false
	}
	keyID, err1 := strconv.ParseInt(parts[0], 10, 64)
	userID, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return store.Change{}, false
	}
	return store.Change{KeyID: keyID, UserID: userID, AllKeys: parts[2] == "1"}, true
}
