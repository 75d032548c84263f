// Package account is PeekShot's domain: users, their API keys and the rules
// a key lives by, coupons, the credits ledger and sessions, and the errors
// the store reports for them. It holds no storage and no HTTP: the store
// keeps these types, the web layer shows and changes them, and each rule is
// written here once for both.
package account

import "errors"

// Errors a store reports; callers use errors.Is.
var (
	ErrNotFound            = errors.New("not found")
	ErrEmailTaken          = errors.New("email already registered")
	ErrKeyLimit            = errors.New("API key limit reached")
	ErrKeyExpired          = errors.New("API key expired")
	ErrAlreadyRotated      = errors.New("API key already rotated")
	ErrInsufficientCredits = errors.New("insufficient credits")
	ErrCouponExists        = errors.New("coupon code already exists")
	ErrCouponInvalid       = errors.New("invalid coupon")
	ErrCouponUnknown       = errors.New("unknown coupon")
	ErrCouponExpired       = errors.New("coupon expired")
	ErrCouponExhausted     = errors.New("coupon fully redeemed")
	ErrCouponRedeemed      = errors.New("coupon already redeemed by this user")
	ErrCouponDisabled      = errors.New("coupon disabled")
	// ErrStorageFull means the database could not grow (disk or quota full).
	ErrStorageFull = errors.New("storage full")
	// ErrUnavailable means the database could not be reached; nothing was
	// read or changed, and the request may be retried.
	ErrUnavailable = errors.New("database unavailable")
)
