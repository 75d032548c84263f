package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// TestSignupRefusesTextDirectionControls: a name with U+202E would show
// reversed wherever it appears; sign-up refuses it with a message, as the
// label and profile name forms do.
func TestSignupRefusesTextDirectionControls(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.get("/signup")
	r := b.post("/signup", url.Values{"email": {"rtl@example.com"}, "password": {"longenough"}, "name": {"\u202eecarG"}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.doc(t).Find(`[data-testid="error-name"]`).Text(); !strings.Contains(msg, "text-direction") {
		t.Fatalf("name error %q", msg)
	}
	if _, err := e.store.UserByEmail(context.Background(), "rtl@example.com"); err == nil {
		t.Fatal("account created despite the error")
	}
}

// TestDeleteKeyFragment: deleting a key with htmx, whichever row it is,
// removes that row (the button swaps it away, since the answer's only
// content is out of band) and the key's revealed value, and keeps the
// other rows.
func TestDeleteKeyFragment(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	createKeyHTMX(t, b, "first")
	_, middle := createKeyHTMX(t, b, "middle")
	createKeyHTMX(t, b, "last")
	id := strconv.FormatInt(middle, 10)

	row := b.get("/account/api-keys").doc(t).Find(`tr#key-` + id)
	del := row.Find(`[data-testid="key-delete"]`)
	if goquery.NodeName(del) != "button" {
		t.Fatalf("Delete is a <%s>, not a button", goquery.NodeName(del))
	}
	if got, _ := del.Attr("hx-swap"); got != "delete" {
		t.Fatalf("Delete swaps %q: an answer with nothing but out-of-band parts would leave the row", got)
	}
	if got, _ := del.Attr("hx-target"); got != "#key-"+id {
		t.Fatalf("Delete targets %q", got)
	}
	// Without JavaScript the button opens the confirmation page.
	form := del.Closest("form")
	if m, _ := form.Attr("method"); m != "get" {
		t.Fatalf("Delete's form method %q", m)
	}
	action, _ := form.Attr("action")
	confirm := b.get(action)
	expectStatus(t, confirm, http.StatusOK)
	if confirm.doc(t).Find(`[data-testid="confirm-delete-submit"]`).Length() != 1 {
		t.Fatal("no confirmation page behind the Delete button")
	}

	r := b.htmx(http.MethodDelete, "/account/api-keys/"+id, nil)
	expectStatus(t, r, http.StatusOK)
	d := r.doc(t)
	if d.Find(`#key-`+id+`-reveal[hx-swap-oob="delete"]`).Length() != 1 {
		t.Fatal("the answer doesn't take away the key's revealed value")
	}
	if !strings.Contains(d.Find(`[hx-swap-oob] .toast`).Text(), "deleted") {
		t.Fatal("no toast")
	}
	if d.Find(`[data-testid="key-row"]`).Length() != 0 || d.Find(`#create-key-section`).Length() != 0 {
		t.Fatalf("more than the delete needs:\n%s", r.body)
	}
	var left []string
	for _, k := range userKeys(t, e, email) {
		left = append(left, k.Label)
	}
	if strings.Join(left, ",") != "last,first" {
		t.Fatalf("keys left: %v", left)
	}
	// The revealed value's row has the id the answer removes.
	_, fresh := createKeyHTMX(t, b, "fresh")
	page := b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {"another"}})
	if page.doc(t).Find(`tr#key-`+strconv.FormatInt(fresh+1, 10)+`-reveal[data-testid="key-reveal-row"]`).Length() != 1 {
		t.Fatalf("the reveal row is not named after its key:\n%.3000s", page.body)
	}
}

// TestDeleteAtKeyLimit: at 50 keys Create is off; a delete with htmx
// turns it back on in the same answer.
func TestDeleteAtKeyLimit(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	u, _ := e.store.UserByEmail(context.Background(), email)
	var ids []int64
	for range account.MaxAPIKeys {
		k, _ := apikey.Generate()
		key, err := e.store.CreateAPIKey(context.Background(), account.NewAPIKey{UserID: u.ID, Key: k})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, key.ID)
	}
	d := b.get("/account/api-keys").doc(t)
	if _, off := d.Find(`[data-testid="create-key"]`).Attr("disabled"); !off || d.Find(`[data-testid="key-limit"]`).Length() != 1 {
		t.Fatal("Create is not off at the limit")
	}
	r := b.htmx(http.MethodDelete, "/account/api-keys/"+strconv.FormatInt(ids[20], 10), nil)
	expectStatus(t, r, http.StatusOK)
	section := r.doc(t).Find(`#create-key-section[hx-swap-oob]`)
	if section.Length() != 1 {
		t.Fatalf("the answer doesn't bring the create form back:\n%.2000s", r.body)
	}
	if _, off := section.Find(`[data-testid="create-key"]`).Attr("disabled"); off {
		t.Fatal("Create still off under the limit")
	}
	if section.Find(`[data-testid="key-limit"]`).Length() != 0 {
		t.Fatal("the limit notice stays under the limit")
	}
	// One more delete, already under the limit: nothing to bring back.
	r = b.htmx(http.MethodDelete, "/account/api-keys/"+strconv.FormatInt(ids[21], 10), nil)
	if r.doc(t).Find(`#create-key-section`).Length() != 0 {
		t.Fatal("create form re-sent when nothing changed")
	}
	createKeyHTMX(t, b, "after the limit")
}

