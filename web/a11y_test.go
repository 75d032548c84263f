package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// TestBrowserAccessibility runs axe-core (WCAG 2.2 AA and best practices)
// on every page and state of the dashboard at 1280 and 390 px, in light
// and dark mode, and fails on anything it finds.
func TestBrowserAccessibility(t *testing.T) {
	e := newTestEnv(t)
	pg := bt.NewPage(t)
	base := e.http.URL
	var found []string
	check := func(state string, prepare ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		pg.Step(state, prepare...)
		found = append(found, axeEverywhere(t, pg, state)...)
	}

	check("sign-up", chromedp.Navigate(base+"/signup"), bt.WaitVisible(`[data-testid="signup-form"]`))
	check("sign-up refused",
		bt.Type(`#f-email`, "not an email"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="error-email"]`),
	)
	check("sign-in", chromedp.Navigate(base+"/login"), bt.WaitVisible(`[data-testid="login-form"]`))
	check("404 signed out", chromedp.Navigate(base+"/nope"), bt.WaitVisible(`[data-testid="error-page"]`))
	email := uniqueEmail()
	pg.Step("sign up",
		chromedp.Navigate(base+"/signup"),
		bt.Type(`#f-email`, email),
		bt.Type(`#f-password`, "correct horse battery"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="keys-empty"]`),
	)
	check("API Keys, empty, with the welcome toast")
	check("API Keys, with a key shown once",
		bt.Type(`[data-testid="key-label"]`, "Server-side app"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
		bt.Click(`[data-testid="new-key-toggle"]`),
	)
	check("API Keys, with keys",
		bt.Type(`[data-testid="key-label"]`, strings.Repeat("Zapier integration ", 4)[:64]),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
		chromedp.Reload(),
		bt.WaitVisible(`[data-testid="keys-table"]`),
		bt.Click(`[data-testid="key-deactivate"]`),
		bt.Until(`[...document.querySelectorAll('[data-testid="key-status"]')].some(b => b.textContent.trim() === 'Inactive')`),
	)
	check("API Keys, with a row menu open",
		bt.Click(`[data-testid="key-more"]`),
		bt.Until(`document.querySelector('details[data-menu][open]') !== null`),
	)
	check("API Keys, confirming a delete",
		bt.Click(`details[data-menu][open] [data-testid="key-delete"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
	)
	pg.Step("cancel", bt.Click(`[data-testid="confirm-cancel"]`))
	check("Profile", bt.Click(`[data-testid="tab-profile"]`), bt.WaitVisible(`[data-testid="profile-panel"]`))
	check("Profile, refused password",
		bt.Type(`#f-current_password`, "correct horse battery"),
		bt.Type(`#f-new_password`, "short"),
		bt.Click(`[data-testid="password-submit"]`),
		bt.WaitVisible(`[data-testid="error-new_password"]`),
	)
	check("Redeem Coupon", bt.Click(`[data-testid="tab-coupons"]`), bt.WaitVisible(`[data-testid="coupons-panel"]`))
	check("Redeem Coupon, refused",
		bt.Type(`[data-testid="coupon-code"]`, "NOPE"),
		bt.Click(`[data-testid="redeem-submit"]`),
		bt.WaitVisible(`[data-testid="redeem-error"]`),
	)
	check("confirm delete without JavaScript's dialog", chromedp.Navigate(base+"/account/api-keys/1/delete"), bt.WaitVisible(`[data-testid="confirm-delete"]`))
	check("404 signed in", chromedp.Navigate(base+"/account/nothing-here"), bt.WaitVisible(`[data-testid="error-page"]`))
	if len(found) > 0 {
		t.Fatalf("axe-core found %d problems:\n%s", len(found), strings.Join(found, "\n"))
	}
}

// axeEverywhere runs axe-core on the page as it stands at 1280 and 390 px,
// in light and dark mode, and returns what it finds, each named by state,
// width and scheme. It leaves the page at 1280 px in light mode.
func axeEverywhere(t *testing.T, pg *bt.Page, state string) []string {
	t.Helper()
	var found []string
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"1280", 1280, 900}, {"390", 390, 844}} {
		for _, scheme := range []string{"light", "dark"} {
			pg.Step(state+" at "+vp.name+" "+scheme,
				chromedp.EmulateViewport(vp.w, vp.h),
				setColorScheme(scheme),
			)
			v, err := chromedp.Run(pg.Ctx, bt.Axe())
			if err != nil {
				t.Fatalf("%s: axe: %v", state, err)
			}
			for _, x := range v {
				found = append(found, fmt.Sprintf("%s at %s px, %s: %s", state, vp.name, scheme, x))
			}
		}
	}
	pg.Step(state+" back", chromedp.EmulateViewport(1280, 900), setColorScheme("light"))
	return found
}

