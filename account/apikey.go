package account

import (
	"strconv"
	"time"

	"github.com/peekshot/peekshot/apikey"
)

// MaxAPIKeys is how many live (not expired) keys one user may hold.
const MaxAPIKeys = 50

// APIKey is a stored key: never the key itself, only its hash (kept by the
// store) and the parts needed to recognise it.
type APIKey struct {
	ID     int64
	UserID int64
	Label  string
	Prefix string // "psk_" + first four characters
	Last4  string
	Active bool
	// ExpiresAt is the expiry the owner chose; zero means never.
	// ExpiryLifetime is the lifetime it was chosen as (30 days, …), which
	// a rotation counts again from then; zero for a date or never.
	ExpiresAt      time.Time
	ExpiryLifetime time.Duration
	// Policy narrows what the key may do (SPEC §6).
	Policy    Policy
	CreatedAt time.Time
	// A rotated key was replaced by ReplacedBy at RotatedAt and keeps
	// working until RetiresAt: its retirement, which is not an expiry the
	// owner chose. Every rotated key has a retirement time; all three are
	// zero for a key never rotated.
	RotatedAt  time.Time
	RetiresAt  time.Time
	ReplacedBy int64
	// AutoRetire: the rotation chose grace auto, so RetiresAt moves to an
	// hour after the key's last use once its replacement was used (and
	// stays the 7-day limit until then).
	AutoRetire bool
	// Usage, as last flushed by the servers.
	FirstUsedAt   time.Time // zero if never used
	LastUsedAt    time.Time // zero if never used
	LastIP        string    // the client address of the last request
	LastUserAgent string
	RequestCount  int64
	// SpentThisMonth is the credits the key spent this calendar month
	// (UTC), when listed.
	SpentThisMonth int64
}

// Masked is the key as lists show it, e.g. "psk_7Gq2…x9Lb".
func (k APIKey) Masked() string { return apikey.Mask(k.Prefix, k.Last4) }

// KeyStatus is what a key's status badge says and what the API does with it.
type KeyStatus int

// Key statuses.
const (
	// KeyActive works.
	KeyActive KeyStatus = iota
	// KeyInactive is deactivated: refused until activated again.
	KeyInactive
	// KeyExpiring works, and expires within ExpiringSoon.
	KeyExpiring
	// KeyRetiring was rotated and works until its retirement.
	KeyRetiring
	// KeyExpired is past its expiry or its retirement: refused for good.
	KeyExpired
)

// Status is the key's state at now. Expiry and retirement win over
// deactivation: an expired key can never work again.
func (k APIKey) Status(now time.Time) KeyStatus {
	switch {
	case passed(k.ExpiresAt, now) || passed(k.RetiresAt, now):
		return KeyExpired
	case !k.Active:
		return KeyInactive
	case k.Rotated():
		return KeyRetiring
	case !k.ExpiresAt.IsZero() && k.ExpiresAt.Sub(now) <= ExpiringSoon:
		return KeyExpiring
	default:
		return KeyActive
	}
}

// EndsAt is when the key stops working for good: the earlier of its
// owner's expiry and its retirement after a rotation; zero for neither.
func (k APIKey) EndsAt() time.Time {
	if k.EndIsExpiry() {
		return k.ExpiresAt
	}
	return k.RetiresAt
}

// EndIsExpiry reports whether the key's end is its owner's expiry rather
// than the end of a rotation's grace period.
func (k APIKey) EndIsExpiry() bool {
	return !k.ExpiresAt.IsZero() && (k.RetiresAt.IsZero() || k.ExpiresAt.Before(k.RetiresAt))
}

// ExpiringSoon is how close to its expiry a key's status says so.
const ExpiringSoon = 7 * 24 * time.Hour

// passed reports whether a deadline is set and now is at or after it.
func passed(deadline, now time.Time) bool { return !deadline.IsZero() && !now.Before(deadline) }

// Rotated reports whether the key has been replaced by a rotation.
func (k APIKey) Rotated() bool { return !k.RetiresAt.IsZero() }

// Works reports whether the API accepts the key at now.
func (k APIKey) Works(now time.Time) bool {
	s := k.Status(now)
	return s == KeyActive || s == KeyExpiring || s == KeyRetiring
}

// Live reports whether the key counts towards MaxAPIKeys: every key that
// has not expired.
func (k APIKey) Live(now time.Time) bool { return k.Status(now) != KeyExpired }

// CanActivate says whether the key may be turned back on: an expired key
// cannot.
func (k APIKey) CanActivate(now time.Time) error {
	if k.Status(now) == KeyExpired {
		return ErrKeyExpired
	}
	return nil
}

// CanRotate says whether the key may be replaced: not once expired, and
// not twice.
func (k APIKey) CanRotate(now time.Time) error {
	switch {
	case k.Status(now) == KeyExpired:
		return ErrKeyExpired
	case k.Rotated():
		return ErrAlreadyRotated
	}
	return nil
}

// LiveKeys counts the keys that count towards MaxAPIKeys.
func LiveKeys(keys []APIKey, now time.Time) int {
	n := 0
	for _, k := range keys {
		if k.Live(now) {
			n++
		}
	}
	return n
}

// NewAPIKey is a freshly generated key to store; the plaintext goes no
// further than the store, which keeps only its hash. The zero Policy is
// DefaultPolicy.
type NewAPIKey struct {
	UserID int64
	Label  string
	Key    string
	Policy Policy
	Expiry Expiry
}

// KeySettings are what the owner may change of a key after its creation.
type KeySettings struct {
	Label  string
	Policy Policy
	Expiry Expiry
}

// Grace is how long a rotated key keeps working: For, or with Auto until
// an hour after its last use once its replacement was used, For (the
// latest) at most.
type Grace struct {
	For  time.Duration
	Auto bool
}

// Period says a fixed grace period for people: "1 hour", "24 hours",
// "7 days" (whole days past a day, hours below).
func (g Grace) Period() string {
	unit, n := "hour", int64(g.For/time.Hour)
	if g.For > 24*time.Hour && g.For%(24*time.Hour) == 0 {
		unit, n = "day", int64(g.For/(24*time.Hour))
	}
	if g.For%time.Hour != 0 || n == 0 {
		return g.For.String()
	}
	if n != 1 {
		unit += "s"
	}
	return strconv.FormatInt(n, 10) + " " + unit
}

// Auto grace's two numbers (SPEC §2).
const (
	AutoGraceQuiet = time.Hour
	AutoGraceMax   = 7 * 24 * time.Hour
)

// AutoGrace is grace=auto.
var AutoGrace = Grace{For: AutoGraceMax, Auto: true}

// AutoRetirement is when a key rotated with grace auto retires, given its
// last use and its replacement's first: an hour after the later of the
// two, once the replacement was used; never later than its limit.
func AutoRetirement(limit, lastUsed, replacementFirstUsed time.Time) time.Time {
	if replacementFirstUsed.IsZero() {
		return limit
	}
	quietFrom := replacementFirstUsed
	if lastUsed.After(quietFrom) {
		quietFrom = lastUsed
	}
	if at := quietFrom.Add(AutoGraceQuiet); at.Before(limit) {
		return at
	}
	return limit
}

// RotatedExpiry is the expiry of a key's replacement: a lifetime counts
// again from the rotation, a date stays the date.
func (k APIKey) RotatedExpiry(now time.Time) Expiry {
	if k.ExpiryLifetime > 0 {
		return Expiry{At: ExpiryAfter(k.ExpiryLifetime, now), Lifetime: k.ExpiryLifetime}
	}
	return Expiry{At: k.ExpiresAt}
}