// TestKeyListRefresh: the list the tab fetches when it comes back into
// view is only the list, with usage that moved, and keeps a key shown on
// the page in its place.
func TestKeyListRefresh(t *testing.T) {
	e := newTestEnv(t)
	b, _ := e.signUp()
	key, id := createKeyHTMX(t, b, "used elsewhere")
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v1/me", nil)
	req.Header.Set("x-api-key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%v %v", res, err)
	}
	res.Body.Close()

	list, ok := b.get("/account/api-keys").doc(t).Find(`#api-keys-list`).Attr("data-refresh-url")
	if !ok {
		t.Fatal("the list says nowhere how to refresh it")
	}
	sid := strconv.FormatInt(id, 10)
	r := b.get(list+"&keep="+sid, "HX-Request", "true")
	expectStatus(t, r, http.StatusOK)
	if isFullPage(r.body) || strings.Contains(r.body, `id="account-tabs"`) || strings.Contains(r.body, "<title>") {
		t.Fatalf("more than the list:\n%.2000s", r.body)
	}
	d := r.rowDoc(t)
	if got := strings.TrimSpace(d.Find(`#key-` + sid + ` [data-testid="key-requests"]`).Text()); got != "1" {
		t.Fatalf("requests %q after one request", got)
	}
	if got := strings.TrimSpace(d.Find(`#key-` + sid + ` [data-testid="key-last-used"]`).Text()); got == "Never" {
		t.Fatal("last used says Never")
	}
	keep := d.Find(`#key-` + sid + `-reveal`)
	if _, ok := keep.Attr("hx-preserve"); !ok || keyPattern.MatchString(r.body) {
		t.Fatalf("the shown key's row is not kept (or the key is in the answer):\n%s", r.body)
	}
	if d.Find(`#key-`+sid+`.row-new`).Length() != 1 {
		t.Fatal("the new key's row lost its highlight")
	}
	// A plain load of the same address is still the whole page.
	if !isFullPage(b.get(list).body) {
		t.Fatal("the list address without htmx is not the page")
	}
}

// TestSignedInErrorPageInFrame: a signed-in person who follows a dead link
// stays in the app frame (sidebar, Sign out, skip link); a visitor gets
// the standalone card.
func TestSignedInErrorPageInFrame(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	for _, path := range []string{"/account/nothing-here", "/nope", "/account/api-keys/999999/delete"} {
		r := b.get(path)
		expectStatus(t, r, http.StatusNotFound)
		d := r.doc(t)
		if d.Find(`.app .sidebar`).Length() != 1 || d.Find(`main#main [data-testid="error-page"]`).Length() != 1 {
			t.Fatalf("%s: the signed-in 404 is not in the app frame:\n%.2000s", path, r.body)
		}
		if got := d.Find(`[data-testid="viewer-email"]`).Text(); got != email {
			t.Fatalf("%s: viewer %q", path, got)
		}
		if d.Find(`form[action="/logout"] input[name="_csrf"]`).Length() != 1 {
			t.Fatalf("%s: no working Sign out", path)
		}
		if d.Find(`a.skip-link[href="#main"]`).Length() != 1 {
			t.Fatal("no skip link")
		}
	}
	anon := e.browser().get("/nope")
	expectStatus(t, anon, http.StatusNotFound)
	if d := anon.doc(t); d.Find(`.sidebar`).Length() != 0 || d.Find(`[data-testid="error-page"]`).Length() != 1 {
		t.Fatal("a visitor's 404 shows the app frame")
	}
}

// TestPasswordRuleSaidOnce: the password rule is a hint until a password
// breaks it; then the error says it, and the hint is gone.
func TestPasswordRuleSaidOnce(t *testing.T) {
	e := newTestEnv(t)
	count := func(d *goquery.Document) int {
		return strings.Count(strings.ToLower(d.Find(`form`).Text()), "8 characters")
	}
	b := e.browser()
	d := b.get("/signup").doc(t)
	if count(d) != 1 || d.Find(`#f-password[aria-describedby="f-password-hint"]`).Length() != 1 {
		t.Fatal("sign-up doesn't give the rule once, tied to the field")
	}
	r := b.post("/signup", url.Values{"email": {"short@example.com"}, "password": {"short"}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if d := r.doc(t); count(d) != 1 || d.Find(`[data-testid="error-password"]`).Length() != 1 {
		t.Fatalf("sign-up error repeats the rule:\n%s", d.Find(`form`).Text())
	}

	u, _ := e.signUp()
	pw := u.htmx(http.MethodPost, "/account/password", url.Values{"current_password": {"correct horse battery"}, "new_password": {"short"}})
	expectStatus(t, pw, http.StatusUnprocessableEntity)
	form := pw.doc(t).Find(`[data-testid="password-form"]`)
	if n := strings.Count(strings.ToLower(form.Text()), "8 characters"); n != 1 {
		t.Fatalf("the password form says the rule %d times:\n%s", n, form.Text())
	}
}