// setColorScheme makes the page see prefers-color-scheme as light or dark.
func setColorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			// Motion off: axe judges the page at rest, not a toast halfway
			// through fading in.
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}, {Name: "prefers-reduced-motion", Value: "reduce"}},
		})
		return err
	})
}

// focusRingJS measures the focus ring of the focused element: its outline
// width, and its contrast against the page and against the nearest
// ancestor with a background of its own (a card, the sidebar).
const focusRingJS = `(() => {
	const el = document.activeElement;
	const cs = getComputedStyle(el);
	const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
	const lum = c => {
		const [r, g, b] = rgb(c).slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
		return 0.2126 * r + 0.7152 * g + 0.0722 * b;
	};
	const contrast = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
	let bg = el.parentElement;
	while (bg && (rgb(getComputedStyle(bg).backgroundColor)[3] === 0 || getComputedStyle(bg).backgroundColor === "transparent")) bg = bg.parentElement;
	const behind = bg ? getComputedStyle(bg).backgroundColor : getComputedStyle(document.body).backgroundColor;
	return JSON.stringify({
		id: el.dataset.testid || el.className,
		style: cs.outlineStyle,
		width: parseFloat(cs.outlineWidth),
		page: contrast(cs.outlineColor, getComputedStyle(document.body).backgroundColor),
		behind: contrast(cs.outlineColor, behind),
	});
})()`

type focusRing struct {
	ID     string  `json:"id"`
	Style  string  `json:"style"`
	Width  float64 `json:"width"`
	Page   float64 `json:"page"`
	Behind float64 `json:"behind"`
}

