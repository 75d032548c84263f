package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/peekshot/peekshot/account"
)

// ledgerEntry says why a balance changed.
type ledgerEntry struct {
	reason   string // signup, coupon, render
	couponID int64
	apiKeyID int64
}

// addCredits changes a balance by delta and records the change in the
// ledger, inside t, and returns the new balance. A change that would take
// the balance below zero changes nothing: ErrInsufficientCredits.
func addCredits(t *tx, userID, delta int64, e ledgerEntry) (int64, error) {
	var balance int64
	err := t.row(`UPDATE users SET credits = credits + ? WHERE id = ? AND credits + ? >= 0 RETURNING credits`,
		delta, userID, delta).Scan(&balance)
	if errors.Is(noRows(err), errNotFound) {
		var exists int
		if err := t.row(`SELECT count(*) FROM users WHERE id = ?`, userID).Scan(&exists); err != nil {
			return 0, err
		}
		if exists == 1 {
			return 0, account.ErrInsufficientCredits
		}
		return 0, errNotFound
	}
	if err != nil {
		return 0, err
	}
	// A key deleted while its render ran is no longer there to point at.
	_, err = t.exec(`INSERT INTO credit_ledger (user_id, delta, reason, coupon_id, api_key_id, created_at)
		VALUES (?, ?, ?, ?, (SELECT id FROM api_keys WHERE id = ?), ?)`,
		userID, delta, e.reason, nullID(e.couponID), e.apiKeyID, t.now.Unix())
	return balance, err
}

// AdmitRender admits one render: a token of the key's rate limit (GCRA:
// one conditional upsert, so every server shares the limit), then a credit
// of the balance that no other admitted render has reserved. Refused
// renders change nothing but the rate limit's count.
func (db *DB) AdmitRender(ctx context.Context, a account.RenderAdmission) (account.Reservation, error) {
	var r account.Reservation
	var refused error
	err := db.inTx(ctx, "admit render", func(t *tx) error {
		if refused = takeRateToken(t, a.KeyID, a.RatePerMinute); refused != nil {
			return nil
		}
		if a.Link != nil {
			paid, err := linkPaid(t, a.KeyID, a.Link)
			if err != nil || paid {
				r = account.Reservation{UserID: a.UserID, KeyID: a.KeyID, Link: a.Link, Free: true}
				return err
			}
		}
		if err := t.lockUser(a.UserID); err != nil {
			return err
		}
		var credits, reserved int64
		if err := balanceOf(t, a.UserID, &credits); err != nil {
			return err
		}
		if a.MonthlyBudget > 0 {
			over, err := overBudget(t, a)
			if err != nil {
				return err
			}
			if over != nil {
				refused = over
				return nil
			}
		}
		if err := t.row(`SELECT count(*) FROM credit_reservations WHERE user_id = ? AND expires_at > ?`, a.UserID, t.now.Unix()).Scan(&reserved); err != nil {
			return err
		}
		if credits-reserved <= 0 {
			refused = account.ErrInsufficientCredits
			return nil
		}
		r = account.Reservation{UserID: a.UserID, KeyID: a.KeyID, ExpiresAt: time.Unix(t.now.Add(account.ReservationTTL).Unix(), 0), Link: a.Link}
		return t.row(`INSERT INTO credit_reservations (user_id, api_key_id, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id`,
			a.UserID, a.KeyID, t.now.Unix(), r.ExpiresAt.Unix()).Scan(&r.ID)
	})
	if err != nil {
		return account.Reservation{}, err
	}
	if refused != nil {
		return account.Reservation{}, refused
	}
	return r, nil
}

