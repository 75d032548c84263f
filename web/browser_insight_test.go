package web

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/peekshot/peekshot/account"
	bt "github.com/peekshot/peekshot/internal/browsertest"
	"github.com/peekshot/peekshot/store/storetest"
)

// insightPage is a signed-in browser on a server whose user has a key
// with 30 days of usage ("Production server"), a quiet one ("Staging") and
// one with every scope ("CI deploy"), so key health has findings.
type insightPage struct {
	e            *testEnv
	pg           *bt.Page
	prod, ci     int64
	prodMasked   string
	stagingLabel string
}

func newInsightPage(t *testing.T) *insightPage {
	t.Helper()
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) {
		c.RateLimit = 1000
		c.UsageFlushInterval = time.Hour
	}))
	pg := bt.NewPage(t)
	email := uniqueEmail()
	create := func(label string) (string, int64) {
		t.Helper()
		pg.Step("create "+label,
			bt.Type(`[data-testid="key-label"]`, label),
			bt.Click(`[data-testid="create-key"]`),
			bt.Until(`document.querySelector('[data-testid="key-reveal"] [data-testid="new-key"]') && document.querySelector('tr.row-new [data-testid="key-label-text"]').title === `+jsString(label)),
		)
		key := pg.Eval(`document.querySelector('[data-testid="new-key"]').value`)
		id, err := strconv.ParseInt(pg.Eval(`document.querySelector('tr.row-new').dataset.keyId`), 10, 64)
		if err != nil || !keyPattern.MatchString(key) {
			t.Fatalf("the new key %q: %q (%v)", label, key, err)
		}
		return key, id
	}
	pg.Step("sign up",
		chromedp.Navigate(e.http.URL+"/signup"),
		bt.Type(`#f-email`, email),
		bt.Type(`#f-password`, "correct horse battery"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
	)
	p := &insightPage{e: e, pg: pg, stagingLabel: "Staging"}
	create(p.stagingLabel)
	key, prod := create("Production server")
	p.prod = prod
	uid := e.userID(email)

	// Today, through the API; the 29 days before, as the flushes of other
	// servers would have written them.
	for i := range 14 {
		switch i % 5 {
		case 0, 1, 2:
			expectStatus(t, e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "<p>hi</p>"}`, "User-Agent", "billing-worker/3.2 (+https://example.com)"), 200)
		case 3:
			expectStatus(t, e.apiCall("GET", "/api/v1/me", key, "", "User-Agent", "billing-worker/3.2 (+https://example.com)"), 200)
		default:
			expectAPIError(t, e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": ""}`, "User-Agent", "billing-worker/3.2 (+https://example.com)"), 400, "invalid_request")
		}
	}
	now := e.clock.Now()
	var usage []account.KeyUsage
	for d := 1; d < 30; d++ {
		if d%6 == 5 {
			continue // a quiet day
		}
		at := now.AddDate(0, 0, -d)
		renders := int64(8 + (d*7)%17)
		u := account.KeyUsage{KeyID: prod, Day: at, Requests: renders + int64(2+d%4), Accepted: renders + 1, Renders: renders,
			Errors: map[string]int64{"rate_limited": int64(1 + d%3)}, FirstUsed: at, LastUsed: at, LastIP: "203.0.113.7", LastAgent: "billing-worker/3.1"}
		if d == 1 { // yesterday it was used from far too many places
			for i := range account.ManyIPs + 2 {
				u.IPs = append(u.IPs, "198.51.100."+strconv.Itoa(i+1))
			}
		}
		usage = append(usage, u)
	}
	if err := e.store.RecordAPIKeyUsage(t.Context(), usage); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Exec(`UPDATE key_usage_days SET credits = renders WHERE api_key_id = ? AND day < ?`, prod, account.DayStart(now).Unix()); err != nil {
		t.Fatal(err)
	}
	e.flush()
	ci, err := e.store.CreateAPIKey(t.Context(), account.NewAPIKey{UserID: uid, Label: "CI deploy", Key: storetest.MustKey(t),
		Policy: account.Policy{Scopes: account.AllScopes}})
	if err != nil {
		t.Fatal(err)
	}
	p.ci = ci.ID
	for _, k := range userKeys(t, e, email) {
		if k.ID == prod {
			p.prodMasked = k.Masked()
		}
	}
	return p
}

