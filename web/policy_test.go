package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/capture"
)

// Key policies (SPEC §6, issue 12): the fields through the create form and
// the key's settings, their enforcement on the very next API request,
// rotation, and the list's badges and statuses.

// longSessions keeps a browser signed in while a test moves the clock on
// by days or months.
func longSessions(c *Config) {
	c.SessionIdle, c.SessionLifetime = 10*365*24*time.Hour, 10*365*24*time.Hour
}

// policyValues is a form as the page sends it: the label, every policy
// field with its default (the two render scopes checked, the expiry
// "never" on the create form and "keep" on the settings), then set.
func policyValues(label, expires string, set url.Values) url.Values {
	f := url.Values{
		"label": {label}, "expires": {expires}, "expires_date": {""},
		"scopes_given": {"1"}, "scopes": {string(account.ScopeScreenshots), string(account.ScopeHTMLToImage)},
		"allowed_ips": {""}, "allowed_targets": {""}, "rate_limit": {""}, "monthly_budget": {""},
	}
	for k, v := range set {
		f[k] = v
	}
	return f
}

func createValues(set url.Values) url.Values   { return policyValues("policy", "never", set) }
func settingsValues(set url.Values) url.Values { return policyValues("settings", "keep", set) }

// createPolicyKey creates a key with form, through htmx or as a plain form
// post followed by the page it redirects to, and returns the key shown
// once and its id.
func createPolicyKey(t *testing.T, b *browser, form url.Values, htmx bool) (string, int64) {
	t.Helper()
	var r response
	if htmx {
		r = b.htmx(http.MethodPost, "/account/api-keys", form)
		expectStatus(t, r, http.StatusOK)
	} else {
		r = b.post("/account/api-keys", form)
		expectStatus(t, r, http.StatusSeeOther)
		if loc := r.Header.Get("Location"); loc != "/account/api-keys" {
			t.Fatalf("create redirects to %q", loc)
		}
		r = b.get("/account/api-keys")
		expectStatus(t, r, http.StatusOK)
	}
	d := r.doc(t)
	key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
	if !keyPattern.MatchString(key) {
		t.Fatalf("no key revealed (htmx %v):\n%.3000s", htmx, r.body)
	}
	id, err := parseID(d.Find(`tr.row-new`).AttrOr("data-key-id", ""))
	if err != nil {
		t.Fatalf("new row's id: %v", err)
	}
	return key, id
}

// storedKey is the user's key id as the store has it.
func storedKey(t *testing.T, e *testEnv, email string, id int64) account.APIKey {
	t.Helper()
	for _, k := range userKeys(t, e, email) {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("key %d is not stored", id)
	return account.APIKey{}
}

// policyShown is what the key page's policy list says of a setting
// (expires, scopes, ips, targets, rate, budget), spaces collapsed.
func policyShown(d *goquery.Document, item string) string {
	dd := d.Find(`[data-testid="key-policy-` + item + `"]`)
	if items := dd.Find(`.list-item`); items.Length() > 0 {
		return strings.Join(items.Map(func(_ int, s *goquery.Selection) string { return strings.TrimSpace(s.Text()) }), " ")
	}
	return strings.Join(strings.Fields(dd.Text()), " ")
}

// saveSettings posts a key's settings, through htmx or as a plain form
// post (then loading the page it redirects to), and returns the key page.
func saveSettings(t *testing.T, b *browser, id int64, form url.Values, htmx bool) *goquery.Document {
	t.Helper()
	path := keyPath(id) + "/settings"
	if htmx {
		r := b.htmx(http.MethodPost, path, form)
		expectStatus(t, r, http.StatusOK)
		if isFullPage(r.body) {
			t.Fatal("htmx settings answered with a full page")
		}
		d := r.doc(t)
		if d.Find(`#key-page`).Length() != 1 || !strings.Contains(d.Find(`[hx-swap-oob]`).Text(), "saved") {
			t.Fatalf("htmx settings answer is not the key page with a toast:\n%.2000s", r.body)
		}
		return d
	}
	r := b.post(path, form)
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != keyPath(id) {
		t.Fatalf("settings redirect to %q, want %q", loc, keyPath(id))
	}
	page := b.get(keyPath(id))
	expectStatus(t, page, http.StatusOK)
	return page.doc(t)
}

// expectFieldError checks a refused form: exactly one message, for field,
// inside the form, in the field's own box (next to its input), saying
// want, and the form's options shown open so that it is seen.
func expectFieldError(t *testing.T, r response, formSel, detailsSel, field, want string) {
	t.Helper()
	d := r.doc(t)
	form := d.Find(formSel)
	if form.Length() != 1 {
		t.Fatalf("no %s in the answer:\n%.2000s", formSel, r.body)
	}
	errs := form.Find(`[data-testid^="policy-error-"]`)
	if errs.Length() != 1 {
		var all []string
		errs.Each(func(_ int, s *goquery.Selection) { all = append(all, s.AttrOr("data-testid", "")+": "+s.Text()) })
		t.Fatalf("%d field messages, want one for %s: %q", errs.Length(), field, all)
	}
	msg := form.Find(`[data-testid="policy-error-` + field + `"]`)
	if msg.Length() != 1 {
		t.Fatalf("the message is %s, want policy-error-%s", errs.AttrOr("data-testid", ""), field)
	}
	if !strings.Contains(msg.Text(), want) {
		t.Fatalf("%s message %q does not say %q", field, msg.Text(), want)
	}
	box := msg.Closest(".field")
	if box.Find(`[name="`+field+`"]`).Length() == 0 {
		t.Fatalf("the %s message is not next to its input", field)
	}
	// Tied to its control for assistive technology: the scopes' group,
	// or the field's input, marked invalid.
	control := box.Find(`[name="` + field + `"]`).First()
	if field == "scopes" {
		control = box
	} else if v := control.AttrOr("aria-invalid", ""); v != "true" {
		t.Fatalf("%s's input has aria-invalid %q", field, v)
	}
	if id := msg.AttrOr("id", ""); id == "" || !slices.Contains(strings.Fields(control.AttrOr("aria-describedby", "")), id) {
		t.Fatalf("%s's control is not described by its message (aria-describedby %q, message id %q)", field, control.AttrOr("aria-describedby", ""), id)
	}
	if _, open := d.Find(detailsSel).Attr("open"); !open {
		t.Fatalf("%s is closed: the message can't be seen", detailsSel)
	}
}

// fieldValue is what a refused form shows again in a field.
func fieldValue(d *goquery.Document, formSel, field string) string {
	f := d.Find(formSel).Find(`[name="` + field + `"]`)
	if goquery.NodeName(f) == "textarea" {
		return f.Text()
	}
	return f.AttrOr("value", "")
}

// policyCase is one value of one field: refused with a message for
// field, or stored as check says and shown on the key page as shown says.
type policyCase struct {
	name  string
	set   url.Values
	field string // the field refused, "" when valid
	msg   string
	check func(t *testing.T, k account.APIKey)
	// shown is what the key page's item (expires, scopes, …) says.
	item, shown string
	// createOnly limits the case to the create form.
	createOnly bool
}

func formVals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func numbered(format string, n int) string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(format, i+1)
	}
	return strings.Join(lines, "\n")
}

func wantPrefixes(t *testing.T, got []netip.Prefix, want ...string) {
	t.Helper()
	var g []string
	for _, p := range got {
		g = append(g, p.String())
	}
	if !slices.Equal(g, want) {
		t.Fatalf("allowed IPs stored %q, want %q", g, want)
	}
}

