package web

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
)

// formValues is what a browser would send for a form as the page shows it:
// its inputs, checked boxes, selected options and text areas.
func formValues(form *goquery.Selection) url.Values {
	v := url.Values{}
	form.Find("input[name], select[name], textarea[name]").Each(func(_ int, f *goquery.Selection) {
		name, _ := f.Attr("name")
		if _, off := f.Attr("disabled"); off {
			return
		}
		switch goquery.NodeName(f) {
		case "select":
			opt := f.Find("option[selected]").First()
			if opt.Length() == 0 {
				opt = f.Find("option").First()
			}
			val, _ := opt.Attr("value")
			v.Add(name, val)
		case "textarea":
			v.Add(name, f.Text())
		default:
			typ, _ := f.Attr("type")
			val, _ := f.Attr("value")
			if (typ == "checkbox" || typ == "radio") && !f.Is("[checked]") {
				return
			}
			if (typ == "checkbox" || typ == "radio") && val == "" {
				val = "on"
			}
			v.Add(name, val)
		}
	})
	return v
}

// submit sends a form of the page as a browser would, with changes.
func submit(t *testing.T, b *browser, form *goquery.Selection, change url.Values) response {
	t.Helper()
	if form.Length() != 1 {
		t.Fatalf("%d forms to submit", form.Length())
	}
	action, _ := form.Attr("action")
	v := formValues(form)
	maps.Copy(v, change)
	return b.post(action, v)
}

// findings reads key health from the API Keys tab: each finding's kind and
// the keys it names.
func findings(t *testing.T, d *goquery.Document) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	d.Find(`[data-testid="key-health"] [data-testid^="finding-"]`).Each(func(_ int, f *goquery.Selection) {
		kind, _ := f.Attr("data-testid")
		kind = strings.TrimPrefix(kind, "finding-")
		if kind == "key" {
			return
		}
		f.Find(`[data-testid="finding-key"]`).Each(func(_ int, k *goquery.Selection) {
			id, _ := k.Attr("data-key-id")
			n, err := strconv.ParseInt(id, 10, 64)
			if err != nil {
				t.Fatalf("finding %s names key %q", kind, id)
			}
			out[kind] = append(out[kind], n)
		})
	})
	return out
}

// TestKeyHealth: each finding names exactly the key that has it and is
// gone after its one-click fix, sent through the page's own forms; with
// nothing left to point at, there is no card.
func TestKeyHealth(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour), withRenderer(&fakeRenderer{}))
	b, email := e.signUp()
	// create makes a key through the create form and reads it from the
	// page the form leads to, where it is shown once.
	create := func(label string, form url.Values) (int64, string) {
		t.Helper()
		f := url.Values{"label": {label}, "expires": {"90d"}}
		maps.Copy(f, form)
		expectStatus(t, b.post("/account/api-keys", f), http.StatusSeeOther)
		d := b.get("/account/api-keys").doc(t)
		key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
		id, _ := d.Find(`tr.row-new`).Attr("data-key-id")
		n, err := strconv.ParseInt(id, 10, 64)
		if !keyPattern.MatchString(key) || err != nil {
			t.Fatalf("no new key %q shown (%q)", label, id)
		}
		return n, key
	}
	idle, _ := create("Old cron job", url.Values{"expires": {"1y"}})
	e.clock.Add(account.IdleAfter + time.Hour)
	b = e.signIn(email, "correct horse battery")
	forever, _ := create("Forever", url.Values{"expires": {"never"}})
	admin, _ := create("Admin", url.Values{"scopes_given": {"1"}, "scopes": {"screenshots", "html_to_image", "keys_read", "keys_write"}})
	busy, busyKey := create("Busy", nil)
	_, cleanKey := create("Clean", url.Values{"expires": {"30d"}})
	for i := range account.ManyIPs + 1 {
		expectStatus(t, e.keyCall("GET", "/api/v1/me", busyKey, "", "198.51.100."+strconv.Itoa(i+1), "fleet/1"), 200)
		expectStatus(t, e.keyCall("GET", "/api/v1/me", cleanKey, "", "203.0.113.5", "server/1"), 200)
	}
	e.flush()

	tab := func() *goquery.Document { return b.get("/account/api-keys").doc(t) }
	d := tab()
	got := findings(t, d)
	want := map[string][]int64{
		string(account.FindingIdle):         {idle},
		string(account.FindingNeverExpires): {forever},
		string(account.FindingUnrestricted): {admin},
		string(account.FindingManyIPs):      {busy},
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	fixOf := func(t *testing.T, d *goquery.Document, kind account.FindingKind, id int64) *goquery.Selection {
		t.Helper()
		li := d.Find(`[data-testid="finding-` + string(kind) + `"] [data-testid="finding-key"][data-key-id="` + strconv.FormatInt(id, 10) + `"]`)
		if li.Length() != 1 {
			t.Fatalf("no %s finding for key %d", kind, id)
		}
		return li
	}
	gone := func(t *testing.T, kind account.FindingKind) {
		t.Helper()
		got := findings(t, tab())
		if _, ok := got[string(kind)]; ok {
			t.Fatalf("the %s finding is still there after its fix: %v", kind, got)
		}
	}

	t.Run("IdleDeactivated", func(t *testing.T) {
		form := fixOf(t, d, account.FindingIdle, idle).Find(`form:has([data-testid="fix-deactivate"])`)
		expectStatus(t, submit(t, b, form, nil), http.StatusSeeOther)
		gone(t, account.FindingIdle)
		if k := userKeyByID(t, e, email, idle); k.Active {
			t.Fatal("the idle key is still active")
		}
	})
	t.Run("NeverExpiresGetsAnExpiry", func(t *testing.T) {
		form := fixOf(t, tab(), account.FindingNeverExpires, forever).Find(`form:has([data-testid="fix-expire"])`)
		expectStatus(t, submit(t, b, form, nil), http.StatusSeeOther)
		gone(t, account.FindingNeverExpires)
		k := userKeyByID(t, e, email, forever)
		if want := account.ExpiryAfter(90*24*time.Hour, e.clock.Now()); !k.ExpiresAt.Equal(want) || k.ExpiryLifetime != 90*24*time.Hour {
			t.Fatalf("expires %v (lifetime %v), want 90 days from now", k.ExpiresAt, k.ExpiryLifetime)
		}
		if k.Policy.RateLimit != 0 || !slices.Equal(k.Policy.Scopes, account.DefaultScopes) || k.Label != "Forever" {
			t.Fatalf("setting the expiry changed more: %+v", k)
		}
	})
	// Open settings leads to the key's page; the fix is its settings form.
	viaSettings := func(t *testing.T, kind account.FindingKind, id int64, change url.Values) {
		t.Helper()
		href, _ := fixOf(t, tab(), kind, id).Find(`[data-testid="fix-settings"]`).Attr("href")
		if href != keyPath(id)+"#key-settings" {
			t.Fatalf("Open settings leads to %q", href)
		}
		page := b.get(strings.TrimSuffix(href, "#key-settings")).doc(t)
		if page.Find(`#key-settings [data-testid="settings-form"]`).Length() != 1 {
			t.Fatal("the key's page has no settings form under #key-settings")
		}
		expectStatus(t, submit(t, b, page.Find(`[data-testid="settings-form"]`), change), http.StatusSeeOther)
		gone(t, kind)
	}
	t.Run("UnrestrictedNarrowed", func(t *testing.T) {
		viaSettings(t, account.FindingUnrestricted, admin, url.Values{"allowed_ips": {"203.0.113.0/24"}})
		if k := userKeyByID(t, e, email, admin); len(k.Policy.AllowedIPs) != 1 || len(k.Policy.Scopes) != 4 || k.ExpiresAt.IsZero() {
			t.Fatalf("the settings form changed more than the addresses: %+v", k.Policy)
		}
	})
	t.Run("ManyIPsRestricted", func(t *testing.T) {
		viaSettings(t, account.FindingManyIPs, busy, url.Values{"allowed_ips": {"198.51.100.0/24"}})
	})
	if n := tab().Find(`[data-testid="key-health"]`).Length(); n != 0 {
		t.Fatal("the health card stays when nothing needs attention")
	}
}

