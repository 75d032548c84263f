package web

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

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

	step("reveal on a phone", chromedp.EmulateViewport(390, 844), bt.Screenshot(shots, "api-keys-reveal-phone"))
	if wide := eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); wide != "0" {
		t.Fatalf("the reveal scrolls sideways on a phone by %spx", wide)
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
	if wide := eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); wide != "0" {
		t.Fatalf("the page scrolls sideways on a phone by %spx", wide)
	}
	step("desktop width", chromedp.EmulateViewport(1280, 900))

	step("deactivate",
		bt.Click(`[data-testid="key-deactivate"]`),
		bt.Until(`document.querySelector('[data-testid="key-status"]').textContent.trim() === 'Inactive'`),
	)
	if k, _ := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); k.Active {
		t.Fatal("key still active after Deactivate")
	}

	step("delete asks first",
		bt.Click(`[data-testid="key-delete"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Screenshot(shots, "api-keys-confirm-delete"),
	)
	if body := text(`#confirm-body`); !strings.Contains(body, "Server-side app") || !strings.Contains(body, "stop working immediately") {
		t.Fatalf("dialog says %q", body)
	}
	step("cancel keeps the key", bt.Click(`[data-testid="confirm-cancel"]`), bt.WaitVisible(`[data-testid="key-row"]`))
	if _, err := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); err != nil {
		t.Fatal("cancel deleted the key")
	}
	step("delete",
		bt.Click(`[data-testid="key-delete"]`),
		bt.WaitVisible(`[data-testid="confirm-dialog"]`),
		bt.Click(`[data-testid="confirm-ok"]`),
		bt.WaitVisible(`[data-testid="keys-empty"]`),
	)
	if _, err := e.store.APIKeyByHash(context.Background(), apikey.HashOf(key)); err == nil {
		t.Fatal("key still stored after Delete")
	}
	if strings.Contains(e.logs.String(), key[4:36]) {
		t.Fatal("the key appears in the server log")
	}

	// A double click on Create API Key creates one key, not two: the button
	// is disabled while its request runs.
	step("double click",
		bt.Type(`[data-testid="key-label"]`, "Double"),
		chromedp.DoubleClick(`[data-testid="create-key"]`, bt.CSS(`[data-testid="create-key"]`), chromedp.NodeVisible),
		bt.WaitVisible(`[data-testid="key-reveal"]`),
		chromedp.Sleep(500*time.Millisecond), // room for a second request, if one went out
	)
	u, _ := e.store.UserByEmail(context.Background(), email)
	if keys, _ := e.store.APIKeys(context.Background(), u.ID); len(keys) != 1 || keys[0].Label != "Double" {
		t.Fatalf("a double click made %d keys", len(keys))
	}
}