func policyCases(now time.Time, rateMax int) map[string][]policyCase {
	day := func(d int) string { return now.UTC().AddDate(0, 0, d).Format("2006-01-02") }
	endOf := func(d int) time.Time {
		y, m, dd := now.UTC().AddDate(0, 0, d+1).Date()
		return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
	}
	lifetime := func(d time.Duration, text string) policyCase {
		return policyCase{
			set: formVals("expires", map[time.Duration]string{7 * 24 * time.Hour: "7d", 30 * 24 * time.Hour: "30d", 90 * 24 * time.Hour: "90d", 365 * 24 * time.Hour: "1y"}[d]),
			check: func(t *testing.T, k account.APIKey) {
				if !k.ExpiresAt.Equal(now.Add(d)) || k.ExpiryLifetime != d {
					t.Fatalf("expiry %v (lifetime %v), want %v (lifetime %v)", k.ExpiresAt, k.ExpiryLifetime, now.Add(d), d)
				}
			},
			item: "expires", shown: "a lifetime of " + text,
		}
	}
	date := func(d int) policyCase {
		return policyCase{
			set: formVals("expires", "date", "expires_date", day(d)),
			check: func(t *testing.T, k account.APIKey) {
				if !k.ExpiresAt.Equal(endOf(d)) || k.ExpiryLifetime != 0 {
					t.Fatalf("expiry %v (lifetime %v), want the end of %s UTC, %v", k.ExpiresAt, k.ExpiryLifetime, day(d), endOf(d))
				}
			},
			item: "expires", shown: endOf(d).Format("2 January 2006, 15:04 UTC"),
		}
	}
	named := func(name string, c policyCase) policyCase { c.name = name; return c }
	never := func(t *testing.T, k account.APIKey) {
		if !k.ExpiresAt.IsZero() || k.ExpiryLifetime != 0 {
			t.Fatalf("expiry %v, want never", k.ExpiresAt)
		}
	}
	scopes := func(want ...account.Scope) func(t *testing.T, k account.APIKey) {
		return func(t *testing.T, k account.APIKey) {
			if !slices.Equal(k.Policy.Scopes, want) {
				t.Fatalf("scopes %v, want %v", k.Policy.Scopes, want)
			}
		}
	}
	ips := func(want ...string) func(t *testing.T, k account.APIKey) {
		return func(t *testing.T, k account.APIKey) { wantPrefixes(t, k.Policy.AllowedIPs, want...) }
	}
	targets := func(want ...string) func(t *testing.T, k account.APIKey) {
		return func(t *testing.T, k account.APIKey) {
			if !slices.Equal(k.Policy.AllowedTargets, want) {
				t.Fatalf("allowed targets %q, want %q", k.Policy.AllowedTargets, want)
			}
		}
	}
	rate := func(want int) func(t *testing.T, k account.APIKey) {
		return func(t *testing.T, k account.APIKey) {
			if k.Policy.RateLimit != want {
				t.Fatalf("rate limit %d, want %d", k.Policy.RateLimit, want)
			}
		}
	}
	budget := func(want int64) func(t *testing.T, k account.APIKey) {
		return func(t *testing.T, k account.APIKey) {
			if k.Policy.MonthlyBudget != want {
				t.Fatalf("monthly budget %d, want %d", k.Policy.MonthlyBudget, want)
			}
		}
	}
	refused := func(name, field, msg string, kv ...string) policyCase {
		return policyCase{name: name, set: formVals(kv...), field: field, msg: msg}
	}
	var manyIPs, manyIPsDup []string
	for i := range 20 {
		manyIPs = append(manyIPs, fmt.Sprintf("10.0.0.%d/32", i+1))
	}
	manyIPsDup = append(manyIPsDup, manyIPs...)
	var manySites []string
	for i := range 50 {
		manySites = append(manySites, fmt.Sprintf("s%d.example.com", i+1))
	}
	return map[string][]policyCase{
		"Expires": {
			{name: "Never", set: formVals("expires", "never"), check: never, item: "expires", shown: "Never"},
			named("7d", lifetime(7*24*time.Hour, "7 days")),
			named("30d", lifetime(30*24*time.Hour, "30 days")),
			named("90d", lifetime(90*24*time.Hour, "90 days")),
			named("1y", lifetime(365*24*time.Hour, "1 year")),
			named("DateTomorrow", date(1)),
			named("DateTodayEndsAtMidnightUTC", date(0)),
			named("DateAYearAhead", date(365)),
			{name: "DateInTheExpiresField", set: formVals("expires", day(2)), check: date(2).check, item: "expires", shown: date(2).shown},
			refused("DateYesterday", "expires_date", "in the past", "expires", "date", "expires_date", day(-1)),
			refused("DateMoreThanAYearAhead", "expires_date", "at most a year ahead", "expires", "date", "expires_date", day(366)),
			refused("DateMissing", "expires_date", "choose the day", "expires", "date", "expires_date", ""),
			refused("DateGarbage", "expires_date", "choose never", "expires", "date", "expires_date", "next week"),
			refused("DateImpossible", "expires_date", "choose never", "expires", "date", "expires_date", now.UTC().Format("2006")+"-13-01"),
			refused("Garbage", "expires", "choose never", "expires", "forever"),
			refused("LifetimeNotOffered", "expires", "choose never", "expires", "2d"),
			{name: "KeepOnANewKey", set: formVals("expires", "keep"), field: "expires", msg: "choose never", createOnly: true},
		},
		"Scopes": {
			{name: "Subset", set: formVals("scopes_given", "1", "scopes", "html_to_image"), check: scopes(account.ScopeHTMLToImage), item: "scopes", shown: "html_to_image"},
			{name: "AllInAnyOrder", set: formVals("scopes_given", "1", "scopes", "keys_write", "scopes", "screenshots", "scopes", "keys_read", "scopes", "html_to_image"),
				check: scopes(account.AllScopes...), item: "scopes", shown: "screenshots, html_to_image, keys_read, keys_write"},
			{name: "Duplicates", set: formVals("scopes_given", "1", "scopes", "keys_read", "scopes", "keys_read"), check: scopes(account.ScopeKeysRead), item: "scopes", shown: "keys_read"},
			{name: "NoneChecked", set: url.Values{"scopes_given": {"1"}, "scopes": nil}, field: "scopes", msg: "at least one scope"},
			refused("Unknown", "scopes", `unknown scope "admin"`, "scopes_given", "1", "scopes", "screenshots", "scopes", "admin"),
			refused("Empty", "scopes", "unknown scope", "scopes_given", "1", "scopes", ""),
		},
		"AllowedIPs": {
			{name: "Empty", set: formVals("allowed_ips", ""), check: ips(), item: "ips", shown: "Any"},
			{name: "IPv4", set: formVals("allowed_ips", " 203.0.113.7 "), check: ips("203.0.113.7/32"), item: "ips", shown: "203.0.113.7"},
			{name: "IPv6", set: formVals("allowed_ips", "2001:DB8::1"), check: ips("2001:db8::1/128"), item: "ips", shown: "2001:db8::1"},
			{name: "IPv4MappedIsIPv4", set: formVals("allowed_ips", "::ffff:198.51.100.1, ::ffff:10.0.0.0/104"), check: ips("198.51.100.1/32", "10.0.0.0/8"), item: "ips", shown: "198.51.100.1 10.0.0.0/8"},
			{name: "CIDRByCommas", set: formVals("allowed_ips", "10.0.0.0/8,2001:db8::/32"), check: ips("10.0.0.0/8", "2001:db8::/32"), item: "ips", shown: "10.0.0.0/8 2001:db8::/32"},
			{name: "ByLines", set: formVals("allowed_ips", "192.168.1.1\r\n\r\n172.16.0.0/12\n"), check: ips("192.168.1.1/32", "172.16.0.0/12"), item: "ips", shown: "192.168.1.1 172.16.0.0/12"},
			{name: "DuplicatesDropped", set: formVals("allowed_ips", "10.0.0.1, 10.0.0.1\n10.0.0.1/32"), check: ips("10.0.0.1/32"), item: "ips", shown: "10.0.0.1"},
			{name: "Twenty", set: formVals("allowed_ips", strings.Join(manyIPs, "\n")), check: ips(manyIPs...), item: "ips", shown: "10.0.0.20"},
			{name: "TwentyOneWithADuplicate", set: formVals("allowed_ips", strings.Join(append(manyIPsDup, "10.0.0.7"), "\n")), check: ips(manyIPs...), item: "ips", shown: "10.0.0.1 "},
			refused("TwentyOne", "allowed_ips", "at most 20", "allowed_ips", numbered("10.0.0.%d", 21)),
			refused("HostBitsSet", "allowed_ips", "did you mean 10.0.0.0/8", "allowed_ips", "10.0.0.1/8"),
			refused("HostBitsSetIPv6", "allowed_ips", "did you mean 2001:db8::/32", "allowed_ips", "2001:db8::1/32"),
			refused("Garbage", "allowed_ips", `"example.com" is not an IP address`, "allowed_ips", "10.0.0.1, example.com"),
			refused("OctetTooBig", "allowed_ips", "not an IP address", "allowed_ips", "10.0.0.256"),
			refused("PrefixTooLong", "allowed_ips", "not an IP address or CIDR range", "allowed_ips", "10.0.0.0/33"),
			refused("Zone", "allowed_ips", "not an IP address", "allowed_ips", "fe80::1%eth0"),
		},
		"AllowedTargets": {
			{name: "Empty", set: formVals("allowed_targets", ""), check: targets(), item: "targets", shown: "Any public site"},
			{name: "LowerCased", set: formVals("allowed_targets", "Example.COM."), check: targets("example.com"), item: "targets", shown: "example.com"},
			{name: "IDNA", set: formVals("allowed_targets", "bücher.example"), check: targets("xn--bcher-kva.example"), item: "targets", shown: "xn--bcher-kva.example"},
			{name: "Wildcard", set: formVals("allowed_targets", "*.Example.com, example.com\nexample.com"), check: targets("*.example.com", "example.com"), item: "targets", shown: "*.example.com example.com"},
			{name: "IPAddress", set: formVals("allowed_targets", "203.0.113.9"), check: targets("203.0.113.9"), item: "targets", shown: "203.0.113.9"},
			{name: "Fifty", set: formVals("allowed_targets", strings.Join(manySites, ",")), check: targets(manySites...), item: "targets", shown: "s50.example.com"},
			refused("FiftyOne", "allowed_targets", "at most 50", "allowed_targets", numbered("s%d.example.com", 51)),
			refused("Scheme", "allowed_targets", "without http:// or https://", "allowed_targets", "https://x.example"),
			refused("Path", "allowed_targets", "without a path", "allowed_targets", "x.example/path"),
			refused("Port", "allowed_targets", "without a port", "allowed_targets", "x.example:8080"),
			refused("WildcardInTheMiddle", "allowed_targets", "may only start a pattern", "allowed_targets", "a.*.com"),
			refused("WildcardAlone", "allowed_targets", "may only start a pattern", "allowed_targets", "*"),
			refused("WildcardOnATLD", "allowed_targets", "needs a domain with a dot", "allowed_targets", "*.com"),
			refused("NotAHostName", "allowed_targets", "is not a valid host name", "allowed_targets", "under_score.example"),
			refused("Spaces", "allowed_targets", "no spaces", "allowed_targets", "a b.example"),
		},
		"RateLimit": {
			{name: "EmptyIsTheDefault", set: formVals("rate_limit", ""), check: rate(0), item: "rate", shown: strconv.Itoa(rateMax) + " a minute (the server's default)"},
			{name: "One", set: formVals("rate_limit", "1"), check: rate(1), item: "rate", shown: "1 a minute"},
			{name: "TheServersLimit", set: formVals("rate_limit", " "+strconv.Itoa(rateMax)+" "), check: rate(rateMax), item: "rate", shown: strconv.Itoa(rateMax) + " a minute"},
			refused("Zero", "rate_limit", "from 1 to "+strconv.Itoa(rateMax), "rate_limit", "0"),
			refused("AboveTheServersLimit", "rate_limit", "from 1 to "+strconv.Itoa(rateMax), "rate_limit", strconv.Itoa(rateMax+1)),
			refused("Negative", "rate_limit", "whole number", "rate_limit", "-1"),
			refused("Fraction", "rate_limit", "whole number", "rate_limit", "1.5"),
			refused("Word", "rate_limit", "whole number", "rate_limit", "ten"),
		},
		"MonthlyBudget": {
			{name: "EmptyIsNoCap", set: formVals("monthly_budget", ""), check: budget(0), item: "budget", shown: "No cap"},
			{name: "One", set: formVals("monthly_budget", "1"), check: budget(1), item: "budget", shown: "0 of 1 credit spent this month"},
			{name: "TheMost", set: formVals("monthly_budget", strconv.Itoa(account.MaxMonthlyBudget)), check: budget(account.MaxMonthlyBudget), item: "budget", shown: "of 1,000,000,000 credits"},
			refused("Zero", "monthly_budget", "whole number from 1", "monthly_budget", "0"),
			refused("Negative", "monthly_budget", "whole number from 1", "monthly_budget", "-5"),
			refused("AboveTheMost", "monthly_budget", "whole number from 1", "monthly_budget", strconv.Itoa(account.MaxMonthlyBudget+1)),
			refused("Huge", "monthly_budget", "whole number from 1", "monthly_budget", "99999999999999999999999"),
			refused("Word", "monthly_budget", "whole number", "monthly_budget", "lots"),
		},
	}
}