// TestBrowserKeyInsight: key health on the API Keys tab, a key's page
// with its 30-day chart (drawn, with its table), and the activity log
// filtered by key with the keyboard alone, at 1280 and 390 px.
// PEEKSHOT_SCREENSHOTS=dir keeps the pictures.
func TestBrowserKeyInsight(t *testing.T) {
	p := newInsightPage(t)
	pg, base, shots := p.pg, p.e.http.URL, os.Getenv("PEEKSHOT_SCREENSHOTS")
	step, eval := pg.Step, pg.Eval
	prodID := strconv.FormatInt(p.prod, 10)
	phone := func(what, shot, show string) {
		t.Helper()
		step(what+" on a phone", chromedp.EmulateViewport(390, 844),
			chromedp.ScrollIntoView(show, bt.CSS(show)), bt.Screenshot(shots, shot+"-phone"))
		pg.NoSidewaysScroll(what + " on a phone")
		step("desktop again", chromedp.EmulateViewport(1280, 900))
	}

	step("the API Keys tab", chromedp.Navigate(base+"/account/api-keys"), bt.WaitVisible(`[data-testid="key-health"]`), bt.Screenshot(shots, "insight-health"))
	for _, kind := range []account.FindingKind{account.FindingManyIPs, account.FindingUnrestricted, account.FindingNeverExpires} {
		if eval(`String(!!document.querySelector('[data-testid="finding-`+string(kind)+`"]'))`) != "true" {
			t.Fatalf("key health lacks the %s finding", kind)
		}
	}
	phone("key health", "insight-health", `[data-testid="key-health"]`)

	step("open the key's page from its row",
		bt.Click(`#key-`+prodID+` [data-testid="key-label-text"]`),
		bt.WaitVisible(`[data-testid="usage-chart-svg"]`),
		chromedp.ScrollIntoView(`[data-testid="usage-chart"]`, bt.CSS(`[data-testid="usage-chart"]`)),
		bt.Screenshot(shots, "insight-key-page"),
	)
	// The chart is drawn: bars on the days with usage, the credits line
	// across all 30, axis labels; and the same numbers for screen readers.
	if n := eval(`String(document.querySelectorAll('[data-testid="usage-chart-svg"] rect.bar-renders').length)`); n != "25" {
		t.Fatalf("%s days have render bars, want 25 (30 days, 5 of them quiet)", n)
	}
	if box := eval(`(() => { const r = document.querySelector('[data-testid="usage-chart-svg"]').getBoundingClientRect(); return r.width > 600 && r.height > 150 ? 'ok' : r.width + 'x' + r.height; })()`); box != "ok" {
		t.Fatalf("the chart is drawn %s at 1280 px", box)
	}
	if got := eval(`[...document.querySelector('[data-testid="usage-table"] tbody tr:last-child').children].map(c => c.textContent.replace(/\s+/g, ' ').trim()).join('|')`); !strings.HasSuffix(got, "|14|9|9|2 (invalid_request 2)") {
		t.Fatalf("today's row in the table reads %q, want 14 requests, 9 renders, 9 credits, 2 refused", got)
	}
	if got := pg.Text(`[data-testid="key-last-client"]`); !strings.Contains(got, "billing-worker/3.2") {
		t.Fatalf("the last client reads %q", got)
	}
	// Dark mode keeps the chart readable: its colours come from classes.
	step("dark", setColorScheme("dark"), bt.Screenshot(shots, "insight-key-page-dark"), setColorScheme("light"))
	phone("the key's page", "insight-key-page", `[data-testid="usage-chart"]`)
	step("a phone again", chromedp.EmulateViewport(390, 844))
	// A phone gets the taller drawing, with the same bars.
	if box := eval(`(() => { const r = document.querySelector('[data-testid="usage-chart-svg-narrow"]').getBoundingClientRect(); return r.height > 180 && r.width > 250 ? 'ok' : r.width + 'x' + r.height; })()`); box != "ok" {
		t.Fatalf("the phone's chart is drawn %s", box)
	}
	if n := eval(`String(document.querySelectorAll('[data-testid="usage-chart-svg-narrow"] rect.bar-renders').length)`); n != "25" {
		t.Fatalf("the phone's chart has %s render bars, want 25", n)
	}
	if shown := eval(`getComputedStyle(document.querySelector('[data-testid="usage-chart-svg"]')).display`); shown != "none" {
		t.Fatalf("the wide chart shows on a phone too (%s)", shown)
	}
	step("desktop again", chromedp.EmulateViewport(1280, 900))
	if shown := eval(`getComputedStyle(document.querySelector('[data-testid="usage-chart-svg-narrow"]')).display`); shown != "none" {
		t.Fatalf("the phone's chart shows on a screen too (%s)", shown)
	}

	step("the activity log", chromedp.Navigate(base+"/account/api-keys"), bt.Click(`[data-testid="activity-link"]`), bt.WaitVisible(`[data-testid="activity-table"]`))
	// Filter by the key with the keyboard alone: Tab to the key's select,
	// arrows to the key, Tab to Filter, Enter.
	tabTo := func(selector string) {
		t.Helper()
		for range 40 {
			if eval(`String(document.activeElement.matches(`+jsString(selector)+`))`) == "true" {
				return
			}
			step("Tab", chromedp.KeyEvent(kb.Tab))
		}
		t.Fatalf("Tab never reached %s", selector)
	}
	tabTo(`[data-testid="activity-filter-key"]`)
	for range 5 {
		if eval(`document.activeElement.value`) == prodID {
			break
		}
		step("next key", chromedp.KeyEvent(kb.ArrowDown))
	}
	if eval(`document.activeElement.value`) != prodID {
		t.Fatal("the arrow keys never chose the key")
	}
	tabTo(`[data-testid="activity-filter-event"]`)
	tabTo(`[data-testid="activity-filter-apply"]`)
	eval(`document.body.dataset.before = 'filter'; ''`) // the page before the filter
	step("filter (Space on the button)", chromedp.KeyEvent(" "))
	step("the filtered log",
		bt.WaitVisible(`body:not([data-before]) [data-testid="activity-table"]`),
		bt.Until(`new URLSearchParams(location.search).get('key') === '`+prodID+`'`),
		bt.Screenshot(shots, "insight-activity"),
	)
	rows := eval(`JSON.stringify([...document.querySelectorAll('[data-testid="activity-row"] td[data-label="Key"] code')].map(c => c.textContent))`)
	if !strings.Contains(rows, p.prodMasked) || strings.Count(rows, p.prodMasked) != strings.Count(rows, "psk_") {
		t.Fatalf("filtered by %s, the log shows keys %s", p.prodMasked, rows)
	}
	if eval(`document.querySelector('[data-testid="activity-filter-key"]').value`) != prodID {
		t.Fatal("the filter does not show the key it filters by")
	}
	phone("the activity log", "insight-activity", `[data-testid="activity-table"]`)
}

