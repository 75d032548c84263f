// Package templates holds PeekShot's templ components: the page layout,
// one file per page, and partials grouped by feature. Components receive
// everything they show through props; they hold no business rules.
package templates

import (
	"fmt"
	"strconv"
	"time"

	"github.com/peekshot/peekshot/account"
)

// Page is what every full page needs.
type Page struct {
	Title   string
	CSRF    string
	Viewer  *Viewer // nil when signed out
	Flashes []Flash
	// NoStore marks a page that shows a secret; it is kept out of caches.
	NoStore bool
}

// Viewer is the signed-in person, as the frame shows them.
type Viewer struct {
	Email   string
	Name    string
	Credits int64
}

// FlashKind picks the colour and icon of a message.
type FlashKind string

// Flash kinds.
const (
	FlashSuccess FlashKind = "success"
	FlashError   FlashKind = "error"
	FlashInfo    FlashKind = "info"
)

// Flash is a one-time message shown as a toast.
type Flash struct {
	Kind    FlashKind
	Message string
}

// Tab is one of the Account page's tabs.
type Tab string

// The Account tabs, in display order.
const (
	TabProfile Tab = "profile"
	TabAPIKeys Tab = "api-keys"
	TabCoupons Tab = "coupons"
)

// URL is the tab's address.
func (t Tab) URL() string { return "/account/" + string(t) }

// Title is the tab's name.
func (t Tab) Title() string {
	switch t {
	case TabProfile:
		return "Profile"
	case TabAPIKeys:
		return "API Keys"
	default:
		return "Redeem Coupon"
	}
}

// FieldErrors maps form field names to messages.
type FieldErrors map[string]string

// AuthForm is the sign-in or sign-up form with what was typed and what was wrong.
type AuthForm struct {
	CSRF   string
	Email  string
	Name   string
	Error  string // a message for the whole form
	Fields FieldErrors
}

// APIKeysProps is everything the API Keys tab shows.
type APIKeysProps struct {
	CSRF    string
	Keys    []account.APIKey
	Now     time.Time
	Reveal  *Reveal
	Create  CreateKeyForm
	BaseURL string // where the API answers, for the curl example
	// KeepReveal is the key whose revealed value a refreshed list leaves
	// where it is on the page (the server no longer has the value).
	KeepReveal int64
}

// AtLimit reports whether no further key can be created.
func (p APIKeysProps) AtLimit() bool { return account.LiveKeys(p.Keys, p.Now) >= account.MaxAPIKeys }

// revealInList reports whether the revealed key has a row to sit under.
func (p APIKeysProps) revealInList() bool {
	for _, k := range p.Keys {
		if p.Reveal != nil && k.ID == p.Reveal.KeyID {
			return true
		}
	}
	return false
}

// CreateKeyForm is the create form's state after a failed attempt.
type CreateKeyForm struct {
	Label string
	Error string
}

// Reveal is a key shown in full, once, right after it was created.
type Reveal struct {
	Key   string
	KeyID int64
	Label string
	// Replaced is the key this one replaced by rotation, if any.
	Replaced *account.APIKey
}

// ConfirmDeleteProps is the no-JavaScript confirmation page for deleting a key.
type ConfirmDeleteProps struct {
	CSRF string
	Key  account.APIKey
}

// ErrorProps is an error page or fragment.
type ErrorProps struct {
	Status  int
	Title   string
	Message string
}

// KeyLabel is how a key is named to people: its label, or "Untitled key".
func KeyLabel(k account.APIKey) string {
	if k.Label == "" {
		return "Untitled key"
	}
	return k.Label
}

// endedAt is when an expired key stopped working: its expiry or its
// retirement, whichever came first.
func endedAt(k account.APIKey) time.Time {
	if !k.ExpiresAt.IsZero() && (k.RetiresAt.IsZero() || k.ExpiresAt.Before(k.RetiresAt)) {
		return k.ExpiresAt
	}
	return k.RetiresAt
}

func keyRowID(id int64) string { return "key-" + strconv.FormatInt(id, 10) }

func revealRowID(id int64) string { return keyRowID(id) + "-reveal" }

func keyURL(id int64, action string) string {
	u := "/account/api-keys/" + strconv.FormatInt(id, 10)
	if action != "" {
		u += "/" + action
	}
	return u
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// RelTime says how long ago (or until) t is, as people say it.
func RelTime(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 45*time.Second:
		if future {
			return "in a few seconds"
		}
		return "just now"
	case d < 90*time.Second:
		s = "1 minute"
	case d < 45*time.Minute:
		s = plural(int64(d.Round(time.Minute)/time.Minute), "minute")
	case d < 90*time.Minute:
		s = "1 hour"
	case d < 22*time.Hour:
		s = plural(int64(d.Round(time.Hour)/time.Hour), "hour")
	case d < 36*time.Hour:
		s = "1 day"
	case d < 26*24*time.Hour:
		s = plural(int64(d.Round(24*time.Hour)/(24*time.Hour)), "day")
	case d < 45*24*time.Hour:
		s = "1 month"
	case d < 320*24*time.Hour:
		s = plural(int64(d/(30*24*time.Hour)), "month")
	default:
		s = plural(int64(d/(365*24*time.Hour)), "year")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// ExactTime is the full timestamp shown on hover.
func ExactTime(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04:05 UTC") }

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// FormatInt writes a count with thousands separators.
func FormatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// ProfileProps is everything the Profile tab shows.
type ProfileProps struct {
	CSRF       string
	User       account.User
	ActiveKeys int
	Now        time.Time
	Name       NameForm
	Password   PasswordForm
	Delete     DeleteAccountForm
}

// NameForm is the change-name form's state.
type NameForm struct {
	Name  string // what was typed, when it was refused
	Error string
}

// PasswordForm is the change-password form's state.
type PasswordForm struct {
	Fields FieldErrors
}

// DeleteAccountForm is the delete-account form's state.
type DeleteAccountForm struct {
	Error string
}

// CouponsProps is everything the Redeem Coupon tab shows.
type CouponsProps struct {
	CSRF        string
	Credits     int64
	Redemptions []account.Redemption
	Now         time.Time
	Code        string // what was typed, when it was refused
	Error       string
	Redeemed    *RedeemResult
}

// RedeemResult is a successful redemption.
type RedeemResult struct {
	Code    string
	Credits int64
	Balance int64
}

// Message says what a redemption did, for the inline result and the flash
// a plain form post gets.
func (r RedeemResult) Message() string {
	return CreditsText(r.Credits) + " added with " + r.Code + ". Your balance is now " + CreditsText(r.Balance) + "."
}

// CreditsText is an amount of credits as a sentence says it: "1 credit",
// "1,500 credits".
func CreditsText(n int64) string {
	if n == 1 {
		return "1 credit"
	}
	return FormatInt(n) + " credits"
}