// TestPolicyFields sends each value of each field through the create form
// ("More options") and the key's settings, with and without htmx: a valid
// value is stored and shown on the key page, a bad one is answered 422
// with its message next to its field, and nothing is created or changed.
func TestPolicyFields(t *testing.T) {
	e := newTestEnv(t)
	now := e.clock.Now()
	for group, cases := range policyCases(now, 60) {
		t.Run(group, func(t *testing.T) {
			b, email := e.signUp()
			_, editID := createKeyHTMX(t, b, "to edit")
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if tc.field != "" {
						keys := len(userKeys(t, e, email))
						refusedBothWays(t, b, "/account/api-keys", createValues(tc.set), func(htmx bool, r response) {
							expectFieldError(t, r, `[data-testid="create-key-form"]`, `[data-testid="more-options"]`, tc.field, tc.msg)
							if f := tc.field; f != "scopes" && f != "expires" {
								if got := fieldValue(r.doc(t), `[data-testid="create-key-form"]`, f); got != tc.set.Get(f) {
									t.Fatalf("the form shows %s = %q again, want what was typed, %q", f, got, tc.set.Get(f))
								}
							}
						})
						if after := len(userKeys(t, e, email)); after != keys {
							t.Fatalf("a refused create stored a key: %d keys, %d before", after, keys)
						}
						if !tc.createOnly {
							before := storedKey(t, e, email, editID)
							refusedBothWays(t, b, keyPath(editID)+"/settings", settingsValues(tc.set), func(htmx bool, r response) {
								expectFieldError(t, r, `[data-testid="settings-form"]`, `[data-testid="edit-settings"]`, tc.field, tc.msg)
							})
							if after := storedKey(t, e, email, editID); !sameSettings(before, after) {
								t.Fatalf("refused settings changed the key:\n%+v\nbefore\n%+v", after, before)
							}
						}
						return
					}
					for _, htmx := range []bool{false, true} {
						_, id := createPolicyKey(t, b, createValues(tc.set), htmx)
						tc.check(t, storedKey(t, e, email, id))
						page := b.get(keyPath(id))
						expectStatus(t, page, http.StatusOK)
						if got := policyShown(page.doc(t), tc.item); !strings.Contains(got, tc.shown) {
							t.Fatalf("created (htmx %v): the key page says %s %q, want %q", htmx, tc.item, got, tc.shown)
						}
						if !tc.createOnly {
							d := saveSettings(t, b, editID, settingsValues(tc.set), htmx)
							tc.check(t, storedKey(t, e, email, editID))
							if got := policyShown(d, tc.item); !strings.Contains(got, tc.shown) {
								t.Fatalf("settings (htmx %v): the key page says %s %q, want %q", htmx, tc.item, got, tc.shown)
							}
						}
					}
				})
			}
		})
	}
}

// sameSettings compares what the settings form may change.
func sameSettings(a, b account.APIKey) bool {
	return a.Label == b.Label && a.ExpiresAt.Equal(b.ExpiresAt) && a.ExpiryLifetime == b.ExpiryLifetime &&
		slices.Equal(a.Policy.Scopes, b.Policy.Scopes) && slices.Equal(a.Policy.AllowedIPs, b.Policy.AllowedIPs) &&
		slices.Equal(a.Policy.AllowedTargets, b.Policy.AllowedTargets) &&
		a.Policy.RateLimit == b.Policy.RateLimit && a.Policy.MonthlyBudget == b.Policy.MonthlyBudget
}

