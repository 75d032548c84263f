package account

import "time"

// LedgerEntry is one change of a balance: every change (sign-up grant,
// coupon, render) is one, written with the change, so a balance always
// equals the sum of its ledger.
type LedgerEntry struct {
	ID        int64
	Delta     int64
	Reason    string // signup, coupon, render
	CreatedAt time.Time
}

// ReservationTTL is how long a credit stays reserved for a render that is
// neither charged nor released: longer than any render may take (30 s, its
// queue included), so only a reservation whose server died mid-render ever
// runs out.
const ReservationTTL = 40 * time.Second

// Reservation is one credit set aside for a render that has been admitted
// and not yet charged or released. Reservations hold across server
// instances: a balance of N admits at most N renders at once, however many
// servers share it.
type Reservation struct {
	ID        int64
	UserID    int64
	KeyID     int64
	ExpiresAt time.Time
	// Link is the signed link the render is for, if any.
	Link *PaidLink
	// Free is a render of a link already paid for: nothing is reserved,
	// and charging it takes nothing.
	Free bool
}

// PaidLink names a signed link, whose image is paid for once in its
// lifetime whichever instance renders it and however often: by its id
// (a hash of the key and the link's signature) until it expires.
type PaidLink struct {
	ID      [32]byte
	Expires time.Time
}

// Charge is what settling a successful render did: the balance after it,
// and whether it took a credit (a link already paid for took none).
type Charge struct {
	Balance int64
	Charged bool
}

// RenderAdmission is what admitting one render is checked against.
type RenderAdmission struct {
	UserID int64
	KeyID  int64
	// RatePerMinute is the key's render limit per minute (> 0).
	RatePerMinute int
	// MonthlyBudget caps the credits the key spends per calendar month
	// (UTC); 0 means no cap.
	MonthlyBudget int64
	// Link is the signed link to render, if any: one already paid for
	// is admitted without a credit (the rate limit still holds).
	Link *PaidLink
}

// BudgetExhaustedError refuses a render over its key's monthly budget.
type BudgetExhaustedError struct {
	Budget   int64
	ResetsAt time.Time // the start of next month, UTC
}

func (e *BudgetExhaustedError) Error() string { return "monthly budget exhausted" }

// MonthStart is the first moment of t's calendar month, UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// DayStart is the first moment of t's day, UTC.
func DayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// RateLimitedError refuses a render over its key's rate limit.
type RateLimitedError struct {
	PerMinute  int
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string { return "rate limited" }
