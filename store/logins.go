package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AdmitLoginAttempt decides, before a password is compared, whether one more
// may be checked for an email (whether or not an account has it, so the
// throttle reveals nothing): at most limit since `since`. An admitted attempt
// is counted at once, in the same transaction as the count, so requests that
// race cannot all be admitted. A right password does not give the count
// back: that would let a burst that contains it check more than limit.
func (s *Store) AdmitLoginAttempt(ctx context.Context, email string, since time.Time, limit int) (bool, error) {
	admitted := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Keep the table small: older rows no longer count anywhere.
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE email = ? AND failed_at < ?`, email, since.Unix()); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE email = ?`, email).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return nil
		}
		admitted = true
		_, err := tx.ExecContext(ctx, `INSERT INTO login_failures (email, failed_at) VALUES (?, ?)`, email, s.now().Unix())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("admit login attempt: %w", err)
	}
	return admitted, nil
}

// LoginFailures counts the passwords checked for an email since `since`.
func (s *Store) LoginFailures(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE email = ? AND failed_at >= ?`, email, since.Unix()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("login failures: %w", err)
	}
	return n, nil
}