// TestPolicyForms covers the forms themselves: "More options" closed by
// default, the one-line create unchanged, every bad field reported at
// once, the settings' "keep", a label change, and who may change what.
func TestPolicyForms(t *testing.T) {
	e := newTestEnv(t, withConfig(longSessions))
	b, email := e.signUp()

	t.Run("MoreOptionsClosedByDefault", func(t *testing.T) {
		d := b.get("/account/api-keys").doc(t)
		opts := d.Find(`[data-testid="create-key-form"] details[data-testid="more-options"]`)
		if opts.Length() != 1 {
			t.Fatal("no More options disclosure in the create form")
		}
		if _, open := opts.Attr("open"); open {
			t.Fatal("More options is open on a fresh page")
		}
		for _, f := range []string{"expires", "expires_date", "scopes", "allowed_ips", "allowed_targets", "rate_limit", "monthly_budget"} {
			if opts.Find(`[name="`+f+`"]`).Length() == 0 {
				t.Errorf("More options has no %s field", f)
			}
		}
		var checked []string
		opts.Find(`input[name="scopes"][checked]`).Each(func(_ int, s *goquery.Selection) { checked = append(checked, s.AttrOr("value", "")) })
		if !slices.Equal(checked, []string{"screenshots", "html_to_image"}) {
			t.Fatalf("scopes checked by default: %q", checked)
		}
	})
	t.Run("OneLineCreateKeepsTheDefaults", func(t *testing.T) {
		for _, htmx := range []bool{false, true} {
			_, id := createPolicyKey(t, b, url.Values{"label": {"one line"}}, htmx)
			k := storedKey(t, e, email, id)
			if k.Policy.Restricted() || !k.ExpiresAt.IsZero() || !slices.Equal(k.Policy.Scopes, account.DefaultScopes) {
				t.Fatalf("one-line create (htmx %v) stored %+v, want the default policy", htmx, k.Policy)
			}
		}
	})
	t.Run("EveryBadFieldAtOnce", func(t *testing.T) {
		bad := formVals("expires", "date", "expires_date", "yesterday", "scopes_given", "1", "allowed_ips", "10.0.0.1/8",
			"allowed_targets", "https://x.example", "rate_limit", "0", "monthly_budget", "-1")
		bad["scopes"] = nil
		fields := []string{"expires_date", "scopes", "allowed_ips", "allowed_targets", "rate_limit", "monthly_budget"}
		_, id := createKeyHTMX(t, b, "every field")
		keys := len(userKeys(t, e, email))
		before := storedKey(t, e, email, id)
		for path, form := range map[string]string{
			"/account/api-keys":       `[data-testid="create-key-form"]`,
			keyPath(id) + "/settings": `[data-testid="settings-form"]`,
		} {
			refusedBothWays(t, b, path, policyValues("every field", "keep", bad), func(htmx bool, r response) {
				f := r.doc(t).Find(form)
				for _, field := range fields {
					msg := f.Find(`[data-testid="policy-error-` + field + `"]`)
					if msg.Length() != 1 || msg.Closest(".field").Find(`[name="`+field+`"]`).Length() == 0 {
						t.Errorf("%s (htmx %v): no message next to %s", path, htmx, field)
					}
				}
				if n := f.Find(`[data-testid^="policy-error-"]`).Length(); n != len(fields) {
					t.Errorf("%s (htmx %v): %d messages, want %d", path, htmx, n, len(fields))
				}
			})
		}
		if len(userKeys(t, e, email)) != keys || !sameSettings(before, storedKey(t, e, email, id)) {
			t.Fatal("a refused form changed something")
		}
	})
	t.Run("BadLabelOnTheSettings", func(t *testing.T) {
		_, id := createKeyHTMX(t, b, "labelled")
		before := storedKey(t, e, email, id)
		form := settingsValues(formVals("rate_limit", "5"))
		form.Set("label", strings.Repeat("x", 65))
		refusedBothWays(t, b, keyPath(id)+"/settings", form, func(htmx bool, r response) {
			d := r.doc(t)
			if msg := d.Find(`[data-testid="settings-label-error"]`); !strings.Contains(msg.Text(), "at most 64") {
				t.Fatalf("label message %q", msg.Text())
			}
			if v := fieldValue(d, `[data-testid="settings-form"]`, "rate_limit"); v != "5" {
				t.Fatalf("the other fields are not shown as typed: rate_limit %q", v)
			}
		})
		if !sameSettings(before, storedKey(t, e, email, id)) {
			t.Fatal("a refused label changed the key")
		}
	})
	t.Run("SettingsKeepTheExpiry", func(t *testing.T) {
		_, id := createPolicyKey(t, b, createValues(formVals("expires", "30d")), true)
		want := storedKey(t, e, email, id)
		e.clock.Add(3 * 24 * time.Hour)
		for i, keep := range []url.Values{formVals("expires", "keep"), formVals("expires", "")} {
			d := saveSettings(t, b, id, settingsValues(keep), i == 1)
			k := storedKey(t, e, email, id)
			if !k.ExpiresAt.Equal(want.ExpiresAt) || k.ExpiryLifetime != want.ExpiryLifetime {
				t.Fatalf("%q: expiry %v (lifetime %v), want it kept: %v", keep.Get("expires"), k.ExpiresAt, k.ExpiryLifetime, want.ExpiresAt)
			}
			if got := policyShown(d, "expires"); !strings.Contains(got, want.ExpiresAt.UTC().Format("2 January 2006")) {
				t.Fatalf("the page says the expiry is %q", got)
			}
			if sel := d.Find(`[data-testid="settings-form"] select[name="expires"] option[selected]`).AttrOr("value", ""); sel != "keep" {
				t.Fatalf("the settings form offers %q first, want keep", sel)
			}
		}
		// A bad date is refused, even though the expiry could be kept.
		refusedBothWays(t, b, keyPath(id)+"/settings", settingsValues(formVals("expires", "date", "expires_date", "garbage")), func(htmx bool, r response) {
			expectFieldError(t, r, `[data-testid="settings-form"]`, `[data-testid="edit-settings"]`, "expires_date", "choose never")
		})
		// And never takes the expiry away.
		saveSettings(t, b, id, settingsValues(formVals("expires", "never")), false)
		if k := storedKey(t, e, email, id); !k.ExpiresAt.IsZero() {
			t.Fatalf("never kept the expiry %v", k.ExpiresAt)
		}
	})
	t.Run("UnchangedFormKeepsEverything", func(t *testing.T) {
		// The settings form as the page fills it in, sent back as a
		// browser sends it, changes nothing but what was edited.
		_, id := createPolicyKey(t, b, createValues(formVals("expires", "90d", "scopes", "keys_read", "scopes", "keys_write",
			"allowed_ips", "203.0.113.0/24\n2001:db8::7\n::ffff:198.51.100.1", "allowed_targets", "*.Bücher.example\nexample.com.",
			"rate_limit", "12", "monthly_budget", "34")), false)
		before := storedKey(t, e, email, id)
		for _, htmx := range []bool{false, true} {
			e.clock.Add(time.Hour)
			form := browserForm(b.get(keyPath(id)).doc(t).Find(`[data-testid="settings-form"]`))
			form.Set("label", "edited")
			saveSettings(t, b, id, form, htmx)
			after := storedKey(t, e, email, id)
			before.Label = "edited"
			if !sameSettings(before, after) {
				t.Fatalf("sending the form back unchanged (htmx %v) changed the key:\n%+v\nwas\n%+v", htmx, after, before)
			}
		}
	})
	t.Run("LabelChanges", func(t *testing.T) {
		_, id := createKeyHTMX(t, b, "old name")
		form := settingsValues(nil)
		form.Set("label", "  new name ")
		d := saveSettings(t, b, id, form, false)
		if got := storedKey(t, e, email, id).Label; got != "new name" {
			t.Fatalf("label stored %q", got)
		}
		if got := strings.TrimSpace(d.Find(`[data-testid="key-page-label"]`).Text()); got != "new name" {
			t.Fatalf("the page shows the label %q", got)
		}
	})
	t.Run("AnotherUsersKey", func(t *testing.T) {
		_, id := createPolicyKey(t, b, createValues(formVals("rate_limit", "7")), true)
		before := storedKey(t, e, email, id)
		other, _ := e.signUp()
		expectStatus(t, other.get(keyPath(id)), http.StatusNotFound)
		expectStatus(t, other.get(keyPath(id), "HX-Request", "true"), http.StatusNotFound)
		expectStatus(t, other.post(keyPath(id)+"/settings", settingsValues(formVals("rate_limit", "1"))), http.StatusNotFound)
		expectStatus(t, other.htmx(http.MethodPost, keyPath(id)+"/settings", settingsValues(formVals("rate_limit", "1"))), http.StatusNotFound)
		// Refused as unknown even when the settings are bad: nothing says
		// the key exists.
		expectStatus(t, other.post(keyPath(id)+"/settings", settingsValues(formVals("rate_limit", "0"))), http.StatusNotFound)
		expectStatus(t, other.get(keyPath(999999)), http.StatusNotFound)
		expectStatus(t, other.get("/account/api-keys/nope"), http.StatusNotFound)
		if !sameSettings(before, storedKey(t, e, email, id)) {
			t.Fatal("another user changed the key")
		}
	})
	t.Run("ExpiredKeyConflicts", func(t *testing.T) {
		_, id := createPolicyKey(t, b, createValues(formVals("expires", "7d", "rate_limit", "3")), true)
		e.clock.Add(7*24*time.Hour + time.Second)
		before := storedKey(t, e, email, id)
		page := b.get(keyPath(id))
		expectStatus(t, page, http.StatusOK)
		if page.doc(t).Find(`[data-testid="settings-form"]`).Length() != 0 {
			t.Fatal("an expired key's page offers its settings")
		}
		for _, form := range []url.Values{settingsValues(formVals("rate_limit", "9")), settingsValues(formVals("rate_limit", "0"))} {
			expectStatus(t, b.post(keyPath(id)+"/settings", form), http.StatusConflict)
			expectStatus(t, b.htmx(http.MethodPost, keyPath(id)+"/settings", form), http.StatusConflict)
		}
		if !sameSettings(before, storedKey(t, e, email, id)) {
			t.Fatal("an expired key's settings changed")
		}
	})
	t.Run("CSRFMissing", func(t *testing.T) {
		_, id := createKeyHTMX(t, b, "csrf")
		before := storedKey(t, e, email, id)
		keys := len(userKeys(t, e, email))
		for _, path := range []string{"/account/api-keys", keyPath(id) + "/settings"} {
			form := policyValues("csrf", "keep", formVals("rate_limit", "2", "_csrf", ""))
			expectStatus(t, b.post(path, form), http.StatusForbidden)
			form.Set("_csrf", "not-the-token")
			expectStatus(t, b.post(path, form), http.StatusForbidden)
			// htmx without its header.
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+path, strings.NewReader(settingsValues(formVals("rate_limit", "2")).Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("HX-Request", "true")
			expectStatus(t, b.do(req), http.StatusForbidden)
		}
		if len(userKeys(t, e, email)) != keys || !sameSettings(before, storedKey(t, e, email, id)) {
			t.Fatal("a request without the CSRF token changed something")
		}
	})
}

// warmKey makes sure the key is in the store's cache, so that the next
// request would not read the database unless a change made it.
func warmKey(t *testing.T, e *testEnv, key string, headers ...string) {
	t.Helper()
	for range 2 {
		expectStatus(t, e.apiCall(http.MethodGet, "/api/v1/me", key, "", headers...), http.StatusOK)
	}
	n := e.lookups.Load()
	expectStatus(t, e.apiCall(http.MethodGet, "/api/v1/me", key, "", headers...), http.StatusOK)
	if e.lookups.Load() != n {
		t.Fatal("the key is not cached after two requests")
	}
}

// changeSettings saves a key's settings through htmx.
func changeSettings(t *testing.T, b *browser, id int64, kv ...string) {
	t.Helper()
	saveSettings(t, b, id, settingsValues(formVals(kv...)), true)
}

func apiRender(e *testEnv, key, body string, headers ...string) response {
	e.t.Helper()
	path := "/api/v1/html-to-image"
	if strings.Contains(body, `"url"`) {
		path = "/api/v1/screenshots"
	}
	return e.apiCall(http.MethodPost, path, key, body, headers...)
}

const htmlBody = `{"html": "<p>hi</p>", "width": 200, "height": 100}`

func balanceOf(t *testing.T, e *testEnv, email string) int64 {
	t.Helper()
	u, err := e.store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.Credits
}

// TestPolicyEnforcedOnTheNextRequest changes each rule of a key that is
// warm in the cache and checks the very next request.
func TestPolicyEnforcedOnTheNextRequest(t *testing.T) {
	t.Run("Expiry", func(t *testing.T) {
		e := newTestEnv(t, withConfig(longSessions))
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "expiring")
		warmKey(t, e, key)
		changeSettings(t, b, id, "expires", "7d")
		expiry := e.clock.Now().Add(7 * 24 * time.Hour)
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		e.clock.Add(7*24*time.Hour - time.Second)
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		e.clock.Add(time.Second)
		msg := expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusUnauthorized, "api_key_expired").Error.Message
		if !strings.Contains(msg, "expired on "+expiry.UTC().Format("2 January 2006")) || strings.Contains(msg, "rotated") {
			t.Fatalf("expiry message %q should say the key expired on %s, not that it was rotated", msg, expiry.UTC().Format("2 January 2006"))
		}
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusUnauthorized, "api_key_expired")

		// A rotated key's end says something else.
		old, oldID := createKeyHTMX(t, b, "rotated")
		expectStatus(t, b.htmx(http.MethodPost, keyPath(oldID)+"/rotate", url.Values{"grace": {"now"}}), http.StatusOK)
		rotated := expectAPIError(t, e.apiCall("GET", "/api/v1/me", old, ""), http.StatusUnauthorized, "api_key_expired").Error.Message
		if rotated == msg || !strings.Contains(rotated, "rotated") {
			t.Fatalf("rotation message %q should differ from the expiry's and say the key was rotated", rotated)
		}
	})
	t.Run("ExpiryDateEndsAtMidnightUTC", func(t *testing.T) {
		e := newTestEnv(t, withConfig(longSessions))
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "today")
		warmKey(t, e, key)
		now := e.clock.Now().UTC()
		changeSettings(t, b, id, "expires", "date", "expires_date", now.Format("2006-01-02"))
		midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		e.clock.Add(midnight.Sub(now) - time.Second)
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		e.clock.Add(time.Second)
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusUnauthorized, "api_key_expired")
	})
	t.Run("IPv4", func(t *testing.T) {
		e := newTestEnv(t)
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "ipv4")
		warmKey(t, e, key)
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1")
		msg := expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusForbidden, "ip_not_allowed").Error.Message
		if !strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "allowed IP addresses") {
			t.Fatalf("message %q should name the address and the setting to change", msg)
		}
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1\n127.0.0.0/8")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		changeSettings(t, b, id, "allowed_ips", "127.0.0.2")
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusForbidden, "ip_not_allowed")
		changeSettings(t, b, id, "allowed_ips", "")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
	})
	t.Run("IPv6ThroughATrustedProxy", func(t *testing.T) {
		e := newTestEnv(t, withConfig(func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }))
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "ipv6")
		from := []string{"X-Forwarded-For", "2001:db8::5"}
		warmKey(t, e, key, from...)
		changeSettings(t, b, id, "allowed_ips", "2001:db8::/32")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, "", from...), http.StatusOK)
		// Not from the proxy's own address, nor from another IPv6 one.
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusForbidden, "ip_not_allowed")
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, "", "X-Forwarded-For", "2001:db9::5"), http.StatusForbidden, "ip_not_allowed")
		changeSettings(t, b, id, "allowed_ips", "2001:db9::/32")
		msg := expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, "", from...), http.StatusForbidden, "ip_not_allowed").Error.Message
		if !strings.Contains(msg, "2001:db8::5") {
			t.Fatalf("message %q should name the client's address", msg)
		}
		// An IPv4 client through the proxy, written as IPv4-mapped IPv6.
		changeSettings(t, b, id, "allowed_ips", "198.51.100.0/24")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, "", "X-Forwarded-For", "::ffff:198.51.100.7"), http.StatusOK)
	})
	t.Run("SpoofedForwardedForIgnored", func(t *testing.T) {
		e := newTestEnv(t)
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "spoofed")
		warmKey(t, e, key)
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1")
		for _, xff := range []string{"10.0.0.1", "127.0.0.1, 10.0.0.1", "10.0.0.1, 10.0.0.1"} {
			msg := expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, "", "X-Forwarded-For", xff), http.StatusForbidden, "ip_not_allowed").Error.Message
			if !strings.Contains(msg, "127.0.0.1") {
				t.Fatalf("X-Forwarded-For %q from an untrusted peer: message %q should name the peer", xff, msg)
			}
		}
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, "", "X-Real-IP", "10.0.0.1", "Forwarded", "for=10.0.0.1"), http.StatusForbidden, "ip_not_allowed")
	})
	t.Run("ForwardedForChainTakesTheRightmostUntrustedHop", func(t *testing.T) {
		e := newTestEnv(t, withConfig(func(c *Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("192.0.2.0/24")}
		}))
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "chain")
		warmKey(t, e, key)
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1")
		chain := []string{"X-Forwarded-For", "10.0.0.1, 198.51.100.9"}
		msg := expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, "", chain...), http.StatusForbidden, "ip_not_allowed").Error.Message
		if !strings.Contains(msg, "198.51.100.9") {
			t.Fatalf("message %q should name the rightmost untrusted hop", msg)
		}
		changeSettings(t, b, id, "allowed_ips", "198.51.100.9")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, "", chain...), http.StatusOK)
		// Trusted proxies on the right are skipped; the client spoofing
		// hops on the left gains nothing.
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, "", "X-Forwarded-For", "10.0.0.1, 198.51.100.9, 192.0.2.4"), http.StatusOK)
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1")
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, "", "X-Forwarded-For", "10.0.0.1, 198.51.100.9, 192.0.2.4"), http.StatusForbidden, "ip_not_allowed")
	})
	t.Run("ScopesPerEndpoint", func(t *testing.T) {
		e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { c.RateLimit = 1000 }))
		b, email := e.signUp()
		key, id := createKeyHTMX(t, b, "scoped")
		warmKey(t, e, key)
		changeSettings(t, b, id, "scopes", "html_to_image")
		msg := expectAPIError(t, apiRender(e, key, `{"url": "https://example.com"}`), http.StatusForbidden, "scope_not_allowed").Error.Message
		if !strings.Contains(msg, "screenshots") || !strings.Contains(msg, "settings") {
			t.Fatalf("message %q should name the scope and where to add it", msg)
		}
		expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		changeSettings(t, b, id, "scopes", "screenshots")
		msg = expectAPIError(t, apiRender(e, key, htmlBody), http.StatusForbidden, "scope_not_allowed").Error.Message
		if !strings.Contains(msg, "html_to_image") {
			t.Fatalf("message %q should name html_to_image", msg)
		}
		expectStatus(t, apiRender(e, key, `{"url": "https://example.com"}`), http.StatusOK)
		// /me needs no scope at all.
		changeSettings(t, b, id, "scopes", "keys_read")
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusForbidden, "scope_not_allowed")
		expectAPIError(t, apiRender(e, key, `{"url": "https://example.com"}`), http.StatusForbidden, "scope_not_allowed")
		if c := balanceOf(t, e, email); c != account.SignupCredits-2 {
			t.Fatalf("balance %d after 2 renders: refusals were charged", c)
		}
	})
	t.Run("RateLimitPerKey", func(t *testing.T) {
		e := newTestEnv(t, withRenderer(&fakeRenderer{}))
		b, email := e.signUp()
		key, id := createKeyHTMX(t, b, "limited")
		other, _ := createKeyHTMX(t, b, "other")
		warmKey(t, e, key)
		changeSettings(t, b, id, "rate_limit", "2")
		for range 2 {
			expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		}
		r := apiRender(e, key, htmlBody)
		msg := expectAPIError(t, r, http.StatusTooManyRequests, "rate_limited").Error.Message
		retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || retry != 30 {
			t.Fatalf("Retry-After %q, want 30 (2 a minute, the clock stopped)", r.Header.Get("Retry-After"))
		}
		if !strings.Contains(msg, "2 renders a minute") {
			t.Fatalf("message %q should say the key's limit", msg)
		}
		// Not rate-limited: /me, and the account's other key.
		expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
		for range 3 {
			expectStatus(t, apiRender(e, other, htmlBody), http.StatusOK)
		}
		e.clock.Add(30 * time.Second)
		expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusTooManyRequests, "rate_limited")
		if c := balanceOf(t, e, email); c != account.SignupCredits-6 {
			t.Fatalf("balance %d after 6 renders: refusals were charged", c)
		}
	})
	t.Run("MonthlyBudget", func(t *testing.T) {
		e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { longSessions(c); c.RateLimit = 1000 }))
		b, email := e.signUp()
		key, id := createKeyHTMX(t, b, "budget")
		other, _ := createKeyHTMX(t, b, "unbudgeted")
		warmKey(t, e, key)
		changeSettings(t, b, id, "monthly_budget", "2")
		for range 2 {
			expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		}
		msg := expectAPIError(t, apiRender(e, key, htmlBody), http.StatusPaymentRequired, "key_budget_exhausted").Error.Message
		reset := account.MonthStart(e.clock.Now()).AddDate(0, 1, 0)
		if !strings.Contains(msg, reset.Format("2 January 2006")) || !strings.Contains(msg, "budget of 2") {
			t.Fatalf("message %q should name the budget and the reset date %s", msg, reset.Format("2 January 2006"))
		}
		if c := balanceOf(t, e, email); c != account.SignupCredits-2 {
			t.Fatalf("balance %d: the refusal touched the account's balance", c)
		}
		expectAPIError(t, apiRender(e, key, `{"url": "https://example.com"}`), http.StatusPaymentRequired, "key_budget_exhausted")
		expectStatus(t, apiRender(e, other, htmlBody), http.StatusOK)
		row := b.get("/account/api-keys").doc(t).Find(`tr#key-` + strconv.FormatInt(id, 10))
		if badges := badgeTexts(row); !slices.Contains(badges, "2 / 2 this month") {
			t.Fatalf("badges %q, want 2 / 2 this month", badges)
		}
		changeSettings(t, b, id, "monthly_budget", "3")
		expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusPaymentRequired, "key_budget_exhausted")
		// A new month, a new budget.
		e.clock.Add(reset.Sub(e.clock.Now()))
		expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		if c := balanceOf(t, e, email); c != account.SignupCredits-5 {
			t.Fatalf("balance %d after 5 renders", c)
		}
	})
	t.Run("AllowedSites", func(t *testing.T) {
		fake := &scriptedRenderer{}
		e := newTestEnv(t, withRenderer(fake), withConfig(func(c *Config) { c.RateLimit = 1000 }))
		b, email := e.signUp()
		key, id := createKeyHTMX(t, b, "sites")
		warmKey(t, e, key)
		expectStatus(t, apiRender(e, key, `{"url": "https://anything.example"}`), http.StatusOK)
		if job := fake.job(t); job.AllowHost != nil {
			t.Fatal("a key without allowed sites gave the renderer a host check")
		}
		changeSettings(t, b, id, "allowed_targets", "example.com\n*.example.org")
		balance := balanceOf(t, e, email)
		for _, u := range []string{"https://evil.example/", "https://example.org/", "https://www.example.com/", "http://example.com.evil.example/"} {
			msg := expectAPIError(t, apiRender(e, key, fmt.Sprintf(`{"url": %q}`, u)), http.StatusForbidden, "target_not_allowed").Error.Message
			if !strings.Contains(msg, strconv.Quote(hostOfURL(u))) || !strings.Contains(msg, "Nothing was charged") {
				t.Fatalf("%s: message %q should name the host and say nothing was charged", u, msg)
			}
		}
		if len(fake.take()) != 0 {
			t.Fatal("a refused target reached the renderer")
		}
		if c := balanceOf(t, e, email); c != balance {
			t.Fatalf("refused targets were charged: %d, was %d", c, balance)
		}
		for _, u := range []string{"https://example.com/x", "https://EXAMPLE.com:8443/", "https://a.b.example.org/"} {
			expectStatus(t, apiRender(e, key, fmt.Sprintf(`{"url": %q}`, u)), http.StatusOK)
			job := fake.job(t)
			if job.AllowHost == nil || !job.AllowHost("example.com") || !job.AllowHost("x.example.org") || job.AllowHost("evil.example") || job.AllowHost("example.org") {
				t.Fatalf("%s: the renderer's host check does not follow the key's allowed sites", u)
			}
		}
		// HTML renders too, with the check for where the page goes.
		expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		if job := fake.job(t); job.AllowHost == nil || job.AllowHost("evil.example") {
			t.Fatal("html-to-image gave the renderer no host check")
		}
		// The renderer refusing a page the render went to: 403, free.
		fake.fail(&capture.NotAllowedError{Host: "other.example", URL: "https://other.example/landing"})
		balance = balanceOf(t, e, email)
		msg := expectAPIError(t, apiRender(e, key, `{"url": "https://example.com/redirects"}`), http.StatusForbidden, "target_not_allowed").Error.Message
		fake.job(t)
		if !strings.Contains(msg, "https://other.example/landing") || !strings.Contains(msg, `"other.example"`) {
			t.Fatalf("message %q should say where the page went", msg)
		}
		if c := balanceOf(t, e, email); c != balance {
			t.Fatalf("a page refused by the renderer was charged: %d, was %d", c, balance)
		}
		if n, _ := e.store.LiveReservations(context.Background()); n != 0 {
			t.Fatalf("%d reservations left behind", n)
		}
	})
	t.Run("Order", func(t *testing.T) {
		// Expired → inactive → IP → scope → rate limit → budget → credits.
		e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(longSessions))
		b, _ := e.signUp()
		key, id := createKeyHTMX(t, b, "order")
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1", "scopes", "keys_read", "rate_limit", "1", "monthly_budget", "1")
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusForbidden, "ip_not_allowed")
		changeSettings(t, b, id, "allowed_ips", "127.0.0.1", "scopes", "keys_read", "rate_limit", "1", "monthly_budget", "1")
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusForbidden, "scope_not_allowed")
		changeSettings(t, b, id, "rate_limit", "1", "monthly_budget", "1", "allowed_ips", "10.0.0.1", "expires", "7d")
		expectStatus(t, b.htmx(http.MethodPost, keyPath(id)+"/deactivate", url.Values{}), http.StatusOK)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusForbidden, "api_key_inactive")
		expectStatus(t, b.htmx(http.MethodPost, keyPath(id)+"/activate", url.Values{}), http.StatusOK)
		changeSettings(t, b, id, "rate_limit", "1", "monthly_budget", "1")
		expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusTooManyRequests, "rate_limited")
		e.clock.Add(time.Minute)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusPaymentRequired, "key_budget_exhausted")
		changeSettings(t, b, id, "allowed_ips", "10.0.0.1")
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusForbidden, "ip_not_allowed")
		e.clock.Add(7 * 24 * time.Hour)
		expectAPIError(t, apiRender(e, key, htmlBody), http.StatusUnauthorized, "api_key_expired")
	})
}

