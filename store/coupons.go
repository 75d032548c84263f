package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits on what a coupon can be.
const (
	// MaxCouponCodeLen bounds a code; codes are ASCII letters, digits, '-'
	// and '_', so they are easy to read out and type.
	MaxCouponCodeLen = 64
	// MaxCouponCredits bounds what one coupon adds, keeping balances far
	// from overflow however many coupons a user redeems.
	MaxCouponCredits = 1_000_000_000
)

// ErrCouponInvalid wraps the reason a new coupon was refused.
var ErrCouponInvalid = errors.New("invalid coupon")

// Coupon adds credits to the balances of the users who redeem it.
type Coupon struct {
	ID             int64
	Code           string // upper case
	Credits        int64
	MaxRedemptions int64 // 0: unlimited
	Redemptions    int64
	ExpiresAt      time.Time // zero: never
	DisabledAt     time.Time // zero: enabled
	CreatedAt      time.Time
}

// NewCoupon is what the operator asks for.
type NewCoupon struct {
	Code           string
	Credits        int64
	MaxRedemptions int64     // 0: unlimited
	ExpiresAt      time.Time // zero: never
}

// NormalizeCouponCode is how codes compare: trimmed, case-insensitive.
func NormalizeCouponCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// CheckCouponCode says what is wrong with a new coupon's code (already
// normalised), or returns nil.
func CheckCouponCode(code string) error {
	switch {
	case code == "":
		return fmt.Errorf("%w: the code is empty", ErrCouponInvalid)
	case len(code) > MaxCouponCodeLen:
		return fmt.Errorf("%w: the code is longer than %d characters", ErrCouponInvalid, MaxCouponCodeLen)
	}
	for _, r := range code {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: the code may only contain letters A-Z, digits, '-' and '_'", ErrCouponInvalid)
		}
	}
	return nil
}

func (nc NewCoupon) check() error {
	if err := CheckCouponCode(NormalizeCouponCode(nc.Code)); err != nil {
		return err
	}
	switch {
	case nc.Credits <= 0 || nc.Credits > MaxCouponCredits:
		return fmt.Errorf("%w: credits must be from 1 to %d", ErrCouponInvalid, MaxCouponCredits)
	case nc.MaxRedemptions < 0:
		return fmt.Errorf("%w: the maximum number of redemptions can't be negative", ErrCouponInvalid)
	}
	return nil
}

const couponColumns = `id, code, credits, max_redemptions, redemptions, expires_at, disabled_at, created_at`

func scanCoupon(row interface{ Scan(...any) error }) (Coupon, error) {
	var c Coupon
	var maxR, expires, disabled sql.NullInt64
	var created int64
	err := row.Scan(&c.ID, &c.Code, &c.Credits, &maxR, &c.Redemptions, &expires, &disabled, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Coupon{}, ErrNotFound
	}
	c.MaxRedemptions = maxR.Int64
	c.ExpiresAt, c.DisabledAt, c.CreatedAt = unix(expires), unix(disabled), time.Unix(created, 0)
	return c, err
}

