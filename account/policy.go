package account

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Scope is one thing a key may be used for (SPEC §6).
type Scope string

// The scopes, in the order forms and lists show them.
const (
	ScopeScreenshots Scope = "screenshots"
	ScopeHTMLToImage Scope = "html_to_image"
	ScopeKeysRead    Scope = "keys_read"
	ScopeKeysWrite   Scope = "keys_write"
)

// AllScopes are every scope there is.
var AllScopes = []Scope{ScopeScreenshots, ScopeHTMLToImage, ScopeKeysRead, ScopeKeysWrite}

// DefaultScopes are a new key's scopes unless its owner chooses: the two
// render endpoints.
var DefaultScopes = []Scope{ScopeScreenshots, ScopeHTMLToImage}

// Limits on a key's policy.
const (
	MaxAllowedIPs     = 20
	MaxAllowedTargets = 50
	// MaxExpiry is how far ahead an expiry may be.
	MaxExpiry = 366 * 24 * time.Hour
	// MaxMonthlyBudget bounds a key's monthly budget (as coupons' credits).
	MaxMonthlyBudget = MaxCouponCredits
	maxHostLen       = 253
)

// Policy is what a key may do, beyond working at all: which endpoints
// (Scopes), from where (AllowedIPs), of which sites (AllowedTargets), how
// fast (RateLimit per minute) and how much per calendar month in UTC
// (MonthlyBudget credits). Empty lists and zero numbers mean no
// restriction (RateLimit 0: the server's default).
type Policy struct {
	Scopes         []Scope
	AllowedIPs     []netip.Prefix
	AllowedTargets []string
	RateLimit      int
	MonthlyBudget  int64
}

// DefaultPolicy is a new key's policy unless its owner chooses.
func DefaultPolicy() Policy { return Policy{Scopes: slices.Clone(DefaultScopes)} }

// HasScope reports whether the policy grants s.
func (p Policy) HasScope(s Scope) bool { return slices.Contains(p.Scopes, s) }