func badgeTexts(row *goquery.Selection) []string {
	var out []string
	row.Find(`[data-testid="key-badge"]`).Each(func(_ int, s *goquery.Selection) {
		out = append(out, strings.Join(strings.Fields(s.Text()), " "))
	})
	return out
}

// TestPolicyRotationCopiesEverything rotates keys whose every setting was
// made through the dashboard: the replacement has the same policy, a
// lifetime counts again from the rotation and a date stays the date.
func TestPolicyRotationCopiesEverything(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(longSessions))
	b, email := e.signUp()
	full := formVals("scopes_given", "1", "scopes", "html_to_image", "scopes", "keys_read",
		"allowed_ips", "127.0.0.1\n2001:db8::/32", "allowed_targets", "example.com\n*.bücher.example",
		"rate_limit", "10", "monthly_budget", "500")
	items := []string{"scopes", "ips", "targets", "rate", "budget"}
	newest := func(t *testing.T) account.APIKey { return userKeys(t, e, email)[0] }

	for _, tc := range []struct {
		name    string
		expires url.Values
		htmx    bool
	}{
		{"Lifetime", formVals("expires", "30d"), false},
		{"Date", formVals("expires", "date", "expires_date", e.clock.Now().UTC().AddDate(0, 0, 100).Format("2006-01-02")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := createValues(full)
			for k, v := range tc.expires {
				form[k] = v
			}
			form.Set("label", "rotated "+tc.name)
			_, id := createPolicyKey(t, b, form, true)
			old := storedKey(t, e, email, id)
			before := b.get(keyPath(id)).doc(t)
			e.clock.Add(10 * 24 * time.Hour)
			rotatedAt := e.clock.Now()

			var key string
			if tc.htmx {
				r := b.htmx(http.MethodPost, keyPath(id)+"/rotate", url.Values{"grace": {"1h"}})
				expectStatus(t, r, http.StatusOK)
				key, _ = r.doc(t).Find(`[data-testid="new-key"]`).Attr("value")
			} else {
				r := b.post(keyPath(id)+"/rotate", url.Values{"grace": {"1h"}})
				expectStatus(t, r, http.StatusSeeOther)
				key, _ = b.get("/account/api-keys").doc(t).Find(`[data-testid="new-key"]`).Attr("value")
			}
			if !keyPattern.MatchString(key) {
				t.Fatal("the replacement was not shown")
			}
			repl := newest(t)
			if repl.ID == id || storedKey(t, e, email, id).ReplacedBy != repl.ID {
				t.Fatal("the newest key is not the replacement")
			}
			if repl.Label != old.Label || !slices.Equal(repl.Policy.Scopes, old.Policy.Scopes) ||
				!slices.Equal(repl.Policy.AllowedIPs, old.Policy.AllowedIPs) || !slices.Equal(repl.Policy.AllowedTargets, old.Policy.AllowedTargets) ||
				repl.Policy.RateLimit != 10 || repl.Policy.MonthlyBudget != 500 {
				t.Fatalf("replacement's policy %+v, want the old key's %+v", repl.Policy, old.Policy)
			}
			after := b.get(keyPath(repl.ID)).doc(t)
			for _, item := range items {
				if got, want := policyShown(after, item), policyShown(before, item); got != want || got == "" {
					t.Errorf("the replacement's page says %s %q, the old key's %q", item, got, want)
				}
			}
			if old.ExpiryLifetime > 0 {
				want := rotatedAt.Add(30 * 24 * time.Hour)
				if !repl.ExpiresAt.Equal(want) || repl.ExpiryLifetime != old.ExpiryLifetime {
					t.Fatalf("replacement expires %v (lifetime %v), want 30 days from the rotation: %v", repl.ExpiresAt, repl.ExpiryLifetime, want)
				}
				if got := policyShown(after, "expires"); !strings.Contains(got, want.UTC().Format("2 January 2006")) || !strings.Contains(got, "30 days") {
					t.Fatalf("the replacement's page says it expires %q", got)
				}
			} else if !repl.ExpiresAt.Equal(old.ExpiresAt) || repl.ExpiryLifetime != 0 {
				t.Fatalf("replacement expires %v, want the same date as the old key: %v", repl.ExpiresAt, old.ExpiresAt)
			}
			// The replacement is restricted as the old key was.
			expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
			expectAPIError(t, apiRender(e, key, `{"url": "https://example.com"}`), http.StatusForbidden, "scope_not_allowed")
			expectStatus(t, apiRender(e, key, htmlBody), http.StatusOK)
		})
	}
}