func userKeyByID(t *testing.T, e *testEnv, email string, id int64) account.APIKey {
	t.Helper()
	for _, k := range userKeys(t, e, email) {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("no key %d", id)
	return account.APIKey{}
}

// TestKeyHealthFollowsDeletesAndRefreshes: answers that change the keys
// without the whole panel (an htmx delete, the last delete, the list's
// refresh, a row's deactivate and activate) send key health again, so the card never names a key that is
// gone nor misses one that came.
func TestKeyHealthFollowsDeletesAndRefreshes(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	_, first := createKeyHTMX(t, b, "first")
	_, second := createKeyHTMX(t, b, "second")
	// healthKeys is the keys the answer's key health names (never
	// expires: every key here).
	healthKeys := func(t *testing.T, r response) []string {
		t.Helper()
		card := r.doc(t).Find(`#key-health-card[hx-swap-oob]`)
		if card.Length() != 1 {
			t.Fatalf("the answer does not send key health again:\n%s", r.body)
		}
		var ids []string
		card.Find(`[data-testid="finding-key"]`).Each(func(_ int, s *goquery.Selection) {
			ids = append(ids, s.AttrOr("data-key-id", ""))
		})
		return ids
	}
	del := b.htmx(http.MethodPost, keyPath(first)+"/delete", url.Values{})
	expectStatus(t, del, http.StatusOK)
	if got := healthKeys(t, del); !slices.Equal(got, []string{itoa(second)}) {
		t.Fatalf("after deleting %d, key health names %v", first, got)
	}
	// A deactivated key does not work, so it is no finding; activated, it
	// is one again.
	off := b.htmx(http.MethodPost, keyPath(second)+"/deactivate", url.Values{})
	expectStatus(t, off, http.StatusOK)
	if got := healthKeys(t, off); len(got) != 0 {
		t.Fatalf("after deactivating %d, key health names %v", second, got)
	}
	on := b.htmx(http.MethodPost, keyPath(second)+"/activate", url.Values{})
	expectStatus(t, on, http.StatusOK)
	if got := healthKeys(t, on); !slices.Equal(got, []string{itoa(second)}) {
		t.Fatalf("after activating %d again, key health names %v", second, got)
	}
	_, third := createKeyHTMX(t, b, "third")
	refresh := b.get("/account/api-keys?part=list", "HX-Request", "true")
	expectStatus(t, refresh, http.StatusOK)
	if got := healthKeys(t, refresh); !slices.Equal(got, []string{itoa(third), itoa(second)}) {
		t.Fatalf("the list's refresh: key health names %v", got)
	}
	expectStatus(t, b.htmx(http.MethodPost, keyPath(third)+"/delete", url.Values{}), http.StatusOK)
	last := b.htmx(http.MethodPost, keyPath(second)+"/delete", url.Values{})
	expectStatus(t, last, http.StatusOK)
	if got := healthKeys(t, last); len(got) != 0 {
		t.Fatalf("with no key left, key health names %v", got)
	}
}
