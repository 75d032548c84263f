package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ledgerEntry says why a balance changed.
type ledgerEntry struct {
	reason   string // signup, coupon, render
	couponID int64
	apiKeyID int64
	at       int64
}

// addCredits changes a balance by delta and records the change in the
// ledger, inside the caller's transaction. A change that would take the
// balance below zero changes nothing and returns ErrInsufficientCredits.
func addCredits(ctx context.Context, tx *sql.Tx, userID, delta int64, e ledgerEntry) error {
	res, err := tx.ExecContext(ctx,
		`UPDATE users SET credits = credits + ? WHERE id = ? AND credits + ? >= 0`, delta, userID, delta)
	if err := expectOne(res, err); err != nil {
		if err == ErrNotFound {
			var exists int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ?`, userID).Scan(&exists); err != nil {
				return err
			}
			if exists == 1 {
				return ErrInsufficientCredits
			}
		}
		return err
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO credit_ledger (user_id, delta, reason, coupon_id, api_key_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		userID, delta, e.reason, nullID(e.couponID), nullID(e.apiKeyID), e.at)
	return err
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// ChargeRender takes one credit for a successful render made with apiKeyID,
// with its ledger row, and returns the new balance. At zero it changes
// nothing and returns ErrInsufficientCredits, however many requests race.
func (s *Store) ChargeRender(ctx context.Context, userID, apiKeyID int64) (int64, error) {
	var balance int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := addCredits(ctx, tx, userID, -1, ledgerEntry{reason: "render", apiKeyID: apiKeyID, at: s.now().Unix()}); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT credits FROM users WHERE id = ?`, userID).Scan(&balance)
	})
	if err != nil {
		return 0, fmt.Errorf("charge render: %w", err)
	}
	return balance, nil
}

// Credits returns a user's balance.
func (s *Store) Credits(ctx context.Context, userID int64) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT credits FROM users WHERE id = ?`, userID).Scan(&n)
	if err == sql.ErrNoRows {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("credits: %w", err)
	}
	return n, nil
}

// LedgerEntry is one change of a balance.
type LedgerEntry struct {
	ID        int64
	Delta     int64
	Reason    string
	CreatedAt time.Time
}

// Ledger returns a user's ledger, oldest first.
func (s *Store) Ledger(ctx context.Context, userID int64) ([]LedgerEntry, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT id, delta, reason, created_at FROM credit_ledger WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	var out []LedgerEntry
	for rows.Next() {
		var e LedgerEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.Delta, &e.Reason, &at); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		e.CreatedAt = time.Unix(at, 0)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LedgerMismatches lists users whose balance differs from their ledger sum;
// an empty result is the invariant holding. Reliability tests and the
// operator use it.
func (s *Store) LedgerMismatches(ctx context.Context) ([]int64, error) {
	rows, err := s.read.QueryContext(ctx, `
		SELECT u.id FROM users u
		LEFT JOIN (SELECT user_id, sum(delta) AS total FROM credit_ledger GROUP BY user_id) l ON l.user_id = u.id
		WHERE u.credits <> coalesce(l.total, 0)`)
	if err != nil {
		return nil, fmt.Errorf("ledger mismatches: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