// overBudget refuses a render that would take the key past its monthly
// budget: what it spent this month (UTC) and what its renders in flight
// have reserved. The caller holds the user's lock, so racing renders are
// counted one by one.
func overBudget(t *tx, a account.RenderAdmission) (*account.BudgetExhaustedError, error) {
	month := account.MonthStart(t.now)
	var spent, reserved int64
	if err := t.row(`SELECT coalesce(sum(credits), 0) FROM key_usage_days WHERE api_key_id = ? AND day >= ?`, a.KeyID, month.Unix()).Scan(&spent); err != nil {
		return nil, err
	}
	if err := t.row(`SELECT count(*) FROM credit_reservations WHERE api_key_id = ? AND expires_at > ?`, a.KeyID, t.now.Unix()).Scan(&reserved); err != nil {
		return nil, err
	}
	if spent+reserved < a.MonthlyBudget {
		return nil, nil
	}
	return &account.BudgetExhaustedError{Budget: a.MonthlyBudget, ResetsAt: month.AddDate(0, 1, 0)}, nil
}

// takeRateToken takes one request of the key's per-minute limit, with
// bursts up to the limit, or says how long until one is free. The
// generic cell rate algorithm keeps one number per key, the theoretical
// arrival time of the next request (in microseconds): a request is let in
// when that time is at most the burst allowance ahead of now, and pushes
// it on by one emission interval. A limit raised since the key's last
// render applies at once: the renders the stored time holds are counted
// again at the new rate (a lowered one applies from now on).
func takeRateToken(t *tx, keyID int64, perMinute int) error {
	if perMinute <= 0 {
		perMinute = 1
	}
	interval := int64(time.Minute/time.Microsecond) / int64(perMinute)
	burst := interval * int64(perMinute-1)
	now := t.now.UnixMicro()
	if _, err := t.exec(`UPDATE api_key_rates SET tat = ? + (tat - ?) * ? / interval_us, interval_us = ?
		WHERE api_key_id = ? AND interval_us > ? AND tat > ?`, now, now, interval, interval, keyID, interval, now); err != nil {
		return err
	}
	res, err := t.exec(`INSERT INTO api_key_rates (api_key_id, tat, interval_us) VALUES (?, ?, ?)
		ON CONFLICT (api_key_id) DO UPDATE SET tat = `+t.db.d.Greatest()+`(api_key_rates.tat, ?) + ?, interval_us = ?
		WHERE api_key_rates.tat - ? <= ?`, keyID, now+interval, interval, now, interval, interval, burst, now)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var tat int64
	if err := t.row(`SELECT tat FROM api_key_rates WHERE api_key_id = ?`, keyID).Scan(&tat); err != nil {
		return err
	}
	return &account.RateLimitedError{PerMinute: perMinute, RetryAfter: time.Duration(tat-burst-now) * time.Microsecond}
}

// ChargeRender takes the reserved credit for a successful render, with its
// ledger row, and returns the new balance. It changes nothing and returns
// ErrInsufficientCredits if the balance is zero after all (a reservation
// that outlived its server's render). A signed link is charged the first
// time only: its charge is recorded in the same transaction, and a link
// another instance charged meanwhile gives the reservation back instead.
func (db *DB) ChargeRender(ctx context.Context, r account.Reservation) (account.Charge, error) {
	var ch account.Charge
	if r.Free {
		// Nothing to write: the balance, read without the writer.
		n, err := db.Credits(ctx, r.UserID)
		ch.Balance = n
		return ch, err
	}
	err := db.inTx(ctx, "charge render", func(t *tx) error {
		if _, err := t.exec(`DELETE FROM credit_reservations WHERE id = ?`, r.ID); err != nil {
			return err
		}
		if r.Link != nil {
			first, err := recordLinkCharge(t, r.KeyID, r.Link)
			if err != nil {
				return err
			}
			if !first {
				return balanceOf(t, r.UserID, &ch.Balance)
			}
		}
		var err error
		if ch.Balance, err = addCredits(t, r.UserID, -1, ledgerEntry{reason: "render", apiKeyID: r.KeyID}); err != nil {
			return err
		}
		ch.Charged = true
		// What the key spent today, for its monthly budget; a key deleted
		// while its render ran has no day to count it in.
		if _, err := t.exec(`INSERT INTO key_usage_days (api_key_id, day, credits) SELECT id, ?, 1 FROM api_keys WHERE id = ?
			ON CONFLICT (api_key_id, day) DO UPDATE SET credits = key_usage_days.credits + 1`,
			account.DayStart(t.now).Unix(), r.KeyID); err != nil {
			return err
		}
		return t.notify(changeOfUser(r.UserID))
	})
	if err != nil {
		return account.Charge{}, err
	}
	return ch, nil
}