// TestBrowserKeyboard does the guide with the keyboard alone: the skip
// link, visible focus rings (ghost buttons too, at 3:1 or more in light and
// dark mode), the row menu, rotate, and delete through the dialog.
func TestBrowserKeyboard(t *testing.T) {
	e := newTestEnv(t)
	pg := bt.NewPage(t)
	step, eval := pg.Step, pg.Eval
	base := e.http.URL
	_, email := e.signUp()
	step("sign in",
		chromedp.Navigate(base+"/login"),
		bt.Type(`#f-email`, email),
		bt.Type(`#f-password`, "correct horse battery"),
		chromedp.KeyEvent(kb.Enter),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
	)
	for _, label := range []string{"Server-side app", "Zapier integration", "Staging"} {
		step("create "+label,
			bt.Type(`[data-testid="key-label"]`, label),
			chromedp.KeyEvent(kb.Enter),
			bt.Until(`[...document.querySelectorAll('[data-testid="key-label-text"]')].some(e => e.title === `+jsString(label)+`)`),
		)
	}
	step("reload", chromedp.Reload(), bt.WaitVisible(`[data-testid="keys-table"]`))
	active := func() string {
		return eval(`document.activeElement.dataset.testid || document.activeElement.className || document.activeElement.tagName`)
	}
	// tabTo presses Tab until the focused element matches selector.
	tabTo := func(selector string) {
		t.Helper()
		for range 60 {
			if eval(`String(document.activeElement.matches(`+jsString(selector)+`))`) == "true" {
				return
			}
			step("Tab", chromedp.KeyEvent(kb.Tab))
		}
		t.Fatalf("Tab never reached %s", selector)
	}

	step("first Tab", chromedp.KeyEvent(kb.Tab))
	if got := active(); got != "skip-link" {
		t.Fatalf("the first Tab goes to %q, not the skip link", got)
	}
	if vis := eval(`String(document.activeElement.getBoundingClientRect().width > 40)`); vis != "true" {
		t.Fatal("the focused skip link is not visible")
	}
	step("skip", chromedp.KeyEvent(kb.Enter), bt.Until(`document.activeElement.id === 'main'`))

	rings := func(where string) {
		t.Helper()
		for _, scheme := range []string{"light", "dark"} {
			step(where+" "+scheme, setColorScheme(scheme))
			var r focusRing
			if err := json.Unmarshal([]byte(eval(focusRingJS)), &r); err != nil {
				t.Fatal(err)
			}
			if r.Style == "none" || r.Width < 2 || r.Page < 3 || r.Behind < 3 {
				t.Errorf("%s (%s): focus ring %+v: needs a 2 px outline at 3:1 against the page and what is behind it", where, scheme, r)
			}
		}
		step(where+" light again", setColorScheme("light"))
	}
	tabTo(`[data-testid="key-label"]`)
	rings("the label field")
	tabTo(`[data-testid="key-more"]`)
	rings("a row's menu button")

	// Rotate the first key from its menu, by keyboard.
	step("open the menu", chromedp.KeyEvent(kb.Enter), bt.Until(`document.querySelector('details[data-menu][open]') !== null`))
	tabTo(`details[data-menu][open] [data-testid="key-rotate-grace"]`)
	rings("the grace period")
	step("choose 1 hour", chromedp.KeyEvent(kb.ArrowDown))
	tabTo(`details[data-menu][open] [data-testid="key-rotate"]`)
	step("rotate", chromedp.KeyEvent(kb.Enter), bt.WaitVisible(`[data-testid="key-reveal"]`), bt.Until(`document.activeElement.dataset.testid === 'new-key-copy'`))
	tabTo(`[data-testid="curl-copy"]`)
	rings("the curl example's Copy (a ghost button)")
	tabTo(`pre[tabindex="0"]`)

	// Delete the middle key by keyboard: focus goes to the next row.
	step("reload again", chromedp.Reload(), bt.WaitVisible(`[data-testid="keys-table"]`))
	rows := eval(`JSON.stringify([...document.querySelectorAll('[data-testid="key-row"]')].map(r => r.id))`)
	var ids []string
	if err := json.Unmarshal([]byte(rows), &ids); err != nil || len(ids) < 3 {
		t.Fatalf("rows %s", rows)
	}
	tabTo(`#` + ids[1] + ` [data-testid="key-more"]`)
	step("open its menu", chromedp.KeyEvent(" "), bt.Until(`document.querySelector('#`+ids[1]+` details[data-menu]').open`))
	tabTo(`#` + ids[1] + ` [data-testid="key-delete"]`)
	step("delete", chromedp.KeyEvent(kb.Enter), bt.WaitVisible(`[data-testid="confirm-dialog"]`))
	if got := active(); got != "confirm-cancel" {
		t.Fatalf("the dialog opens with focus on %q, not Cancel", got)
	}
	rings("the dialog's Cancel")
	step("to Delete key", chromedp.KeyEvent(kb.Tab))
	step("confirm", chromedp.KeyEvent(kb.Enter), bt.WaitGone(`#`+ids[1]))
	step("focus on the next row", bt.Until(`document.activeElement.closest('tr') && document.activeElement.closest('tr').id === '`+ids[2]+`'`))

	// Deactivate with Space: focus stays on the row's button.
	step("deactivate", chromedp.KeyEvent(" "), bt.Until(`document.querySelector('#`+ids[2]+` [data-testid="key-status"]').textContent.trim() === 'Inactive'`))
	step("focus stays", bt.Until(`document.activeElement.id === '`+ids[2]+`-power'`))
	step("activate", chromedp.KeyEvent(" "), bt.Until(`document.querySelector('#`+ids[2]+` [data-testid="key-status"]').textContent.trim() === 'Active'`))
	step("focus stays again", bt.Until(`document.activeElement.id === '`+ids[2]+`-power'`))

	tabTo(`[data-testid="logout"]`)
	rings("Sign out (a ghost button)")

	// Deleting every key, the last one too: the list becomes the empty
	// state and focus goes to the label field.
	for n := mustInt(t, eval(`String(document.querySelectorAll('[data-testid="key-row"]').length)`)); n > 0; n-- {
		step("delete the first row",
			bt.Click(`[data-testid="key-row"] [data-testid="key-more"]`),
			bt.Click(`details[data-menu][open] [data-testid="key-delete"]`),
			bt.WaitVisible(`[data-testid="confirm-dialog"]`),
			chromedp.Focus(`#confirm-ok`, bt.CSS(`#confirm-ok`)),
			chromedp.KeyEvent(kb.Enter),
			bt.Until(`document.querySelectorAll('[data-testid="key-row"]').length === `+strconv.Itoa(n-1)),
		)
	}
	step("empty", bt.WaitVisible(`[data-testid="keys-empty"]`), bt.Until(`document.activeElement.id === 'key-label'`))
}