// TestPolicyList checks the list: a badge per restriction, and the five
// statuses told apart.
func TestPolicyList(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { longSessions(c); c.RateLimit = 1000 }))
	b, email := e.signUp()
	start := e.clock.Now()
	create := func(label string, kv ...string) (string, int64) {
		form := createValues(formVals(kv...))
		form.Set("label", label)
		return createPolicyKey(t, b, form, true)
	}
	_, plain := create("plain")
	_, week := create("week", "expires", "7d")
	_, month := create("month", "expires", "30d")
	_, dated := create("dated", "expires", "date", "expires_date", start.UTC().Format("2006-01-02"))
	_, scoped := create("scoped", "scopes", "screenshots", "scopes", "html_to_image", "scopes", "keys_read")
	_, single := create("single", "scopes", "html_to_image")
	_, ips := create("ips", "allowed_ips", "203.0.113.0/24, 2001:db8::1")
	_, sites := create("sites", "allowed_targets", "a.example, b.example\n*.c.example")
	_, rated := create("rated", "rate_limit", "10")
	budgetKey, budgeted := create("budgeted", "monthly_budget", "500")
	_, inactive := create("inactive")
	_, retiring := create("retiring")
	_, everything := create("everything", "expires", "90d", "scopes", "keys_read", "allowed_ips", "10.0.0.1",
		"allowed_targets", "example.com", "rate_limit", "5", "monthly_budget", "9")

	// The dated key ends at midnight UTC; the rest is counted from there.
	e.clock.Add(24 * time.Hour)
	now := e.clock.Now()
	for range 37 {
		expectStatus(t, apiRender(e, budgetKey, htmlBody), http.StatusOK)
	}
	expectStatus(t, b.htmx(http.MethodPost, keyPath(inactive)+"/deactivate", url.Values{}), http.StatusOK)
	expectStatus(t, b.htmx(http.MethodPost, keyPath(retiring)+"/rotate", url.Values{"grace": {"24h"}}), http.StatusOK)

	date := func(id int64) string {
		return "Expires " + storedKey(t, e, email, id).ExpiresAt.UTC().Format("2 Jan 2006")
	}
	for _, tc := range []struct {
		id     int64
		status string
		badges []string
	}{
		{plain, "Active", nil},
		{week, "Expires in 6 days", []string{date(week)}},
		{month, "Active", []string{date(month)}},
		{dated, "Expired", nil},
		{scoped, "Active", []string{"3 scopes"}},
		{single, "Active", []string{"1 scope"}},
		{ips, "Active", []string{"IP-restricted"}},
		{sites, "Active", []string{"3 sites"}},
		{rated, "Active", []string{"10/min"}},
		{budgeted, "Active", []string{"37 / 500 this month"}},
		{inactive, "Inactive", nil},
		{retiring, "Retiring in 1 day", nil},
		{everything, "Active", []string{date(everything), "1 scope", "IP-restricted", "1 site", "5/min", "0 / 9 this month"}},
	} {
		t.Run(storedKey(t, e, email, tc.id).Label, func(t *testing.T) {
			for _, htmx := range []bool{false, true} {
				var d *goquery.Document
				if htmx {
					r := b.get("/account/api-keys?part=list", "HX-Request", "true")
					expectStatus(t, r, http.StatusOK)
					d = r.doc(t)
				} else {
					d = b.get("/account/api-keys").doc(t)
				}
				row := d.Find(`tr#key-` + strconv.FormatInt(tc.id, 10))
				if row.Length() != 1 {
					t.Fatalf("no row for key %d", tc.id)
				}
				if got := strings.Join(strings.Fields(row.Find(`[data-testid="key-status"]`).Text()), " "); got != tc.status {
					t.Errorf("status %q, want %q", got, tc.status)
				}
				if got := badgeTexts(row); !slices.Equal(got, tc.badges) {
					t.Errorf("badges %q, want %q", got, tc.badges)
				}
			}
		})
	}
	t.Run("KeyPageStatusAndSpend", func(t *testing.T) {
		d := b.get(keyPath(budgeted)).doc(t)
		if got := policyShown(d, "budget"); got != "37 of 500 credits spent this month" {
			t.Fatalf("the key page says the budget is %q", got)
		}
		if got := strings.TrimSpace(b.get(keyPath(week)).doc(t).Find(`[data-testid="key-status"]`).Text()); got != "Expires in 6 days" {
			t.Fatalf("the key page's status %q", got)
		}
	})
	t.Run("ExpiredKeyCannotBeActivated", func(t *testing.T) {
		if b.get("/account/api-keys").doc(t).Find(`tr#key-`+strconv.FormatInt(dated, 10)+` [data-testid="key-activate"], tr#key-`+strconv.FormatInt(dated, 10)+` [data-testid="key-deactivate"]`).Length() != 0 {
			t.Fatal("an expired key's row offers to switch it on or off")
		}
		activate := func() {
			t.Helper()
			expectStatus(t, b.post(keyPath(dated)+"/activate", url.Values{}), http.StatusConflict)
			expectStatus(t, b.htmx(http.MethodPost, keyPath(dated)+"/activate", url.Values{}), http.StatusConflict)
		}
		activate()
		// Switched off while expired, it still can't come back.
		expectStatus(t, b.post(keyPath(dated)+"/deactivate", url.Values{}), http.StatusSeeOther)
		activate()
		if k := storedKey(t, e, email, dated); k.Status(now) != account.KeyExpired || k.Works(now) {
			t.Fatalf("the expired key is %v", k.Status(now))
		}
		_, err := e.store.SetAPIKeyActive(context.Background(), storedKey(t, e, email, dated).UserID, dated, true)
		if !errors.Is(err, account.ErrKeyExpired) {
			t.Fatal("the store reactivated an expired key")
		}
	})
}