// TestBrowserKeyInsightAccessibility runs axe-core on the pages of key
// insight: the API Keys tab with key health, a key's page with its chart,
// and the activity log, at 1280 and 390 px, light and dark.
func TestBrowserKeyInsightAccessibility(t *testing.T) {
	p := newInsightPage(t)
	pg, base := p.pg, p.e.http.URL
	var found []string
	pg.Step("the API Keys tab with key health", chromedp.Navigate(base+"/account/api-keys"), bt.WaitVisible(`[data-testid="key-health"]`))
	found = append(found, axeEverywhere(t, pg, "API Keys with key health")...)
	pg.Step("the key's page", chromedp.Navigate(base+keyPath(p.prod)), bt.WaitVisible(`[data-testid="usage-chart-svg"]`))
	found = append(found, axeEverywhere(t, pg, "the key's page with its chart")...)
	pg.Step("the activity log", chromedp.Navigate(base+"/account/activity"), bt.WaitVisible(`[data-testid="activity-table"]`))
	found = append(found, axeEverywhere(t, pg, "the activity log")...)
	pg.Step("the activity log of a quiet key", chromedp.Navigate(base+"/account/activity?event=key.leak_reported"), bt.WaitVisible(`[data-testid="activity-empty"]`))
	found = append(found, axeEverywhere(t, pg, "the activity log, empty")...)
	if len(found) > 0 {
		t.Fatalf("axe-core found %d problems:\n%s", len(found), strings.Join(found, "\n"))
	}
}
