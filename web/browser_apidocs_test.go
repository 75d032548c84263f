package web

import (
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// TestBrowserAPIDocs: the API reference is linked from the API Keys tab,
// renders the OpenAPI document under the app's Content-Security-Policy
// (any violation fails the test), and its "Try it out" calls the API with
// a key: GET /api/v1/me answers 200 in the page.
func TestBrowserAPIDocs(t *testing.T) {
	e := newTestEnv(t)
	shots := os.Getenv("PEEKSHOT_SCREENSHOTS")
	pg := bt.NewPage(t)
	step, eval := pg.Step, pg.Eval
	step("sign up and create a key",
		chromedp.Navigate(e.http.URL+"/signup"),
		bt.Type(`#f-email`, uniqueEmail()),
		bt.Type(`#f-password`, "correct horse battery"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
		bt.Type(`[data-testid="key-label"]`, "Docs"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
	)
	key := eval(`document.querySelector('[data-testid="new-key"]').value`)
	step("open the API reference from the API Keys tab",
		bt.Click(`[data-testid="api-docs-link"]`),
		bt.WaitVisible(`#operations-Keys-rotateKey`),
	)
	if got := eval(`location.pathname`); got != "/docs/api" {
		t.Fatalf("the link led to %s", got)
	}
	body := eval(`document.body.innerText`)
	for _, want := range []string{"PeekShot API", "/api/v1/screenshots", "/api/v1/html-to-image", "/api/v1/keys/{id}/rotate", "/api/v1/secret-scanning/github", "scope_not_allowed"} {
		if !strings.Contains(body, want) {
			t.Fatalf("the reference lacks %q", want)
		}
	}
	step("read an operation",
		bt.Click(`#operations-Keys-rotateKey .opblock-summary-control`),
		bt.WaitVisible(`#operations-Keys-rotateKey .responses-table`),
		bt.Screenshot(shots, "api-reference"),
	)
	step("authorize with the key",
		bt.Click(`.btn.authorize`),
		bt.WaitVisible(`.auth-container input`),
		bt.Type(`.auth-container input`, key),
		bt.Click(`.auth-btn-wrapper .authorize`),
		bt.Click(`.btn-done`),
		bt.WaitGone(`.auth-container`),
	)
	step("try GET /api/v1/me",
		bt.Click(`#operations-Account-getMe .opblock-summary-control`),
		bt.Click(`#operations-Account-getMe .try-out__btn`),
		bt.Click(`#operations-Account-getMe .execute`),
		bt.WaitVisible(`#operations-Account-getMe .live-responses-table tr.response .response-col_status`),
	)
	if got := pg.Text(`#operations-Account-getMe .live-responses-table tr.response .response-col_status`); !strings.HasPrefix(got, "200") {
		t.Fatalf("Try it out answered %q", got)
	}
	step("on a phone", chromedp.EmulateViewport(390, 844), bt.Screenshot(shots, "api-reference-phone"))
	pg.NoSidewaysScroll("the API reference at 390 px")
}