// TestPolicyMalformedKeyNeedsNoLookup: whatever a key's policy, a
// malformed key is refused by its checksum before the store is asked.
func TestPolicyMalformedKeyNeedsNoLookup(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}))
	b, _ := e.signUp()
	key, id := createKeyHTMX(t, b, "malformed")
	changeSettings(t, b, id, "allowed_ips", "127.0.0.1", "allowed_targets", "example.com", "rate_limit", "5", "monthly_budget", "5")
	bad := []byte(key)
	bad[len(bad)-1] ^= 1
	n := e.lookups.Load()
	expectAPIError(t, e.apiCall(http.MethodGet, "/api/v1/me", string(bad), ""), http.StatusUnauthorized, "invalid_api_key")
	for _, path := range []string{"/api/v1/screenshots", "/api/v1/html-to-image"} {
		expectAPIError(t, e.apiCall(http.MethodPost, path, string(bad), htmlBody), http.StatusUnauthorized, "invalid_api_key")
	}
	if got := e.lookups.Load() - n; got != 0 {
		t.Fatalf("a malformed key reached the store %d times", got)
	}
}

// scriptedRenderer paints nothing, keeps the jobs it was given and fails
// them with err once told to; it is safe to change while the server runs.
type scriptedRenderer struct {
	mu   sync.Mutex
	err  error
	jobs []capture.Job
}