// CreateCoupon stores a new coupon; a code in use (in any letter case) is
// ErrCouponExists, and a coupon that could never work is ErrCouponInvalid.
func (s *Store) CreateCoupon(ctx context.Context, nc NewCoupon) (Coupon, error) {
	if err := nc.check(); err != nil {
		return Coupon{}, fmt.Errorf("create coupon: %w", err)
	}
	c := Coupon{Code: NormalizeCouponCode(nc.Code), Credits: nc.Credits, MaxRedemptions: nc.MaxRedemptions, ExpiresAt: nc.ExpiresAt}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now().Unix()
		c.CreatedAt = time.Unix(now, 0)
		var expires sql.NullInt64
		if !nc.ExpiresAt.IsZero() {
			expires = sql.NullInt64{Int64: nc.ExpiresAt.Unix(), Valid: true}
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO coupons (code, credits, max_redemptions, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`,
			c.Code, c.Credits, nullID(c.MaxRedemptions), expires, now)
		if isUniqueViolation(err) {
			return ErrCouponExists
		}
		if err != nil {
			return err
		}
		c.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Coupon{}, fmt.Errorf("create coupon: %w", err)
	}
	return c, nil
}

// Coupons lists every coupon, newest first.
func (s *Store) Coupons(ctx context.Context) ([]Coupon, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+couponColumns+` FROM coupons ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list coupons: %w", err)
	}
	defer rows.Close()
	var out []Coupon
	for rows.Next() {
		c, err := scanCoupon(rows)
		if err != nil {
			return nil, fmt.Errorf("list coupons: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DisableCoupon stops a coupon from being redeemed again.
func (s *Store) DisableCoupon(ctx context.Context, code string) (Coupon, error) {
	var c Coupon
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now().Unix()
		if err := expectOne(tx.ExecContext(ctx,
			`UPDATE coupons SET disabled_at = coalesce(disabled_at, ?) WHERE code = ?`, now, NormalizeCouponCode(code))); err != nil {
			return err
		}
		var err error
		c, err = scanCoupon(tx.QueryRowContext(ctx, `SELECT `+couponColumns+` FROM coupons WHERE code = ?`, NormalizeCouponCode(code)))
		return err
	})
	if err != nil {
		return Coupon{}, fmt.Errorf("disable coupon: %w", err)
	}
	return c, nil
}

// Redemption is a coupon a user redeemed.
type Redemption struct {
	Code      string
	Credits   int64
	CreatedAt time.Time
}

// RedeemCoupon adds a coupon's credits to a user's balance, with its ledger
// row, and returns the coupon and the new balance. Unknown, disabled,
// expired, exhausted and already-redeemed codes change nothing; a user
// deleted meanwhile is ErrNotFound. The immediate transaction serialises
// redeemers, and the schema's CHECK and primary key would refuse an
// over-redemption even if it did not.
func (s *Store) RedeemCoupon(ctx context.Context, userID int64, code string) (Coupon, int64, error) {
	var c Coupon
	var balance int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var users int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ?`, userID).Scan(&users); err != nil {
			return err
		}
		if users == 0 {
			return ErrNotFound
		}
		var err error
		c, err = scanCoupon(tx.QueryRowContext(ctx, `SELECT `+couponColumns+` FROM coupons WHERE code = ?`, NormalizeCouponCode(code)))
		switch {
		case errors.Is(err, ErrNotFound):
			return ErrCouponUnknown
		case err != nil:
			return err
		case !c.DisabledAt.IsZero():
			return ErrCouponDisabled
		case !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt):
			return ErrCouponExpired
		}
		var mine int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM coupon_redemptions WHERE coupon_id = ? AND user_id = ?`, c.ID, userID).Scan(&mine); err != nil {
			return err
		}
		if mine > 0 {
			return ErrCouponRedeemed
		}
		if c.MaxRedemptions > 0 && c.Redemptions >= c.MaxRedemptions {
			return ErrCouponExhausted
		}
		res, err := tx.ExecContext(ctx, `UPDATE coupons SET redemptions = redemptions + 1
			WHERE id = ? AND (max_redemptions IS NULL OR redemptions < max_redemptions)`, c.ID)
		if err := expectOne(res, err); err != nil {
			if errors.Is(err, ErrNotFound) || isCheckViolation(err) {
				return ErrCouponExhausted
			}
			return err
		}
		c.Redemptions++
		_, err = tx.ExecContext(ctx, `INSERT INTO coupon_redemptions (coupon_id, user_id, credits, created_at) VALUES (?, ?, ?, ?)`,
			c.ID, userID, c.Credits, now.Unix())
		if isUniqueViolation(err) {
			return ErrCouponRedeemed
		}
		if err != nil {
			return err
		}
		if err := addCredits(ctx, tx, userID, c.Credits, ledgerEntry{reason: "coupon", couponID: c.ID, at: now.Unix()}); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT credits FROM users WHERE id = ?`, userID).Scan(&balance)
	})
	if err != nil {
		return Coupon{}, 0, fmt.Errorf("redeem coupon: %w", err)
	}
	return c, balance, nil
}

// Redemptions lists a user's redeemed coupons, newest first.
func (s *Store) Redemptions(ctx context.Context, userID int64) ([]Redemption, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT c.code, r.credits, r.created_at
		FROM coupon_redemptions r JOIN coupons c ON c.id = r.coupon_id
		WHERE r.user_id = ? ORDER BY r.created_at DESC, c.id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("redemptions: %w", err)
	}
	defer rows.Close()
	var out []Redemption
	for rows.Next() {
		var r Redemption
		var at int64
		if err := rows.Scan(&r.Code, &r.Credits, &at); err != nil {
			return nil, fmt.Errorf("redemptions: %w", err)
		}
		r.CreatedAt = time.Unix(at, 0)
		out = append(out, r)
	}
	return out, rows.Err()
}
