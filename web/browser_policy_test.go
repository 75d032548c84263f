package web

import (
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// TestBrowserKeyPolicies: create a key with "More options" open, see its
// restrictions as badges in the list, open its page from its name, change a
// setting there (a refused value first, then a good one), and see the
// change. PEEKSHOT_SCREENSHOTS=dir keeps pictures at 1280 and 390 px.
func TestBrowserKeyPolicies(t *testing.T) {
	e := newTestEnv(t)
	shots := os.Getenv("PEEKSHOT_SCREENSHOTS")
	pg := bt.NewPage(t)
	step, text, eval := pg.Step, pg.Text, pg.Eval
	base := e.http.URL

	step("sign up",
		chromedp.Navigate(base+"/signup"),
		bt.Type(`#f-email`, uniqueEmail()),
		bt.Type(`#f-password`, "correct horse battery"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
	)
	if eval(`String(document.querySelector('[data-testid="more-options"]').open)`) != "false" {
		t.Fatal("More options is open before anyone asked: the one-line create form of the user guide must come first")
	}
	step("open More options",
		bt.Click(`[data-testid="more-options"] > summary`),
		bt.WaitVisible(`[data-testid="policy-fields"]`),
		bt.Screenshot(shots, "api-keys-more-options"),
	)
	// The defaults are visible, not implied.
	if eval(`document.querySelector('[data-testid="policy-expires"]').value`) != "never" ||
		eval(`String(document.querySelector('[data-testid="policy-scope-screenshots"]').checked && document.querySelector('[data-testid="policy-scope-html_to_image"]').checked && !document.querySelector('[data-testid="policy-scope-keys_write"]').checked)`) != "true" {
		t.Fatal("the form does not show the defaults: never expires, the two render scopes")
	}
	step("create a narrow key",
		bt.Type(`[data-testid="key-label"]`, "Marketing site"),
		chromedp.SetValue(`[data-testid="policy-expires"]`, "30d", bt.CSS(`[data-testid="policy-expires"]`)),
		bt.Click(`[data-testid="policy-scope-html_to_image"]`),
		bt.Type(`[data-testid="policy-allowed-ips"]`, "203.0.113.7\n198.51.100.0/24"),
		bt.Type(`[data-testid="policy-allowed-targets"]`, "example.com, *.example.com\nblog.example.org"),
		bt.Type(`[data-testid="policy-rate-limit"]`, "10"),
		bt.Type(`[data-testid="policy-monthly-budget"]`, "500"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
	)
	badges := text(`tr.row-new [data-testid="key-badges"]`)
	for _, want := range []string{"Expires ", "1 scope", "IP-restricted", "3 sites", "10/min", "0 / 500 this month"} {
		if !strings.Contains(badges, want) {
			t.Fatalf("the new key's badges %q lack %q", badges, want)
		}
	}
	step("the list with badges", chromedp.Reload(), bt.WaitVisible(`[data-testid="keys-table"]`), bt.Screenshot(shots, "api-keys-badges"))
	step("badges on a phone", chromedp.EmulateViewport(390, 844), bt.Screenshot(shots, "api-keys-badges-phone"))
	pg.NoSidewaysScroll("the list with badges on a phone")
	step("desktop", chromedp.EmulateViewport(1280, 900))

	step("open the key's page from its name",
		bt.Click(`[data-testid="key-label-text"]`),
		bt.WaitVisible(`[data-testid="key-page"]`),
		bt.Screenshot(shots, "key-page"),
	)
	if got := text(`[data-testid="key-policy-targets"]`); !strings.Contains(got, "*.example.com") || !strings.Contains(got, "blog.example.org") {
		t.Fatalf("the key's page lists the sites %q", got)
	}
	if got := text(`[data-testid="key-policy-scopes"]`); got != "screenshots" {
		t.Fatalf("the key's page lists the scopes %q", got)
	}
	step("edit, with a mistake",
		bt.Click(`[data-testid="edit-settings"] > summary`),
		bt.WaitVisible(`[data-testid="settings-form"]`),
		chromedp.SetValue(`[data-testid="settings-form"] [data-testid="policy-rate-limit"]`, "", bt.CSS(`[data-testid="settings-form"] [data-testid="policy-rate-limit"]`)),
		bt.Type(`[data-testid="settings-form"] [data-testid="policy-rate-limit"]`, "100000"),
		bt.Click(`[data-testid="settings-save"]`),
		bt.WaitVisible(`[data-testid="policy-error-rate_limit"]`),
		bt.Screenshot(shots, "key-page-refused"),
	)
	if got := text(`[data-testid="key-policy-rate"]`); !strings.Contains(got, "10 a minute") {
		t.Fatalf("a refused change changed the rate limit: %q", got)
	}
	step("fix it",
		chromedp.SetValue(`[data-testid="settings-form"] [data-testid="policy-rate-limit"]`, "", bt.CSS(`[data-testid="settings-form"] [data-testid="policy-rate-limit"]`)),
		bt.Type(`[data-testid="settings-form"] [data-testid="policy-rate-limit"]`, "25"),
		bt.Click(`[data-testid="settings-form"] [data-testid="policy-scope-html_to_image"]`),
		bt.Click(`[data-testid="settings-save"]`),
		bt.Until(`document.querySelector('[data-testid="key-policy-rate"]').textContent.includes('25 a minute')`),
	)
	if got := text(`[data-testid="key-policy-scopes"]`); got != "screenshots, html_to_image" {
		t.Fatalf("scopes after the change %q", got)
	}
	if !strings.Contains(text(`[data-testid="toast"]`), "saved") {
		t.Fatal("no toast says the settings were saved")
	}
	step("the key's page on a phone", chromedp.EmulateViewport(390, 844), bt.Screenshot(shots, "key-page-phone"))
	pg.NoSidewaysScroll("the key's page on a phone")
	step("back to the list",
		chromedp.EmulateViewport(1280, 900),
		bt.Click(`[data-testid="back-to-keys"]`),
		bt.WaitVisible(`[data-testid="keys-table"]`),
	)
	if badges := text(`[data-testid="key-badges"]`); !strings.Contains(badges, "25/min") || strings.Contains(badges, "scope") {
		t.Fatalf("the list's badges after the change: %q", badges)
	}
}
