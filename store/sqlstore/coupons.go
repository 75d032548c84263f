package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/peekshot/peekshot/account"
)

const couponColumns = `id, code, credits, max_redemptions, redemptions, expires_at, disabled_at, created_at`

func scanCoupon(row interface{ Scan(...any) error }) (account.Coupon, error) {
	var c account.Coupon
	var maxR, expires, disabled sql.NullInt64
	var created int64
	err := row.Scan(&c.ID, &c.Code, &c.Credits, &maxR, &c.Redemptions, &expires, &disabled, &created)
	if err != nil {
		return account.Coupon{}, noRows(err)
	}
	c.MaxRedemptions = maxR.Int64
	c.ExpiresAt, c.DisabledAt, c.CreatedAt = unix(expires), unix(disabled), time.Unix(created, 0)
	return c, nil
}

// CreateCoupon stores a new coupon; a code in use (in any letter case) is
// ErrCouponExists, and a coupon that could never work is ErrCouponInvalid.
func (db *DB) CreateCoupon(ctx context.Context, nc account.NewCoupon) (account.Coupon, error) {
	if err := nc.Check(); err != nil {
		return account.Coupon{}, db.fail("create coupon", err)
	}
	c := account.Coupon{Code: account.NormalizeCouponCode(nc.Code), Credits: nc.Credits, MaxRedemptions: nc.MaxRedemptions, ExpiresAt: nc.ExpiresAt}
	err := db.inTx(ctx, "create coupon", func(t *tx) error {
		c.CreatedAt = time.Unix(t.now.Unix(), 0)
		err := t.row(`INSERT INTO coupons (code, credits, max_redemptions, expires_at, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			c.Code, c.Credits, nullID(c.MaxRedemptions), nullUnix(nc.ExpiresAt), t.now.Unix()).Scan(&c.ID)
		if db.d.IsUniqueViolation(err) {
			return account.ErrCouponExists
		}
		return err
	})
	if err != nil {
		return account.Coupon{}, err
	}
	return c, nil
}

// Coupons lists every coupon, newest first.
func (db *DB) Coupons(ctx context.Context) ([]account.Coupon, error) {
	rows, err := db.rows(ctx, `SELECT `+couponColumns+` FROM coupons ORDER BY id DESC`)
	if err != nil {
		return nil, db.fail("list coupons", err)
	}
	defer rows.Close()
	var out []account.Coupon
	for rows.Next() {
		c, err := scanCoupon(rows)
		if err != nil {
			return nil, db.fail("list coupons", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("list coupons", err)
	}
	return out, nil
}

// DisableCoupon stops a coupon from being redeemed again.
func (db *DB) DisableCoupon(ctx context.Context, code string) (account.Coupon, error) {
	var c account.Coupon
	code = account.NormalizeCouponCode(code)
	err := db.inTx(ctx, "disable coupon", func(t *tx) error {
		if err := expectOne(t.exec(`UPDATE coupons SET disabled_at = coalesce(disabled_at, ?) WHERE code = ?`, t.now.Unix(), code)); err != nil {
			return err
		}
		var err error
		c, err = scanCoupon(t.row(`SELECT `+couponColumns+` FROM coupons WHERE code = ?`, code))
		return err
	})
	return c, err
}

// RedeemCoupon adds a coupon's credits to a user's balance, with its ledger
// row, and returns the coupon and the new balance. Unknown, disabled,
// expired, exhausted and already-redeemed codes change nothing; a user
// deleted meanwhile is ErrNotFound. The redemption count only grows where
// it is below the maximum, in the same statement that checks it, and the
// schema's CHECK and primary key would refuse an over-redemption even if
// it did not.
func (db *DB) RedeemCoupon(ctx context.Context, userID int64, code string) (account.Coupon, int64, error) {
	var c account.Coupon
	var balance int64
	err := db.inTx(ctx, "redeem coupon", func(t *tx) error {
		if err := t.lockUser(userID); err != nil {
			return err
		}
		var users int
		if err := t.row(`SELECT count(*) FROM users WHERE id = ?`, userID).Scan(&users); err != nil {
			return err
		}
		if users == 0 {
			return errNotFound
		}
		var err error
		c, err = scanCoupon(t.row(`SELECT `+couponColumns+` FROM coupons WHERE code = ?`, account.NormalizeCouponCode(code)))
		switch {
		case errors.Is(err, errNotFound):
			return account.ErrCouponUnknown
		case err != nil:
			return err
		}
		var mine int
		if err := t.row(`SELECT count(*) FROM coupon_redemptions WHERE coupon_id = ? AND user_id = ?`, c.ID, userID).Scan(&mine); err != nil {
			return err
		}
		if mine > 0 {
			return account.ErrCouponRedeemed
		}
		if err := c.CanRedeem(t.now); err != nil {
			return err
		}
		res, err := t.exec(`UPDATE coupons SET redemptions = redemptions + 1
			WHERE id = ? AND (max_redemptions IS NULL OR redemptions < max_redemptions)`, c.ID)
		if err := expectOne(res, err); err != nil {
			if errors.Is(err, errNotFound) || db.d.IsCheckViolation(err) {
				return account.ErrCouponExhausted
			}
			return err
		}
		c.Redemptions++
		_, err = t.exec(`INSERT INTO coupon_redemptions (coupon_id, user_id, credits, created_at) VALUES (?, ?, ?, ?)`,
			c.ID, userID, c.Credits, t.now.Unix())
		if db.d.IsUniqueViolation(err) {
			return account.ErrCouponRedeemed
		}
		if err != nil {
			return err
		}
		if balance, err = addCredits(t, userID, c.Credits, ledgerEntry{reason: "coupon", couponID: c.ID}); err != nil {
			return err
		}
		if err := t.log(userID, account.EventCouponRedeemed, nil, c.Code+": "+strconv.FormatInt(c.Credits, 10)+" credits"); err != nil {
			return err
		}
		return t.notify(changeOfUser(userID))
	})
	if err != nil {
		return account.Coupon{}, 0, err
	}
	return c, balance, nil
}

// Redemptions lists a user's redeemed coupons, newest first.
func (db *DB) Redemptions(ctx context.Context, userID int64) ([]account.Redemption, error) {
	rows, err := db.rows(ctx, `SELECT c.code, r.credits, r.created_at
		FROM coupon_redemptions r JOIN coupons c ON c.id = r.coupon_id
		WHERE r.user_id = ? ORDER BY r.created_at DESC, c.id DESC`, userID)
	if err != nil {
		return nil, db.fail("redemptions", err)
	}
	defer rows.Close()
	var out []account.Redemption
	for rows.Next() {
		var r account.Redemption
		var at int64
		if err := rows.Scan(&r.Code, &r.Credits, &at); err != nil {
			return nil, db.fail("redemptions", err)
		}
		r.CreatedAt = time.Unix(at, 0)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("redemptions", err)
	}
	return out, nil
}
