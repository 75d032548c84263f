// Package templates holds PeekShot's templ components: the page layout,
// one file per page, and partials grouped by feature. Components receive
// everything they show through props; they hold no business rules.
package templates

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	// Leaks are the viewer's keys reported leaked that still need them:
	// the red banner of every Account page.
	Leaks []account.LeakReport
}

// LeakBanner is the red banner about keys reported leaked.
type LeakBanner struct {
	CSRF  string
	Leaks []account.LeakReport
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
	// TabActivity is the activity log: a page of the Account page without
	// a tab of its own (the three tabs stay), linked from two of them.
	TabActivity Tab = "activity"
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
	case TabActivity:
		return "Activity"
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
	// Findings are what key health points out; none, no card.
	Findings []account.Finding
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
	Label  string
	Error  string
	Policy PolicyForm
}

// Reveal is a key shown in full, once, right after it was created.
type Reveal struct {
	Key   string
	KeyID int64
	Label string
	// Replaced is the key this one replaced by rotation, if any.
	Replaced *account.APIKey
}

// ShownOnce is a secret shown once (a new key, a new signing secret): the
// id of its field, the field's label, the no-JavaScript disclosure's
// summary, and the secret.
type ShownOnce struct {
	ID, Label, Summary, Value string
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
func KeyLabel(k account.APIKey) string { return labelOrUntitled(k.Label) }

// labelOrUntitled is a key's label as people see it: "Untitled key" when
// it has none.
func labelOrUntitled(label string) string {
	if label == "" {
		return "Untitled key"
	}
	return label
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

// PolicyForm is the policy fields of the create form or of a key's
// settings: what they hold (typed, or the key's own) and what was wrong.
type PolicyForm struct {
	Expires        string // never, 7d, 30d, 90d, 1y, date, or keep (settings)
	ExpiresDate    string
	Scopes         []account.Scope
	AllowedIPs     string
	AllowedTargets string
	RateLimit      string
	MonthlyBudget  string
	Errors         FieldErrors
	// RateMax is the server's rate limit: the default, and the most a key
	// may have.
	RateMax int
	// Current is the key's expiry when the form edits one (zero: never).
	Current time.Time
	Editing bool
	// Today bounds the date input (UTC).
	Today time.Time
}

// Open reports whether the form's options should show: it has an error,
// or a value other than the defaults.
func (f PolicyForm) Open() bool {
	return len(f.Errors) > 0 || f.Expires != "" && f.Expires != "never" && f.Expires != "keep" || f.ExpiresDate != "" ||
		f.AllowedIPs != "" || f.AllowedTargets != "" || f.RateLimit != "" || f.MonthlyBudget != "" ||
		f.Scopes != nil && !slices.Equal(f.Scopes, account.DefaultScopes)
}

func (f PolicyForm) hasScope(s account.Scope) bool {
	if f.Scopes == nil {
		return slices.Contains(account.DefaultScopes, s)
	}
	return slices.Contains(f.Scopes, s)
}

// PolicyFormOf is the settings form of a key, filled in with its policy.
func PolicyFormOf(k account.APIKey, rateMax int, now time.Time) PolicyForm {
	f := PolicyForm{Expires: "keep", Scopes: k.Policy.Scopes, RateMax: rateMax, Current: k.ExpiresAt, Editing: true, Today: now}
	ips := make([]string, len(k.Policy.AllowedIPs))
	for i, p := range k.Policy.AllowedIPs {
		ips[i] = prefixText(p)
	}
	f.AllowedIPs = strings.Join(ips, "\n")
	f.AllowedTargets = strings.Join(k.Policy.AllowedTargets, "\n")
	if k.Policy.RateLimit > 0 {
		f.RateLimit = strconv.Itoa(k.Policy.RateLimit)
	}
	if k.Policy.MonthlyBudget > 0 {
		f.MonthlyBudget = strconv.FormatInt(k.Policy.MonthlyBudget, 10)
	}
	return f
}

// lastExpiryDay is the last day a key made today may expire on.
func lastExpiryDay(today time.Time) string {
	return today.UTC().Add(account.MaxExpiry - 24*time.Hour).Format("2006-01-02")
}

// prefixText is an allowed address as people write it: a single address
// without its /32 or /128.
func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// scopeHelp says in one line what each scope lets a key do.
var scopeHelp = map[account.Scope]string{
	account.ScopeScreenshots: "POST /api/v1/screenshots: render a URL",
	account.ScopeHTMLToImage: "POST /api/v1/html-to-image: render HTML you send",
	account.ScopeKeysRead:    "GET /api/v1/keys: list this account's keys",
	account.ScopeKeysWrite:   "create, change, rotate and delete keys through the API",
}

// Badge is one of a key's restrictions, as the list shows it.
type Badge struct {
	Text  string
	Title string
}

// PolicyBadges are what a key's policy says beyond the defaults: its
// expiry, scopes other than the two render ones, addresses, sites, rate
// limit and budget.
func PolicyBadges(k account.APIKey, now time.Time) []Badge {
	var out []Badge
	p := k.Policy
	if !k.ExpiresAt.IsZero() && k.Status(now) != account.KeyExpired {
		out = append(out, Badge{"Expires " + k.ExpiresAt.UTC().Format("2 Jan 2006"), "Stops working " + ExactTime(k.ExpiresAt)})
	}
	if !slices.Equal(p.Scopes, account.DefaultScopes) {
		names := make([]string, len(p.Scopes))
		for i, s := range p.Scopes {
			names[i] = string(s)
		}
		out = append(out, Badge{plural(int64(len(p.Scopes)), "scope"), "Scopes: " + strings.Join(names, ", ")})
	}
	if len(p.AllowedIPs) > 0 {
		ips := make([]string, len(p.AllowedIPs))
		for i, pre := range p.AllowedIPs {
			ips[i] = prefixText(pre)
		}
		out = append(out, Badge{"IP-restricted", "Only from " + strings.Join(ips, ", ")})
	}
	if len(p.AllowedTargets) > 0 {
		out = append(out, Badge{plural(int64(len(p.AllowedTargets)), "site"), "Only renders " + strings.Join(p.AllowedTargets, ", ")})
	}
	if p.RateLimit > 0 {
		out = append(out, Badge{strconv.Itoa(p.RateLimit) + "/min", strconv.Itoa(p.RateLimit) + " renders a minute at most"})
	}
	if p.MonthlyBudget > 0 {
		out = append(out, Badge{FormatInt(k.SpentThisMonth) + " / " + FormatInt(p.MonthlyBudget) + " this month",
			"Spends at most " + CreditsText(p.MonthlyBudget) + " a calendar month (UTC)"})
	}
	return out
}

// KeyPageProps is everything a key's page shows.
type KeyPageProps struct {
	CSRF     string
	Key      account.APIKey
	Now      time.Time
	Settings SettingsForm
	Chart    UsageChart
	// Recent is the key's latest activity.
	Recent []account.Activity
	// Signing is the key's signing secret for signed links; nil: none.
	Signing *account.SigningSecret
	// SigningReveal is a new signing secret, shown once.
	SigningReveal *SigningReveal
	// APIBase is where the API answers, for the signed-link examples.
	APIBase string
}

// SigningReveal is a key's new signing secret, shown once, and a link
// signed with it to try.
type SigningReveal struct {
	Secret     string
	ExampleURL string
	Rotated    bool // it replaced a secret
}

// SignedLinkHowTo is how to sign a link for key keyID by hand, in a
// shell: the canonical query (parameters sorted by name, RFC 3986
// encoded), its HMAC-SHA256 under the secret, the link.
func SignedLinkHowTo(apiBase string, keyID int64) string {
	return "SECRET=pss_…   # this key's signing secret, kept on your server\n" +
		"QUERY=\"expires=$(( $(date +%s) + 86400 ))&height=720&key_id=" + itoa(keyID) + "&url=https%3A%2F%2Fexample.com&width=1280\"\n" +
		"SIG=$(printf '%s' \"$QUERY\" | openssl dgst -sha256 -hmac \"$SECRET\" | awk '{print $NF}')\n" +
		"echo \"" + apiBase + "/api/v1/screenshots?$QUERY&signature=$SIG\""
}

// ShortTime is a moment as a banner says it: "14:02 UTC on 3 Jan 2026".
func ShortTime(t time.Time) string { return t.UTC().Format("15:04 UTC on 2 Jan 2006") }

// LeakDone says what became of a key reported leaked.
func LeakDone(l account.LeakReport) string {
	switch {
	case l.Key.Active:
		return "It was turned back on and works: rotate it, so that the copy that leaked stops working."
	case !l.DeactivatedAt.IsZero():
		return "PeekShot deactivated it at " + ShortTime(l.DeactivatedAt) + ": requests with it are refused. Rotate it to get a replacement with the same settings."
	}
	return "It was already deactivated. Rotate it, or delete it if nothing uses it."
}

// leakLink is a leak's URL when it is a web address to link to, else "".
func leakLink(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return raw
}

// SettingsForm is a key's settings form: its label and policy fields, and
// what was wrong when a change was refused.
type SettingsForm struct {
	Label      string
	LabelError string
	Policy     PolicyForm
}

// Open reports whether the form should show open: it was refused.
func (f SettingsForm) Open() bool { return f.LabelError != "" || len(f.Policy.Errors) > 0 }

// lifetimeText is an expiry's lifetime as the form offered it.
func lifetimeText(d time.Duration) string {
	switch days := int64(d / (24 * time.Hour)); {
	case days == 365:
		return "1 year"
	case days > 0:
		return plural(days, "day")
	}
	return d.String()
}

// scopeNames lists scopes for people.
func scopeNames(scopes []account.Scope) string {
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func prefixesText(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = prefixText(p)
	}
	return out
}

// retirement is what a rotated key's retirement waits for.
type retirement int

const (
	retiresAtTime       retirement = iota // a grace period chosen as a time
	waitsForReplacement                   // grace auto: the new key's first request
	waitsForQuiet                         // grace auto: an hour after its own last use
	replacementGone                       // grace auto, its replacement deleted: the limit
)

// retirementOf reads a rotated key's retirement from the key itself, and
// its grace auto limit: the lifecycle job moves RetiresAt before the
// limit once the replacement was used.
func retirementOf(k account.APIKey) (retirement, time.Time) {
	limit := k.RotatedAt.Add(account.AutoGraceMax)
	switch {
	case !k.AutoRetire:
		return retiresAtTime, k.RetiresAt
	case k.ReplacedBy == 0:
		return replacementGone, limit
	case !k.RetiresAt.Before(limit):
		return waitsForReplacement, limit
	}
	return waitsForQuiet, limit
}

// lastUseText is a rotated key's last use, for its retirement.
func lastUseText(k account.APIKey, now time.Time, never string) string {
	if k.LastUsedAt.IsZero() {
		return never
	}
	return "last used " + RelTime(k.LastUsedAt, now)
}

// RetirementText says when a rotated key stops working, as its page shows
// it: for grace auto, what the retirement waits for.
func RetirementText(k account.APIKey, now time.Time) string {
	switch r, limit := retirementOf(k); r {
	case replacementGone:
		return "Its replacement was deleted, so nothing will take over from it: it stops working at the 7-day limit, " + ExactTime(limit) + "."
	case waitsForReplacement:
		return "Retires an hour after its last use once its replacement is used, by " + ExactTime(limit) + " at the latest. The replacement hasn't been used yet."
	case waitsForQuiet:
		return "Retires 1 h after its last use — " + lastUseText(k, now, "it hasn't been used since the rotation") + ": " + RelTime(k.RetiresAt, now) + " (" + ExactTime(k.RetiresAt) + ")."
	}
	return "Stops working " + RelTime(k.RetiresAt, now) + " (" + ExactTime(k.RetiresAt) + ")."
}

// RetiringBadge is what a rotated key's badge in the list says, and its
// tooltip: with grace auto, whether it still waits for the replacement.
func RetiringBadge(k account.APIKey, now time.Time) (text, title string) {
	switch r, limit := retirementOf(k); r {
	case waitsForReplacement:
		return "Retires when quiet", "Rotated with grace auto: it retires an hour after its last use once its replacement is used, by " + ExactTime(limit) + " at the latest"
	case waitsForQuiet:
		return "Retiring " + RelTime(k.RetiresAt, now), "Rotated with grace auto: its replacement is in use, so it retires an hour after its own last use, " + ExactTime(k.RetiresAt) + " unless it is used again"
	}
	return "Retiring " + RelTime(k.RetiresAt, now), "Rotated: the old key stops working " + ExactTime(k.RetiresAt)
}

// RetiringNote is the line under a rotated key's badge in the list that
// says what a grace auto retirement waits for (SPEC §2): the new key's
// first request, or an hour without use; "" for another grace period.
func RetiringNote(k account.APIKey, now time.Time) string {
	switch r, limit := retirementOf(k); r {
	case replacementGone:
		return "Its replacement was deleted: stops " + RelTime(limit, now)
	case waitsForReplacement:
		return "Waits for the new key's first request; " + RelTime(limit, now) + " at the latest"
	case waitsForQuiet:
		return "Retires 1 h after its last use — " + lastUseText(k, now, "not used since the rotation")
	}
	return ""
}

// ActorText is who did something, for the activity log.
func ActorText(a account.Actor) string {
	switch a.Kind {
	case account.ActorSession:
		return "You, signed in"
	case account.ActorKey:
		return "API key " + a.KeyMasked
	case account.ActorOperator:
		return "The operator (command line)"
	case account.ActorScanner:
		return "A secret scanner"
	}
	return "PeekShot"
}

// EventText says what an event is, for people.
func EventText(e account.Event) string {
	switch e {
	case account.EventAccountCreated:
		return "Account created"
	case account.EventLoginSucceeded:
		return "Signed in"
	case account.EventLoginFailed:
		return "Sign-in failed"
	case account.EventPasswordChanged:
		return "Password changed"
	case account.EventProfileChanged:
		return "Profile changed"
	case account.EventKeyCreated:
		return "Key created"
	case account.EventKeyDeactivated:
		return "Key deactivated"
	case account.EventKeyActivated:
		return "Key activated"
	case account.EventKeyRotated:
		return "Key rotated"
	case account.EventKeyRetired:
		return "Key retired"
	case account.EventKeyDeleted:
		return "Key deleted"
	case account.EventKeySettingsChanged:
		return "Key settings changed"
	case account.EventKeyExpired:
		return "Key expired"
	case account.EventKeyLeakReported:
		return "Key reported leaked"
	case account.EventCouponRedeemed:
		return "Coupon redeemed"
	}
	return string(e)
}

// orDash is s, or a dash for nothing.
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// ActivityProps is the activity page: a page of entries and its filters.
type ActivityProps struct {
	Entries []account.Activity
	Keys    []account.APIKey
	Filter  account.ActivityFilter
	// Older and Newest link to the next page of older entries and back to
	// the first, when there are.
	Older, Newest string
	// GoneKey names the key filtered by when it was deleted since.
	GoneKey string
}

// CSVURL is the CSV of what the page shows, all of it.
func (p ActivityProps) CSVURL() string {
	return "/account/activity.csv" + p.Query(0)
}

// Query is the filter as a query string, from entries older than before.
func (p ActivityProps) Query(before int64) string {
	v := url.Values{}
	if p.Filter.KeyID != 0 {
		v.Set("key", strconv.FormatInt(p.Filter.KeyID, 10))
	}
	if p.Filter.Event != "" {
		v.Set("event", string(p.Filter.Event))
	}
	if before != 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// ActivityKeyLabel is the key an entry is about, by the label it had then.
func ActivityKeyLabel(a account.Activity) string { return labelOrUntitled(a.KeyLabel) }

// FindingText is what a finding of key health says.
func FindingText(f account.Finding) (title, why string) {
	switch f.Kind {
	case account.FindingLeaked:
		return "Reported leaked",
			"A secret scanner found these keys in public, and PeekShot deactivated them. Rotate each: the replacement keeps its label and settings, and the leaked key stops for good."
	case account.FindingManyIPs:
		return "Used from more than " + strconv.Itoa(account.ManyIPs) + " addresses in a day",
			"A key used from this many places may have been shared or leaked. Limit it to your servers' addresses, or rotate it."
	case account.FindingUnrestricted:
		return "Every scope and any address",
			"These keys can create, change and delete keys from anywhere. Narrow their scopes or their allowed IP addresses."
	case account.FindingNeverExpires:
		return "Never expire", "A key without an end date works forever if it leaks. Give it an expiration; a rotation keeps its lifetime."
	case account.FindingIdle:
		return "Not used for 30 days", "A key nobody uses is only a risk. Deactivate it; you can turn it back on."
	}
	return string(f.Kind), ""
}

// shownKeys are the first keys of a finding, and how many more there are.
func shownKeys(f account.Finding) ([]account.APIKey, int) {
	const most = 5
	if len(f.Keys) <= most {
		return f.Keys, 0
	}
	return f.Keys[:most], len(f.Keys) - most
}
