package web

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/peekshot/peekshot/apikey"
	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// TestBrowserAPIKeysFlow walks the user guide in Chromium against the real
// server: sign up, Account → API Keys, create a labelled key, Show it, Copy
// it, reload (masked only), deactivate, delete. PEEKSHOT_SCREENSHOTS=dir
// keeps a picture of each step.
func TestBrowserAPIKeysFlow(t *testing.T) {
	e := newTestEnv(t)
	shots := os.Getenv("PEEKSHOT_SCREENSHOTS")
	pg := bt.NewPage(t)
	ctx := pg.Ctx
	step, text, eval := pg.Step, pg.Text, pg.Eval
	base := e.http.URL
	email := uniqueEmail()
	noSidewaysScroll := func(what string) {
		t.Helper()
		if wide := eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); wide != "0" {
			t.Fatalf("%s scrolls sideways by %spx", what, wide)
		}
	}

	// Clipboard access for the origin, as a user's click would give.
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     base,
		}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}

	step("sign up",
		chromedp.Navigate(base+"/signup"),
		bt.Screenshot(shots, "signup"),
		bt.Type(`#f-email`, email),
		bt.Type(`#f-name`, "Ada"),
		bt.Type(`#f-password`, "correct horse battery"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
	)
	if !strings.Contains(text(`[data-testid="toast"]`), "100 free credits") {
		t.Fatal("no welcome toast")
	}
	// On a phone the welcome toast leaves the top bar (and Sign out) free.
	step("welcome on a phone", chromedp.EmulateViewport(390, 844), bt.Screenshot(shots, "welcome-phone"))
	if overlap := eval(`(() => { const t = document.querySelector('[data-testid="toast"]').getBoundingClientRect(); const bar = document.querySelector('.sidebar').getBoundingClientRect(); return String(t.top < bar.bottom && t.bottom > bar.top); })()`); overlap != "false" {
		t.Fatal("the welcome toast covers the top bar on a phone")
	}
	step("desktop", chromedp.EmulateViewport(1280, 900))

	// Step 1 and 2 of the guide: sidebar → Account, then the API Keys tab.
	step("open Account from the sidebar",
		bt.Click(`[data-testid="nav-account"]`),
		bt.WaitVisible(`[data-testid="profile-panel"]`),
		bt.Click(`[data-testid="tab-api-keys"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
		bt.WaitVisible(`[data-testid="keys-empty"]`),
		bt.Screenshot(shots, "api-keys-empty"),
	)
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != base+"/account/api-keys" {
		t.Fatalf("tab switch did not push the URL: %s", loc)
	}
	if got := eval(`document.querySelector('#account-tabs [aria-current="page"]').textContent.trim()`); got != "API Keys" {
		t.Fatalf("active tab after switch: %q", got)
	}
	if got := eval(`document.title`); got != "API Keys · PeekShot" {
		t.Fatalf("title after switch: %q", got)
	}

	// Extensions and password managers put style attributes on inputs
	// (style="" once a property is cleared); htmx's settle step used to copy
	// them onto the swapped-in element with setAttribute, a CSP violation
	// in about half the runs. The watcher of bt.NewPage fails on any.
	eval(`(() => { for (const el of document.querySelectorAll('input[id], button[id]')) { el.style.color = 'red'; el.style.color = ''; } return ''; })()`)
	step("create a key",
		bt.Type(`[data-testid="key-label"]`, "Server-side app"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
	)
	if typ := eval(`document.querySelector('[data-testid="new-key"]').type`); typ != "password" {
		t.Fatalf("new key not masked by default: type=%s", typ)
	}
	step("show the key", bt.Click(`[data-testid="new-key-toggle"]`), bt.Screenshot(shots, "api-keys-reveal"))
	if typ := eval(`document.querySelector('[data-testid="new-key"]').type`); typ != "text" {
		t.Fatalf("Show did not reveal the key: type=%s", typ)
	}
	if got := text(`[data-testid="new-key-toggle"]`); got != "Hide" {
		t.Fatalf("toggle says %q after Show", got)
	}
	key := eval(`document.querySelector('[data-testid="new-key"]').value`)
	if !apikey.Valid(key) {
		t.Fatalf("revealed value is not a key: %q", key)
	}
	if _, err := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); err != nil {
		t.Fatalf("revealed key is not the stored one: %v", err)
	}

	step("reveal on a phone", chromedp.EmulateViewport(390, 844),
		chromedp.ScrollIntoView(`[data-testid="key-reveal"]`, bt.CSS(`[data-testid="key-reveal"]`)),
		bt.Screenshot(shots, "api-keys-reveal-phone"))
	noSidewaysScroll("the reveal on a phone")
	// The revealed key's field spans the card, so the whole key can be read
	// after Show (it was 110 px wide: about 10 characters).
	if ratio := eval(`(() => { const f = document.querySelector('[data-testid="new-key"]'); return String(f.getBoundingClientRect().width / f.closest('.callout-reveal').getBoundingClientRect().width); })()`); mustFloat(t, ratio) < 0.85 {
		t.Fatalf("the key's field takes %s of the reveal's width on a phone", ratio)
	}
	step("back to desktop", chromedp.EmulateViewport(1280, 900))
	step("copy the key", bt.Click(`[data-testid="new-key-copy"]`))
	step("copied confirmation", bt.Until(`document.querySelector('[data-testid="new-key-copy"]').textContent.includes('Copied')`))
	clip := eval(`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)
	if clip != key {
		t.Fatalf("clipboard holds %q, want the key", clip)
	}
	step("announced", bt.Until(`document.getElementById('announcer').textContent === 'Copied to clipboard'`))
	step("copy label resets", bt.Until(`document.querySelector('[data-testid="new-key-copy"]').textContent.trim() === 'Copy'`))
	if got := text(`[data-testid="key-row"] [data-testid="key-label-text"]`); got != "Server-side app" {
		t.Fatalf("row label %q", got)
	}

	step("reload", chromedp.Reload(), bt.WaitVisible(`[data-testid="keys-table"]`), bt.Screenshot(shots, "api-keys"))
	if html := eval(`document.documentElement.outerHTML`); strings.Contains(html, key) || strings.Contains(html, key[4:36]) {
		t.Fatal("full key still in the page after reload")
	}
	if got := text(`[data-testid="key-masked"]`); got != apikey.MaskKey(key) {
		t.Fatalf("masked key %q, want %q", got, apikey.MaskKey(key))
	}

	step("phone width",
		chromedp.EmulateViewport(390, 844),
		bt.WaitVisible(`[data-testid="key-row"]`),
		bt.Screenshot(shots, "api-keys-phone"),
	)
	noSidewaysScroll("the key list on a phone")
	step("desktop width", chromedp.EmulateViewport(1280, 900))

	// More keys: a 64-character label, and a rotated key whose status says
	// "Retiring in 1 hour". The table stays inside its card, and each name
	// on one line, cut with an ellipsis, whole in its title.
	long := strings.Repeat("Long-label ", 6)[:64]
	for _, label := range []string{"Zapier integration", long} {
		step("create "+label,
			bt.Type(`[data-testid="key-label"]`, label),
			bt.Click(`[data-testid="create-key"]`),
			bt.Until(`document.querySelector('[data-testid="key-reveal"] ~ *, [data-testid="key-reveal-row"]') !== null && [...document.querySelectorAll('[data-testid="key-label-text"]')].some(e => e.title === `+jsString(label)+`)`),
		)
	}
	step("rotate Zapier with a grace hour",
		chromedp.Reload(),
		bt.WaitVisible(`[data-testid="keys-table"]`),
		bt.Click(`tr:has([title="Zapier integration"]) [data-testid="key-more"]`),
		chromedp.SetValue(`tr:has([title="Zapier integration"]) [data-testid="key-rotate-grace"]`, "1h", bt.CSS(`tr:has([title="Zapier integration"]) [data-testid="key-rotate-grace"]`)),
		bt.Click(`tr:has([title="Zapier integration"]) [data-testid="key-rotate"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
		chromedp.Reload(),
		bt.Until(`[...document.querySelectorAll('[data-testid="key-status"]')].some(b => b.textContent.includes('Retiring in 1 hour'))`),
		bt.Screenshot(shots, "api-keys-many"),
	)
	checkKeyTable := func(width string) {
		t.Helper()
		if over := eval(`(() => { const t = document.querySelector('[data-testid="keys-table"]'); return String(Math.round(t.getBoundingClientRect().right - t.parentElement.getBoundingClientRect().right)); })()`); mustFloat(t, over) > 0 {
			t.Fatalf("%s: the key table sticks out of its card by %spx", width, over)
		}
		if lines := eval(`(() => { const e = [...document.querySelectorAll('[data-testid="key-label-text"]')].find(e => e.title === ` + jsString(long) + `); const lh = parseFloat(getComputedStyle(e).lineHeight); return String(Math.round(e.getBoundingClientRect().height / lh)); })()`); lines != "1" {
			t.Fatalf("%s: the 64-character name takes %s lines", width, lines)
		}
		if cut := eval(`String([...document.querySelectorAll('[data-testid="key-label-text"]')].find(e => e.title === ` + jsString(long) + `).scrollWidth > 0)`); cut != "true" {
			t.Fatal("no name element")
		}
		if h := eval(`String(Math.max(...[...document.querySelectorAll('[data-testid="key-row"]')].map(r => r.getBoundingClientRect().height)))`); width == "1280px" && mustFloat(t, h) > 70 {
			t.Fatalf("%s: a key row is %spx tall", width, h)
		}
	}
	checkKeyTable("1280px")
	step("many keys on a phone", chromedp.EmulateViewport(390, 844),
		chromedp.ScrollIntoView(`td.key-name:has([title^="Long-label"])`, bt.CSS(`td.key-name:has([title^="Long-label"])`)),
		bt.Screenshot(shots, "api-keys-many-phone"))
	noSidewaysScroll("many keys on a phone")
	// The "Name" heading of a card keeps its width next to a long name.
	if w := eval(`(() => { const td = [...document.querySelectorAll('td.key-name')].find(td => td.textContent.includes('Long-label')); const before = getComputedStyle(td, '::before'); return String(parseFloat(before.width)); })()`); mustFloat(t, w) < 25 {
		t.Fatalf("the Name heading is squeezed to %spx beside a long name", w)
	}
	step("desktop width again", chromedp.EmulateViewport(1280, 900))

	// Keyboard only: the overflow menu opens from its button, says so,
	// closes on Escape with focus back on its button.
	step("menu by keyboard",
		chromedp.Focus(`tr:has([title="Server-side app"]) [data-testid="key-more"]`, bt.CSS(`tr:has([title="Server-side app"]) [data-testid="key-more"]`)),
		chromedp.KeyEvent(kb.Enter),
		bt.Until(`document.querySelector('tr:has([title="Server-side app"]) details[data-menu]').open`),
		bt.Until(`document.activeElement.getAttribute('aria-expanded') === 'true'`),
		bt.Screenshot(shots, "api-keys-menu"),
	)
	if got := eval(`document.activeElement.getAttribute('aria-expanded') + ' ' + document.activeElement.getAttribute('aria-haspopup')`); got != "true dialog" {
		t.Fatalf("open menu button says %q", got)
	}
	step("Escape closes the menu", chromedp.KeyEvent(kb.Escape), bt.Until(`!document.querySelector('details[data-menu][open]')`),
		bt.Until(`document.activeElement.getAttribute('aria-expanded') === 'false'`))
	if got := eval(`document.activeElement.dataset.testid + ' ' + document.activeElement.getAttribute('aria-expanded')`); got != "key-more false" {
		t.Fatalf("after Escape focus is on %q", got)
	}
	step("a click elsewhere closes the menu",
		bt.Click(`tr:has([title="Server-side app"]) [data-testid="key-more"]`),
		bt.Until(`document.querySelector('details[data-menu][open]') !== null`),
		bt.Click(`.panel-title`),
		bt.Until(`!document.querySelector('details[data-menu][open]')`),
	)

	// Deactivate from the keyboard: focus stays on the row's button, which
	// now says Activate, and key health, which named the working key, no
	// longer does.
	server := `tr:has([title="Server-side app"])`
	inHealth := `document.querySelector('#key-health-card').textContent.includes('Server-side app')`
	step("deactivate",
		bt.Until(inHealth),
		chromedp.Focus(server+` [data-testid="key-deactivate"]`, bt.CSS(server+` [data-testid="key-deactivate"]`)),
		chromedp.KeyEvent(" "),
		bt.Until(`document.querySelector('`+server+` [data-testid="key-status"]').textContent.trim() === 'Inactive'`),
		bt.Until(`document.activeElement.dataset.testid === 'key-activate'`),
		bt.Until(`!`+inHealth),
	)
	if k, _ := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); k.Active {
		t.Fatal("key still active after Deactivate")
	}

	// Delete the long-named key, in the middle of the list (neither first
	// nor last): its row goes, the others stay, and focus moves to the next
	// row.
	middle := `tr:has([title="` + long + `"])`
	step("delete asks first",
		bt.Click(middle+` [data-testid="key-more"]`),
		bt.Click(middle+` [data-testid="key-delete"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Screenshot(shots, "api-keys-confirm-delete"),
	)
	if body := text(`#confirm-body`); !strings.Contains(body, long) || !strings.Contains(body, "stop working immediately") {
		t.Fatalf("dialog says %q", body)
	}
	step("cancel keeps the key", bt.Click(`[data-testid="confirm-cancel"]`), bt.WaitVisible(middle))
	u, _ := e.store.UserByEmail(context.Background(), email)
	labels := func() []string {
		keys, _ := e.store.APIKeys(context.Background(), u.ID)
		var l []string
		for _, k := range keys {
			l = append(l, k.Label)
		}
		return l
	}
	if !slices.Contains(labels(), long) {
		t.Fatal("cancel deleted the key")
	}
	rows := mustInt(t, eval(`String(document.querySelectorAll('[data-testid="key-row"]').length)`))
	if pos := mustInt(t, eval(`String([...document.querySelectorAll('[data-testid="key-row"]')].findIndex(r => r.matches('`+middle+`')))`)); pos == 0 || pos == rows-1 {
		t.Fatalf("the key to delete is row %d of %d: not in the middle", pos+1, rows)
	}
	next := eval(`document.querySelector('` + middle + `').nextElementSibling.querySelector('[data-testid="key-label-text"]').title`)
	step("delete",
		bt.Click(middle+` [data-testid="key-delete"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Click(`[data-testid="confirm-ok"]`),
		bt.WaitGone(middle),
		bt.Until(`[...document.querySelectorAll('[data-testid="toast"]')].some(t => t.textContent.includes('deleted'))`),
	)
	if got := mustInt(t, eval(`String(document.querySelectorAll('[data-testid="key-row"]').length)`)); got != rows-1 {
		t.Fatalf("%d rows after deleting one of %d", got, rows)
	}
	if got := eval(`(() => { const r = document.activeElement.closest('tr'); return r ? r.querySelector('[data-testid="key-label-text"]').title : document.activeElement.tagName; })()`); got != next {
		t.Fatalf("after Delete focus is on %q, not on the next row (%q)", got, next)
	}
	if slices.Contains(labels(), long) {
		t.Fatal("key still stored after Delete")
	}
	if strings.Contains(e.logs.String(), key[4:36]) {
		t.Fatal("the key appears in the server log")
	}

	// Deleted right after creation, with other keys in the list: the row and
	// its revealed value go.
	step("create one to delete at once",
		bt.Type(`[data-testid="key-label"]`, "Short-lived"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal-row"]`),
		bt.Click(`tr:has([title="Short-lived"]) [data-testid="key-more"]`),
		bt.Click(`tr:has([title="Short-lived"]) [data-testid="key-delete"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Click(`[data-testid="confirm-ok"]`),
		bt.WaitGone(`tr:has([title="Short-lived"])`),
		bt.WaitGone(`[data-testid="key-reveal-row"]`),
	)

	// Tour step 5: the key is used from a terminal while the page is in the
	// background; when the tab is back in view the row has moved, without
	// a reload, and the key still shown on the page stays.
	step("create a key for the tour",
		bt.Type(`[data-testid="key-label"]`, "Tour"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal-row"]`),
	)
	tourKey := eval(`document.querySelector('[data-testid="new-key"]').value`)
	eval(`window.__sameDocument = "yes"`)
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/me", nil)
	req.Header.Set("x-api-key", tourKey)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/me with the new key: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	tour := `tr:has([title="Tour"])`
	step("the tab comes back",
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.dispatchEvent(new Event('visibilitychange'))`)(ctx, t)
			return err
		}),
		bt.Until(`document.querySelector('`+tour+` [data-testid="key-requests"]').textContent.trim() === '1'`),
	)
	if got := text(tour + ` [data-testid="key-last-used"]`); got == "Never" {
		t.Fatal("Last used still says Never")
	}
	if got := eval(`document.querySelector('[data-testid="new-key"]').value`); got != tourKey {
		t.Fatal("the refresh lost the key shown on the page")
	}
	if eval(`String(window.__sameDocument)`) != "yes" {
		t.Fatal("the page reloaded")
	}

	// A double click on Create API Key creates one key, not two: the button
	// is disabled while its request runs.
	before, _ := e.store.APIKeys(context.Background(), u.ID)
	step("double click",
		bt.Type(`[data-testid="key-label"]`, "Double"),
		chromedp.DoubleClick(`[data-testid="create-key"]`, bt.CSS(`[data-testid="create-key"]`), chromedp.NodeVisible),
		bt.Until(`[...document.querySelectorAll('[data-testid="key-label-text"]')].some(e => e.title === 'Double')`),
		chromedp.Sleep(500*time.Millisecond), // room for a second request, if one went out
	)
	if keys, _ := e.store.APIKeys(context.Background(), u.ID); len(keys) != len(before)+1 || keys[0].Label != "Double" {
		t.Fatalf("a double click made %d keys", len(keys)-len(before))
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return f
}

func mustInt(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return strconv.Quote(s) }
