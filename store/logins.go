package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// RecordLoginFailure notes a failed sign-in for an email (whether or not an
// account has it, so throttling reveals nothing) and returns how many
// failures that email has had since `since`, this one included.
func (s *Store) RecordLoginFailure(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now().Unix()
		// Keep the table small: older rows no longer count anywhere.
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE email = ? AND failed_at < ?`, email, since.Unix()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO login_failures (email, failed_at) VALUES (?, ?)`, email, now); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE email = ? AND failed_at >= ?`, email, since.Unix()).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("record login failure: %w", err)
	}
	return n, nil
}

// LoginFailures counts an email's failed sign-ins since `since`.
func (s *Store) LoginFailures(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE email = ? AND failed_at >= ?`, email, since.Unix()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("login failures: %w", err)
	}
	return n, nil
}

// ClearLoginFailures forgets an email's failures after a good sign-in.
func (s *Store) ClearLoginFailures(ctx context.Context, email string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE email = ?`, email)
		return err
	})
	if err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}