// balanceOf reads a user's balance inside t.
func balanceOf(t *tx, userID int64, balance *int64) error {
	return noRows(t.row(`SELECT credits FROM users WHERE id = ?`, userID).Scan(balance))
}

// linkPaid reports whether a signed link was charged within its lifetime.
func linkPaid(t *tx, keyID int64, l *account.PaidLink) (bool, error) {
	var n int
	err := t.row(`SELECT count(*) FROM signed_link_charges WHERE api_key_id = ? AND link = ? AND expires_at > ?`,
		keyID, l.ID[:], t.now.Unix()).Scan(&n)
	return n > 0, err
}

// recordLinkCharge records that a signed link is being charged, and
// reports whether it is the first charge (false: another instance charged
// it meanwhile). A key deleted while its render ran has no link to
// record: it is charged. Expired links go with the Sweep; until then an
// expired one is taken over by its new charge.
func recordLinkCharge(t *tx, keyID int64, l *account.PaidLink) (first bool, err error) {
	res, err := t.exec(`INSERT INTO signed_link_charges (api_key_id, link, expires_at) SELECT id, ?, ? FROM api_keys WHERE id = ?
		ON CONFLICT (api_key_id, link) DO UPDATE SET expires_at = excluded.expires_at WHERE signed_link_charges.expires_at <= ?`,
		l.ID[:], l.Expires.Unix(), keyID, t.now.Unix())
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return n == 1, err
	}
	paid, err := linkPaid(t, keyID, l)
	return !paid, err
}

// ReleaseRender gives back a reservation: the render failed.
func (db *DB) ReleaseRender(ctx context.Context, r account.Reservation) error {
	if r.Free {
		return nil // nothing was reserved
	}
	return db.inTx(ctx, "release render", func(t *tx) error {
		_, err := t.exec(`DELETE FROM credit_reservations WHERE id = ?`, r.ID)
		return err
	})
}

// LiveReservations counts the reservations that have not expired.
func (db *DB) LiveReservations(ctx context.Context) (int, error) {
	var n int
	if err := db.row(ctx, `SELECT count(*) FROM credit_reservations WHERE expires_at > ?`, db.now().Unix()).Scan(&n); err != nil {
		return 0, db.fail("live reservations", err)
	}
	return n, nil
}

// Credits returns a user's balance.
func (db *DB) Credits(ctx context.Context, userID int64) (int64, error) {
	var n int64
	if err := noRows(db.row(ctx, `SELECT credits FROM users WHERE id = ?`, userID).Scan(&n)); err != nil {
		return 0, db.fail("credits", err)
	}
	return n, nil
}

// Ledger returns a user's ledger, oldest first.
func (db *DB) Ledger(ctx context.Context, userID int64) ([]account.LedgerEntry, error) {
	rows, err := db.rows(ctx, `SELECT id, delta, reason, created_at FROM credit_ledger WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, db.fail("ledger", err)
	}
	defer rows.Close()
	var out []account.LedgerEntry
	for rows.Next() {
		var e account.LedgerEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.Delta, &e.Reason, &at); err != nil {
			return nil, db.fail("ledger", err)
		}
		e.CreatedAt = time.Unix(at, 0)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("ledger", err)
	}
	return out, nil
}

// LedgerMismatches lists users whose balance differs from their ledger
// sum; an empty result is the invariant holding.
func (db *DB) LedgerMismatches(ctx context.Context) ([]int64, error) {
	rows, err := db.rows(ctx, `
		SELECT u.id FROM users u
		LEFT JOIN (SELECT user_id, sum(delta) AS total FROM credit_ledger GROUP BY user_id) l ON l.user_id = u.id
		WHERE u.credits <> coalesce(l.total, 0)`)
	if err != nil {
		return nil, db.fail("ledger mismatches", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, db.fail("ledger mismatches", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("ledger mismatches", err)
	}
	return ids, nil
}
