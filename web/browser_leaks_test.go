package web

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	bt "github.com/peekshot/peekshot/internal/browsertest"
)

// TestBrowserSignedLinksAndLeaks: on a key's page, create a signing secret
// (shown once), rotate it through the confirmation dialog; then a scanner
// reports the key and the red banner and the health finding appear, with
// axe-core finding nothing on either page at 1280 and 390 px.
// PEEKSHOT_SCREENSHOTS=dir keeps pictures.
func TestBrowserSignedLinksAndLeaks(t *testing.T) {
	e := newTestEnv(t)
	shots := os.Getenv("PEEKSHOT_SCREENSHOTS")
	pg := bt.NewPage(t)
	step, eval := pg.Step, pg.Eval
	base := e.http.URL
	axe := func(state string) {
		t.Helper()
		for _, vp := range [][2]int64{{1280, 900}, {390, 844}} {
			step(state, chromedp.EmulateViewport(vp[0], vp[1]))
			v, err := chromedp.Run(pg.Ctx, bt.Axe())
			if err != nil {
				t.Fatalf("%s: axe: %v", state, err)
			}
			if len(v) > 0 {
				var s []string
				for _, x := range v {
					s = append(s, x.String())
				}
				t.Fatalf("%s at %d px: axe-core found:\n%s", state, vp[0], strings.Join(s, "\n"))
			}
		}
		step(state+" back", chromedp.EmulateViewport(1280, 900))
	}
	step("sign up and create a key",
		chromedp.Navigate(base+"/signup"),
		bt.Type(`#f-email`, uniqueEmail()),
		bt.Type(`#f-password`, "correct horse battery"),
		bt.Click(`[data-testid="signup-submit"]`),
		bt.WaitVisible(`[data-testid="api-keys-panel"]`),
		bt.Type(`[data-testid="key-label"]`, "Zapier integration"),
		bt.Click(`[data-testid="create-key"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
	)
	key := eval(`document.querySelector('[data-testid="new-key"]').value`)
	step("open the key's page and create a signing secret",
		chromedp.Reload(),
		bt.Click(`.key-name a`),
		bt.WaitVisible(`[data-testid="signed-links"]`),
		bt.Click(`[data-testid="signing-create"]`),
		bt.WaitVisible(`[data-testid="signing-reveal"]`),
		bt.Click(`[data-testid="new-signing-secret-toggle"]`),
		bt.Screenshot(shots, "key-signing-secret"),
	)
	first := eval(`document.querySelector('[data-testid="new-signing-secret"]').value`)
	if !apikey.ValidSigningSecret(first) || !strings.Contains(eval(`document.querySelector('[data-testid="signed-example"]').textContent`), "signature=") {
		t.Fatalf("secret %q, or no signed example", first)
	}
	axe("key page, a signing secret shown once")
	step("rotate it, confirming in the dialog",
		bt.Click(`[data-testid="signing-rotate"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Screenshot(shots, "key-signing-rotate-confirm"),
		bt.Click(`[data-testid="confirm-ok"]`),
		bt.Until(`(() => { const i = document.querySelector('[data-testid="new-signing-secret"]'); return i && i.value !== `+jsString(first)+`; })()`),
	)
	if second := eval(`document.querySelector('[data-testid="new-signing-secret"]').value`); !apikey.ValidSigningSecret(second) {
		t.Fatalf("rotated secret %q", second)
	}

	scanner := account.WithActor(context.Background(), account.Actor{Kind: account.ActorScanner})
	if _, err := e.store.ReportLeakedKey(scanner, apikey.HashOf(key), account.Leak{URL: "https://github.com/acme/site/blob/3f2a9c/.env", Source: "commit"}); err != nil {
		t.Fatal(err)
	}
	step("the banner and the finding",
		chromedp.Navigate(base+"/account/api-keys"),
		bt.WaitVisible(`[data-testid="leak-banner"]`),
		bt.WaitVisible(`[data-testid="finding-leaked"]`),
		bt.Screenshot(shots, "leak-banner"),
	)
	axe("API Keys with a key reported leaked")
	step("on a phone", chromedp.EmulateViewport(390, 844), bt.Screenshot(shots, "leak-banner-phone"), chromedp.EmulateViewport(1280, 900))
	step("a tab switch keeps it",
		bt.Click(`[data-testid="tab-profile"]`),
		bt.WaitVisible(`[data-testid="profile-panel"]`),
		bt.WaitVisible(`[data-testid="leak-banner"]`),
	)
	step("rotate now from the banner",
		bt.Click(`[data-testid="leak-rotate"]`),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
		bt.Until(`document.querySelector('[data-testid="leak-banner"]') === null`),
	)
}