// AllowsIP reports whether a request from addr may use the key.
func (p Policy) AllowsIP(addr netip.Addr) bool {
	if len(p.AllowedIPs) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, pre := range p.AllowedIPs {
		if pre.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowsHost reports whether the key may render a page of host (a URL's
// host, in any letter case, without its port). "example.com" matches
// itself only; "*.example.com" matches every name below example.com, not
// example.com itself.
func (p Policy) AllowsHost(host string) bool {
	if len(p.AllowedTargets) == 0 {
		return true
	}
	h, err := normalizeHost(strings.TrimSuffix(host, "."))
	if err != nil {
		return false
	}
	for _, pattern := range p.AllowedTargets {
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			if strings.HasSuffix(h, "."+suffix) {
				return true
			}
		} else if h == pattern {
			return true
		}
	}
	return false
}

// Restricted reports whether the policy narrows the key in any way beyond
// the default scopes.
func (p Policy) Restricted() bool {
	return len(p.AllowedIPs) > 0 || len(p.AllowedTargets) > 0 || p.RateLimit > 0 || p.MonthlyBudget > 0 ||
		!slices.Equal(p.Scopes, DefaultScopes)
}

// PolicyErrors maps the form fields of a policy to what is wrong with them.
type PolicyErrors map[string]string

func (e PolicyErrors) Error() string {
	var parts []string
	for _, f := range []string{"expires", "expires_date", "scopes", "allowed_ips", "allowed_targets", "rate_limit", "monthly_budget", "label"} {
		if msg, ok := e[f]; ok {
			parts = append(parts, f+": "+msg)
		}
	}
	return "invalid key settings: " + strings.Join(parts, "; ")
}

// PolicyInput is a policy as people type it (the create form, the key's
// settings, the keys API).
type PolicyInput struct {
	// Expires is never (or empty), 7d, 30d, 90d, 1y, or a date
	// YYYY-MM-DD; "date" takes the date from ExpiresDate.
	Expires     string
	ExpiresDate string
	// Scopes are the scope names, which must not be empty when
	// ScopesGiven (a form that shows the checkboxes).
	Scopes         []string
	ScopesGiven    bool
	AllowedIPs     string // addresses or CIDR ranges, by commas or lines
	AllowedTargets string // host patterns, by commas or lines
	RateLimit      string // requests per minute; empty: the server's
	MonthlyBudget  string // credits; empty: no cap
}

// Expiry is an expiry the owner chose: its moment, and the lifetime it
// was chosen as (so that a rotation counts it again from then), or zero
// for a date or never.
type Expiry struct {
	At       time.Time
	Lifetime time.Duration
}

// lifetimes are the expiries a form offers besides never and a date.
var lifetimes = map[string]time.Duration{"7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour, "90d": 90 * 24 * time.Hour, "1y": 365 * 24 * time.Hour}

// ExpiryAfter is when a key with this lifetime made at now expires.
func ExpiryAfter(lifetime time.Duration, now time.Time) time.Time {
	return time.Unix(now.Add(lifetime).Unix(), 0)
}

// Parse checks every field strictly and returns the policy and expiry, or
// PolicyErrors with a message for each bad field. rateMax is the server's
// rate limit, the most a key may have.
func (in PolicyInput) Parse(now time.Time, rateMax int) (Policy, Expiry, error) {
	errs := PolicyErrors{}
	var p Policy
	var x Expiry
	var err error
	if x, err = ParseExpiry(in.Expires, in.ExpiresDate, now); err != nil {
		field := "expires"
		if in.Expires == "date" {
			field = "expires_date"
		}
		errs[field] = err.Error()
	}
	if p.Scopes, err = parseScopes(in.Scopes, in.ScopesGiven); err != nil {
		errs["scopes"] = err.Error()
	}
	if p.AllowedIPs, err = parseAllowedIPs(in.AllowedIPs); err != nil {
		errs["allowed_ips"] = err.Error()
	}
	if p.AllowedTargets, err = parseAllowedTargets(in.AllowedTargets); err != nil {
		errs["allowed_targets"] = err.Error()
	}
	if n, err := parseWhole(in.RateLimit, "The rate limit", 1, int64(rateMax), "requests a minute"); err != nil {
		errs["rate_limit"] = err.Error()
	} else {
		p.RateLimit = int(n)
	}
	if p.MonthlyBudget, err = parseWhole(in.MonthlyBudget, "The monthly budget", 1, MaxMonthlyBudget, "credits"); err != nil {
		errs["monthly_budget"] = err.Error()
	}
	if len(errs) > 0 {
		return Policy{}, Expiry{}, errs
	}
	return p, x, nil
}

// ParseExpiry reads a form's expiry: never, a lifetime (7d, 30d, 90d, 1y)
// or, with choice "date", the day in date (UTC) through which a key works.
func ParseExpiry(choice, date string, now time.Time) (Expiry, error) {
	choice = strings.TrimSpace(choice)
	if choice == "date" {
		choice = strings.TrimSpace(date)
		if choice == "" {
			return Expiry{}, fmt.Errorf("choose the day the key expires")
		}
	}
	switch choice {
	case "", "never":
		return Expiry{}, nil
	}
	if d, ok := lifetimes[choice]; ok {
		return Expiry{At: ExpiryAfter(d, now), Lifetime: d}, nil
	}
	day, err := time.ParseInLocation("2006-01-02", choice, time.UTC)
	if err != nil {
		return Expiry{}, fmt.Errorf("choose never, 7 days, 30 days, 90 days, 1 year, or a date like %s", now.UTC().AddDate(0, 1, 0).Format("2006-01-02"))
	}
	// The key works through the whole of that day, UTC.
	end := day.AddDate(0, 0, 1)
	switch {
	case !end.After(now):
		return Expiry{}, fmt.Errorf("%s is in the past: choose a day from today (%s, UTC) on", choice, now.UTC().Format("2006-01-02"))
	case end.Sub(now) > MaxExpiry:
		return Expiry{}, fmt.Errorf("a key may expire at most a year ahead (by %s)", now.UTC().Add(MaxExpiry-24*time.Hour).Format("2006-01-02"))
	}
	return Expiry{At: end}, nil
}

func parseScopes(names []string, given bool) ([]Scope, error) {
	if !given && len(names) == 0 {
		return slices.Clone(DefaultScopes), nil
	}
	var out []Scope
	for _, n := range names {
		s := Scope(strings.TrimSpace(n))
		if !slices.Contains(AllScopes, s) {
			return nil, fmt.Errorf("unknown scope %q: choose from screenshots, html_to_image, keys_read and keys_write", truncateText(string(s), 40))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("choose at least one scope: a key without any can do nothing but check itself")
	}
	slices.SortFunc(out, func(a, b Scope) int { return slices.Index(AllScopes, a) - slices.Index(AllScopes, b) })
	return out, nil
}

// splitList splits text typed one item a line or by commas.
func splitList(text string) []string {
	var out []string
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if item := strings.TrimSpace(line); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func parseAllowedIPs(text string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(text) {
		var pre netip.Prefix
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR range (like 203.0.113.0/24 or 2001:db8::/32)", truncateText(item, 60))
			}
			if p.Addr().Zone() != "" {
				return nil, fmt.Errorf("%q has a zone, which a client address never does", truncateText(item, 60))
			}
			if p.Masked() != p {
				return nil, fmt.Errorf("%s has bits set past its /%d: did you mean %s?", item, p.Bits(), p.Masked())
			}
			pre = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmappedBits(p.Addr()))
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an IP address or CIDR range (like 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32)", truncateText(item, 60))
			}
			a = a.Unmap()
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		if !slices.Contains(out, pre) {
			out = append(out, pre)
		}
	}
	if len(out) > MaxAllowedIPs {
		return nil, fmt.Errorf("at most %d addresses or ranges (this has %d): use wider ranges", MaxAllowedIPs, len(out))
	}
	return out, nil
}

// unmappedBits is how many leading bits of a prefix an IPv4-mapped IPv6
// address adds, so ::ffff:10.0.0.0/104 becomes 10.0.0.0/8.
func unmappedBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func parseAllowedTargets(text string) ([]string, error) {
	var out []string
	for _, item := range splitList(text) {
		pattern, err := parseHostPattern(item)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, pattern) {
			out = append(out, pattern)
		}
	}
	if len(out) > MaxAllowedTargets {
		return nil, fmt.Errorf("at most %d sites (this has %d): use *.example.com for every name under a domain", MaxAllowedTargets, len(out))
	}
	return out, nil
}

// parseHostPattern checks one allowed target: a host name (in any letter
// case, or in Unicode, which is stored in its ASCII form) or an IP
// address, optionally "*." and a domain for every name below it. No
// scheme, port, path or wildcard elsewhere.
func parseHostPattern(item string) (string, error) {
	show := truncateText(item, 60)
	switch {
	case strings.Contains(item, "://"):
		return "", fmt.Errorf("%q: give the site's host name without http:// or https:// (like example.com)", show)
	case strings.ContainsAny(item, "/?#@"):
		return "", fmt.Errorf("%q: give only a host name, without a path (like example.com)", show)
	case strings.ContainsAny(item, " \t"):
		return "", fmt.Errorf("%q: a host name has no spaces", show)
	}
	wild := false
	host := item
	if rest, ok := strings.CutPrefix(item, "*."); ok {
		wild, host = true, rest
	}
	if strings.Contains(host, "*") {
		return "", fmt.Errorf("%q: a wildcard may only start a pattern, as in *.example.com", show)
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if wild {
			return "", fmt.Errorf("%q: a wildcard needs a domain, not an IP address", show)
		}
		return a.Unmap().String(), nil
	}
	if strings.Contains(host, ":") {
		return "", fmt.Errorf("%q: give the host name without a port", show)
	}
	norm, err := normalizeHost(strings.TrimSuffix(host, "."))
	if err != nil {
		return "", fmt.Errorf("%q is not a valid host name", show)
	}
	if wild {
		if !strings.Contains(norm, ".") {
			return "", fmt.Errorf("%q: *. needs a domain with a dot, such as *.example.com", show)
		}
		return "*." + norm, nil
	}
	return norm, nil
}

// hostProfile is IDNA's lookup profile: what a browser does to the host
// it is about to look up.
var hostProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(true), idna.VerifyDNSLength(true))

// normalizeHost is a host name in the form URLs are compared in: lower
// case, ASCII (punycode).
func normalizeHost(host string) (string, error) {
	if host == "" || len(host) > maxHostLen {
		return "", fmt.Errorf("bad host")
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.Unmap().String(), nil
	}
	return hostProfile.ToASCII(host)
}

// parseWhole reads a whole number from min to max, or 0 for an empty
// field.
func parseWhole(text, what string, min, max int64, unit string) (int64, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%s must be a whole number from %d to %d %s, or empty for none", what, min, max, unit)
	}
	return n, nil
}

func truncateText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