func (r *scriptedRenderer) Render(_ context.Context, job capture.Job) (capture.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, job)
	if r.err != nil {
		return capture.Image{}, r.err
	}
	return capture.Image{Data: []byte("\x89PNG fake"), ContentType: "image/png", Width: 200, Height: 100}, nil
}

func (r *scriptedRenderer) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// take returns the jobs rendered since the last call.
func (r *scriptedRenderer) take() []capture.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	jobs := r.jobs
	r.jobs = nil
	return jobs
}

// job is the one job rendered since the last call.
func (r *scriptedRenderer) job(t *testing.T) capture.Job {
	t.Helper()
	jobs := r.take()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs rendered, want 1", len(jobs))
	}
	return jobs[0]
}

// browserForm is what a browser submits of a form as the page filled it
// in: its named inputs, textareas, checked boxes and selected options.
func browserForm(form *goquery.Selection) url.Values {
	v := url.Values{}
	form.Find(`input[name], textarea[name], select[name]`).Each(func(_ int, f *goquery.Selection) {
		name := f.AttrOr("name", "")
		switch goquery.NodeName(f) {
		case "textarea":
			v.Add(name, f.Text())
		case "select":
			opt := f.Find(`option[selected]`).First()
			if opt.Length() == 0 {
				opt = f.Find(`option`).First()
			}
			v.Add(name, opt.AttrOr("value", opt.Text()))
		default:
			switch f.AttrOr("type", "text") {
			case "checkbox", "radio":
				if _, on := f.Attr("checked"); on {
					v.Add(name, f.AttrOr("value", "on"))
				}
			case "submit", "button":
			default:
				v.Add(name, f.AttrOr("value", ""))
			}
		}
	})
	return v
}
