package account

import (
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

// Coupon adds credits to the balances of the users who redeem it, once
// per user.
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

// CouponStatus is whether a coupon can be redeemed, and if not, why.
type CouponStatus int

// Coupon statuses, in the order they are checked.
const (
	CouponActive CouponStatus = iota
	CouponDisabled
	CouponExpired
	CouponExhausted
)

// Status is the coupon's state at now.
func (c Coupon) Status(now time.Time) CouponStatus {
	switch {
	case !c.DisabledAt.IsZero():
		return CouponDisabled
	case passed(c.ExpiresAt, now):
		return CouponExpired
	case c.MaxRedemptions > 0 && c.Redemptions >= c.MaxRedemptions:
		return CouponExhausted
	}
	return CouponActive
}

// CanRedeem says why the coupon can't be redeemed at now, or nil.
func (c Coupon) CanRedeem(now time.Time) error {
	switch c.Status(now) {
	case CouponDisabled:
		return ErrCouponDisabled
	case CouponExpired:
		return ErrCouponExpired
	case CouponExhausted:
		return ErrCouponExhausted
	}
	return nil
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

// CheckCouponCode says what is wrong with a coupon's code (already
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

// Check says why a coupon could never work, or returns nil.
func (nc NewCoupon) Check() error {
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

// Redemption is a coupon a user redeemed.
type Redemption struct {
	Code      string
	Credits   int64
	CreatedAt time.Time
}
