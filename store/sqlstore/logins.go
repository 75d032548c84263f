package sqlstore

import (
	"context"
	"time"
)

// AdmitLoginAttempt decides, before a password is compared, whether one more
// may be checked for an email (whether or not an account has it, so the
// throttle reveals nothing): at most limit since `since`. An admitted attempt
// is counted at once, in the same transaction as the count, so requests that
// race cannot all be admitted. A right password does not give the count
// back: that would let a burst that contains it check more than limit.
func (db *DB) AdmitLoginAttempt(ctx context.Context, email string, since time.Time, limit int) (bool, error) {
	admitted := false
	err := db.inTx(ctx, "admit login attempt", func(t *tx) error {
		if err := db.d.LockEmail(ctx, t.Tx, email); err != nil {
			return err
		}
		// Keep the table small: older rows no longer count anywhere.
		if _, err := t.exec(`DELETE FROM login_attempts WHERE email = ? AND attempted_at < ?`, email, since.Unix()); err != nil {
			return err
		}
		var n int
		if err := t.row(`SELECT count(*) FROM login_attempts WHERE email = ?`, email).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return nil
		}
		admitted = true
		_, err := t.exec(`INSERT INTO login_attempts (email, attempted_at) VALUES (?, ?)`, email, t.now.Unix())
		return err
	})
	return admitted, err
}

// LoginFailures counts the passwords checked for an email since `since`.
func (db *DB) LoginFailures(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	if err := db.row(ctx, `SELECT count(*) FROM login_attempts WHERE email = ? AND attempted_at >= ?`, email, since.Unix()).Scan(&n); err != nil {
		return 0, db.fail("login failures", err)
	}
	return n, nil
}
