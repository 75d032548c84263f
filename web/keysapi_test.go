package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// dashboardKey creates a key with scopes through the dashboard's form and
// returns its value and id.
func dashboardKey(t *testing.T, b *browser, label string, scopes ...account.Scope) (string, int64) {
	t.Helper()
	form := url.Values{"label": {label}, "scopes_given": {"1"}}
	for _, s := range scopes {
		form.Add("scopes", string(s))
	}
	r := b.htmx(http.MethodPost, "/account/api-keys", form)
	expectStatus(t, r, http.StatusOK)
	d := r.doc(t)
	key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
	idAttr, _ := d.Find(`tr.row-new`).Attr("data-key-id")
	id, err := parseID(idAttr)
	if !apikey.Valid(key) || err != nil {
		t.Fatalf("no key revealed (%q, id %q)", key, idAttr)
	}
	return key, id
}

// apiKeyResponse is a key as the keys API answers it.
type apiKeyResponse struct {
	Key            string   `json:"key"`
	ID             int64    `json:"id"`
	Label          string   `json:"label"`
	Masked         string   `json:"masked"`
	Status         string   `json:"status"`
	Active         bool     `json:"active"`
	ExpiresAt      *string  `json:"expires_at"`
	RequestCount   int64    `json:"request_count"`
	Scopes         []string `json:"scopes"`
	AllowedIPs     []string `json:"allowed_ips"`
	AllowedTargets []string `json:"allowed_targets"`
	RateLimit      *int     `json:"rate_limit"`
	MonthlyBudget  *int64   `json:"monthly_budget"`
	Rotation       *struct {
		ReplacedBy int64  `json:"replaced_by"`
		RetiresAt  string `json:"retires_at"`
		Auto       bool   `json:"auto"`
	} `json:"rotation"`
}

func decodeJSON[T any](t *testing.T, r response, status int) T {
	t.Helper()
	expectStatus(t, r, status)
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
	return v
}

var allScopes = []account.Scope{account.ScopeScreenshots, account.ScopeHTMLToImage, account.ScopeKeysRead, account.ScopeKeysWrite}

// TestKeysAPI: each route of the keys API, the dashboard seeing every
// change, the very next request obeying it, the full key only in the
// answers that make one, and the activity log naming the acting key.
func TestKeysAPI(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	admin, adminID := dashboardKey(t, b, "Automation", allScopes...)
	adminMasked := userKeys(t, e, email)[0].Masked()

	created := decodeJSON[apiKeyResponse](t, e.apiCall("POST", "/api/v1/keys", admin,
		`{"label": "CI", "expires": "30d", "scopes": ["screenshots"], "allowed_ips": ["127.0.0.1", "10.0.0.0/8"],
		  "allowed_targets": ["example.com", "*.example.org"], "rate_limit": 10, "monthly_budget": 500}`), http.StatusCreated)
	if !apikey.Valid(created.Key) || created.ID == 0 || created.Label != "CI" || created.Status != "active" || !created.Active ||
		!slices.Equal(created.Scopes, []string{"screenshots"}) || !slices.Equal(created.AllowedIPs, []string{"127.0.0.1", "10.0.0.0/8"}) ||
		!slices.Equal(created.AllowedTargets, []string{"example.com", "*.example.org"}) || created.RateLimit == nil || *created.RateLimit != 10 ||
		created.MonthlyBudget == nil || *created.MonthlyBudget != 500 || created.ExpiresAt == nil || created.Rotation != nil {
		t.Fatalf("created %+v", created)
	}
	if exp, _ := time.Parse(time.RFC3339, *created.ExpiresAt); exp.Sub(e.clock.Now()) != 30*24*time.Hour {
		t.Fatalf("expires_at %s, want 30 days from now", *created.ExpiresAt)
	}
	newKey := created.Key
	me := decodeJSON[meResponse](t, e.apiCall("GET", "/api/v1/me", newKey, ""), http.StatusOK)
	if me.Key.ID != created.ID || me.Email != email {
		t.Fatalf("the new key is not the one created: %+v", me)
	}

	t.Run("ListAndGetNeverShowTheKey", func(t *testing.T) {
		list := e.apiCall("GET", "/api/v1/keys", admin, "")
		keys := decodeJSON[struct{ Keys []apiKeyResponse }](t, list, http.StatusOK).Keys
		if len(keys) != 2 || keys[0].ID != created.ID || keys[1].ID != adminID {
			t.Fatalf("list %+v, want the new key then the admin key", keys)
		}
		one := e.apiCall("GET", "/api/v1/keys/"+strconv.FormatInt(created.ID, 10), admin, "")
		got := decodeJSON[apiKeyResponse](t, one, http.StatusOK)
		for _, r := range []response{list, one} {
			if strings.Contains(r.body, newKey) || strings.Contains(r.body, admin) || strings.Contains(r.body, `"key":`) {
				t.Fatalf("a key's value in a listing: %s", r.body)
			}
		}
		if got.Masked != created.Masked || got.RequestCount != 1 {
			t.Fatalf("get %+v: want its one request counted", got)
		}
	})

	t.Run("DashboardShowsIt", func(t *testing.T) {
		row := b.get("/account/api-keys").doc(t).Find(`tr[data-key-id="` + strconv.FormatInt(created.ID, 10) + `"]`)
		if row.Length() != 1 || !strings.Contains(row.Text(), "CI") || !strings.Contains(row.Text(), created.Masked) {
			t.Fatalf("the dashboard lacks the key made through the API: %q", row.Text())
		}
	})

	path := "/api/v1/keys/" + strconv.FormatInt(created.ID, 10)
	t.Run("PatchAppliesAtOnce", func(t *testing.T) {
		off := decodeJSON[apiKeyResponse](t, e.apiCall("PATCH", path, admin, `{"label": "CI (paused)", "active": false}`), http.StatusOK)
		if off.Status != "inactive" || off.Active || off.Label != "CI (paused)" || *off.RateLimit != 10 {
			t.Fatalf("patched %+v", off)
		}
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", newKey, ""), http.StatusForbidden, "api_key_inactive")
		row := b.get("/account/api-keys").doc(t).Find(`tr[data-key-id="` + strconv.FormatInt(created.ID, 10) + `"]`)
		if !strings.Contains(row.Text(), "Inactive") || !strings.Contains(row.Text(), "CI (paused)") {
			t.Fatalf("the dashboard doesn't show the change: %q", row.Text())
		}
		on := decodeJSON[apiKeyResponse](t, e.apiCall("PATCH", path, admin, `{"active": true, "rate_limit": null, "allowed_ips": []}`), http.StatusOK)
		if on.Status != "active" || on.RateLimit != nil || len(on.AllowedIPs) != 0 ||
			*on.MonthlyBudget != 500 || len(on.AllowedTargets) != 2 || *on.ExpiresAt != *created.ExpiresAt || on.Label != "CI (paused)" {
			t.Fatalf("what was not sent changed, or what was did not: %+v", on)
		}
		expectStatus(t, e.apiCall("GET", "/api/v1/me", newKey, ""), http.StatusOK)
		// The dashboard's key page reads the same settings.
		page := b.get("/account/api-keys/" + strconv.FormatInt(created.ID, 10))
		expectStatus(t, page, http.StatusOK)
		if !strings.Contains(page.body, "*.example.org") {
			t.Fatal("the key's page lacks its allowed sites")
		}
	})

	var replacement apiKeyResponse
	t.Run("Rotate", func(t *testing.T) {
		res := decodeJSON[struct {
			Replacement apiKeyResponse
			Old         apiKeyResponse
		}](t, e.apiCall("POST", path+"/rotate", admin, `{"grace": "1h"}`), http.StatusCreated)
		replacement = res.Replacement
		if !apikey.Valid(replacement.Key) || replacement.Key == newKey || replacement.Label != "CI (paused)" ||
			*replacement.MonthlyBudget != 500 || !slices.Equal(replacement.Scopes, []string{"screenshots"}) {
			t.Fatalf("replacement %+v", replacement)
		}
		if res.Old.Status != "retiring" || res.Old.Rotation == nil || res.Old.Rotation.ReplacedBy != replacement.ID {
			t.Fatalf("old key %+v", res.Old)
		}
		expectStatus(t, e.apiCall("GET", "/api/v1/me", newKey, ""), http.StatusOK) // its grace period
		expectStatus(t, e.apiCall("GET", "/api/v1/me", replacement.Key, ""), http.StatusOK)
		expectAPIError(t, e.apiCall("POST", path+"/rotate", admin, `{"grace": "now"}`), http.StatusConflict, "conflict")
	})

	t.Run("Delete", func(t *testing.T) {
		rpath := "/api/v1/keys/" + strconv.FormatInt(replacement.ID, 10)
		r := e.apiCall("DELETE", rpath, admin, "")
		expectStatus(t, r, http.StatusNoContent)
		expectAPIError(t, e.apiCall("GET", "/api/v1/me", replacement.Key, ""), http.StatusUnauthorized, "invalid_api_key")
		expectAPIError(t, e.apiCall("GET", rpath, admin, ""), http.StatusNotFound, "not_found")
		expectAPIError(t, e.apiCall("DELETE", rpath, admin, ""), http.StatusNotFound, "not_found")
		if b.get("/account/api-keys").doc(t).Find(`tr[data-key-id="`+strconv.FormatInt(replacement.ID, 10)+`"]`).Length() != 0 {
			t.Fatal("the dashboard still lists the deleted key")
		}
	})

	t.Run("ActivityNamesTheKey", func(t *testing.T) {
		u, _ := e.store.UserByEmail(context.Background(), email)
		log, err := e.store.Activity(context.Background(), u.ID, account.ActivityFilter{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var byKey []account.Event
		for _, a := range log {
			if a.Actor.Kind == account.ActorKey {
				if a.Actor.KeyMasked != adminMasked || a.Actor.IP != "127.0.0.1" {
					t.Fatalf("entry %s acted by %+v, want the admin key %s", a.Event, a.Actor, adminMasked)
				}
				byKey = append(byKey, a.Event)
			}
		}
		slices.Reverse(byKey)
		want := []account.Event{account.EventKeyCreated, account.EventKeySettingsChanged, account.EventKeyDeactivated,
			account.EventKeySettingsChanged, account.EventKeyActivated, account.EventKeyRotated, account.EventKeyCreated, account.EventKeyDeleted}
		if !slices.Equal(byKey, want) {
			t.Fatalf("the key's entries %v, want %v", byKey, want)
		}
		page := b.get("/account/activity")
		if !strings.Contains(page.body, adminMasked) {
			t.Fatal("the activity page doesn't name the acting key")
		}
	})
}

// TestKeysAPIScopes: reading needs keys_read, every change keys_write.
func TestKeysAPIScopes(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	render, renderID := dashboardKey(t, b, "Render only", account.ScopeScreenshots, account.ScopeHTMLToImage)
	reader, _ := dashboardKey(t, b, "Reader", account.ScopeKeysRead)
	writer, _ := dashboardKey(t, b, "Writer", account.ScopeKeysWrite, account.ScopeScreenshots, account.ScopeHTMLToImage)
	id := "/api/v1/keys/" + strconv.FormatInt(renderID, 10)
	reads := [][2]string{{"GET", "/api/v1/keys"}, {"GET", id}}
	writes := [][3]string{{"POST", "/api/v1/keys", `{}`}, {"PATCH", id, `{"label": "x"}`}, {"POST", id + "/rotate", `{"grace": "now"}`}, {"DELETE", id, ""}}
	before := userKeys(t, e, email)
	for _, r := range reads {
		msg := expectAPIError(t, e.apiCall(r[0], r[1], render, ""), http.StatusForbidden, "scope_not_allowed")
		if !strings.Contains(msg.Error.Message, "keys_read") {
			t.Fatalf("%s %s: %q doesn't name keys_read", r[0], r[1], msg.Error.Message)
		}
		expectAPIError(t, e.apiCall(r[0], r[1], writer, ""), http.StatusForbidden, "scope_not_allowed")
		expectStatus(t, e.apiCall(r[0], r[1], reader, ""), http.StatusOK)
	}
	for _, r := range writes {
		for _, key := range []string{render, reader} {
			msg := expectAPIError(t, e.apiCall(r[0], r[1], key, r[2]), http.StatusForbidden, "scope_not_allowed")
			if !strings.Contains(msg.Error.Message, "keys_write") {
				t.Fatalf("%s %s: %q doesn't name keys_write", r[0], r[1], msg.Error.Message)
			}
		}
	}
	after := userKeys(t, e, email)
	if len(after) != len(before) || after[0].Label != before[0].Label || after[len(after)-1].Rotated() {
		t.Fatal("a refused request changed the keys")
	}
	// /api/v1/me needs no scope at all.
	expectStatus(t, e.apiCall("GET", "/api/v1/me", reader, ""), http.StatusOK)
}

// TestKeysAPINoEscalation: a key can't give a key (new, patched, rotated,
// itself) a scope it lacks itself; what it already has stays.
func TestKeysAPINoEscalation(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	actor, actorID := dashboardKey(t, b, "Manager", account.ScopeKeysRead, account.ScopeKeysWrite, account.ScopeScreenshots)
	_, wideID := dashboardKey(t, b, "Wide", account.ScopeScreenshots, account.ScopeHTMLToImage)
	_, narrowID := dashboardKey(t, b, "Narrow", account.ScopeScreenshots)
	snapshot := func() string {
		var parts []string
		for _, k := range userKeys(t, e, email) {
			parts = append(parts, k.Label+"|"+strconv.FormatBool(k.Active)+"|"+strconv.FormatBool(k.Rotated())+"|"+strings.Join(scopeNames(k.Policy.Scopes), ","))
		}
		return strings.Join(parts, "\n")
	}
	before := snapshot()
	refused := func(method, path, body string) {
		t.Helper()
		r := expectAPIError(t, e.apiCall(method, path, actor, body), http.StatusForbidden, "scope_not_allowed")
		if !strings.Contains(r.Error.Message, "html_to_image") {
			t.Fatalf("%s %s: %q doesn't name html_to_image", method, path, r.Error.Message)
		}
		if now := snapshot(); now != before {
			t.Fatalf("%s %s was refused but changed the keys:\n%s\nwas\n%s", method, path, now, before)
		}
	}
	keyPath := func(id int64) string { return "/api/v1/keys/" + strconv.FormatInt(id, 10) }
	refused("POST", "/api/v1/keys", `{"label": "Mine", "scopes": ["screenshots", "html_to_image"]}`)
	refused("POST", "/api/v1/keys", `{"label": "Defaults"}`) // the default scopes include html_to_image
	refused("PATCH", keyPath(narrowID), `{"scopes": ["screenshots", "html_to_image"]}`)
	refused("PATCH", keyPath(actorID), `{"scopes": ["keys_read", "keys_write", "screenshots", "html_to_image"]}`)
	refused("POST", keyPath(wideID)+"/rotate", `{"grace": "now"}`)

	// Within its own scopes it may do all of these.
	expectStatus(t, e.apiCall("POST", "/api/v1/keys", actor, `{"label": "Child", "scopes": ["screenshots", "keys_read"]}`), http.StatusCreated)
	// A change that adds nothing is no escalation, even to a wider key.
	wide := decodeJSON[apiKeyResponse](t, e.apiCall("PATCH", keyPath(wideID), actor, `{"label": "Wide, renamed", "active": false}`), http.StatusOK)
	if wide.Label != "Wide, renamed" || !slices.Equal(wide.Scopes, []string{"screenshots", "html_to_image"}) {
		t.Fatalf("wide key %+v", wide)
	}
	narrowed := decodeJSON[apiKeyResponse](t, e.apiCall("PATCH", keyPath(wideID), actor, `{"scopes": ["html_to_image"]}`), http.StatusOK)
	if !slices.Equal(narrowed.Scopes, []string{"html_to_image"}) {
		t.Fatalf("narrowing a key: %+v", narrowed)
	}
	expectStatus(t, e.apiCall("POST", keyPath(narrowID)+"/rotate", actor, `{"grace": "auto"}`), http.StatusCreated)
}

func scopeNames(s []account.Scope) []string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = string(sc)
	}
	return out
}

// TestKeysAPIOwnership: another account's key answers 404 to every route
// and nothing happens to it.
func TestKeysAPIOwnership(t *testing.T) {
	e := newTestEnv(t)
	alice, _ := e.signUp()
	aliceKey, _ := dashboardKey(t, alice, "Alice's", allScopes...)
	bob, bobEmail := e.signUp()
	_, bobID := dashboardKey(t, bob, "Bob's", account.ScopeScreenshots)
	p := "/api/v1/keys/" + strconv.FormatInt(bobID, 10)
	for _, r := range [][3]string{{"GET", p, ""}, {"PATCH", p, `{"active": false}`}, {"POST", p + "/rotate", `{"grace": "now"}`}, {"DELETE", p, ""},
		{"GET", "/api/v1/keys/abc", ""}, {"GET", "/api/v1/keys/0", ""}, {"PATCH", "/api/v1/keys/999999", `{"label": "x"}`}} {
		expectAPIError(t, e.apiCall(r[0], r[1], aliceKey, r[2]), http.StatusNotFound, "not_found")
	}
	list := decodeJSON[struct{ Keys []apiKeyResponse }](t, e.apiCall("GET", "/api/v1/keys", aliceKey, ""), http.StatusOK)
	if len(list.Keys) != 1 {
		t.Fatalf("alice sees %d keys", len(list.Keys))
	}
	keys := userKeys(t, e, bobEmail)
	if len(keys) != 1 || !keys[0].Active || keys[0].Rotated() {
		t.Fatalf("bob's key was touched: %+v", keys)
	}
}

// TestKeysAPIBadInput: unknown fields, wrong types and bad values answer
// 400 naming the field, and change nothing.
func TestKeysAPIBadInput(t *testing.T) {
	e := newTestEnv(t, withConfig(func(c *Config) { c.RateLimit = 60 }))
	b, email := e.signUp()
	admin, adminID := dashboardKey(t, b, "Admin", allScopes...)
	self := "/api/v1/keys/" + strconv.FormatInt(adminID, 10)
	before := userKeys(t, e, email)
	past := e.clock.Now().AddDate(0, 0, -1).Format("2006-01-02")
	for _, tt := range []struct {
		name, method, path, body, field, want string
	}{
		{"Unknown", "POST", "/api/v1/keys", `{"label": "x", "scope": ["screenshots"]}`, "scope", `Unknown field "scope"`},
		{"UnknownOnPatch", "PATCH", self, `{"grace": "now"}`, "grace", "Unknown field"},
		{"LabelNotString", "POST", "/api/v1/keys", `{"label": 5}`, "label", "label must be a string"},
		{"LabelTooLong", "PATCH", self, `{"label": "` + strings.Repeat("x", 65) + `"}`, "label", "at most 64"},
		{"LabelControl", "POST", "/api/v1/keys", `{"label": "a\u0007b"}`, "label", "control"},
		{"ScopesNotArray", "POST", "/api/v1/keys", `{"scopes": "screenshots"}`, "scopes", "array of strings"},
		{"ScopesEmpty", "PATCH", self, `{"scopes": []}`, "scopes", "at least one scope"},
		{"ScopeUnknown", "POST", "/api/v1/keys", `{"scopes": ["admin"]}`, "scopes", `unknown scope "admin"`},
		{"ExpiresBad", "POST", "/api/v1/keys", `{"expires": "2d"}`, "expires", "choose never"},
		{"ExpiresPast", "PATCH", self, `{"expires": "` + past + `"}`, "expires", "in the past"},
		{"ExpiresKeepIsNotAPI", "PATCH", self, `{"expires": "keep"}`, "expires", "expires must be"},
		{"IPBad", "POST", "/api/v1/keys", `{"allowed_ips": ["999.1.1.1"]}`, "allowed_ips", "not an IP address"},
		{"IPNotString", "POST", "/api/v1/keys", `{"allowed_ips": [1]}`, "allowed_ips", "array of strings"},
		{"IPTwoInOne", "PATCH", self, `{"allowed_ips": ["127.0.0.1, 10.0.0.1"]}`, "allowed_ips", "without commas"},
		{"TargetBad", "POST", "/api/v1/keys", `{"allowed_targets": ["https://example.com/x"]}`, "allowed_targets", "without http"},
		{"RateString", "PATCH", self, `{"rate_limit": "10"}`, "rate_limit", "whole number"},
		{"RateFraction", "POST", "/api/v1/keys", `{"rate_limit": 2.5}`, "rate_limit", "whole number"},
		{"RateTooHigh", "PATCH", self, `{"rate_limit": 61}`, "rate_limit", "from 1 to 60"},
		{"BudgetZero", "POST", "/api/v1/keys", `{"monthly_budget": 0}`, "monthly_budget", "from 1 to"},
		{"ActiveNotBool", "PATCH", self, `{"active": "yes"}`, "active", "true or false"},
		{"GraceMissing", "POST", self + "/rotate", `{}`, "grace", "grace must be"},
		{"GraceBad", "POST", self + "/rotate", `{"grace": "1w"}`, "grace", "grace must be"},
		{"NotAnObject", "POST", "/api/v1/keys", `["label"]`, "", "JSON object"},
		{"Null", "PATCH", self, `null`, "", "JSON object"},
		{"BadJSON", "POST", "/api/v1/keys", `{"label": }`, "", "not valid JSON"},
		{"Duplicate", "PATCH", self, `{"active": true, "active": false}`, "", "more than once"},
		{"Empty", "POST", "/api/v1/keys", ` `, "", "empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.apiCall(tt.method, tt.path, admin, tt.body)
			msg := expectAPIError(t, r, http.StatusBadRequest, "invalid_request").Error.Message
			var raw struct {
				Error struct{ Field string } `json:"error"`
			}
			_ = json.Unmarshal([]byte(r.body), &raw)
			if !strings.Contains(msg, tt.want) || raw.Error.Field != tt.field {
				t.Fatalf("message %q field %q, want %q naming %q", msg, raw.Error.Field, tt.want, tt.field)
			}
		})
	}
	t.Run("NotJSON", func(t *testing.T) {
		expectAPIError(t, e.apiCall("POST", "/api/v1/keys", admin, `{}`, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "unsupported_media_type")
		expectAPIError(t, e.apiCall("PATCH", self, admin, `{}`, "Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType, "unsupported_media_type")
	})
	after := userKeys(t, e, email)
	if len(after) != len(before) || after[0].Label != before[0].Label || !slices.Equal(after[0].Policy.Scopes, before[0].Policy.Scopes) ||
		!after[0].ExpiresAt.Equal(before[0].ExpiresAt) || after[0].Rotated() || len(after[0].Policy.AllowedIPs) != 0 {
		t.Fatalf("bad input changed the keys: %+v", after)
	}
}

// TestKeysAPIRules: the key limit and what an expired key may do are the
// dashboard's.
func TestKeysAPIRules(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	admin, _ := dashboardKey(t, b, "Admin", allScopes...)
	short := decodeJSON[apiKeyResponse](t, e.apiCall("POST", "/api/v1/keys", admin, `{"label": "Short-lived", "expires": "7d", "scopes": ["screenshots"]}`), http.StatusCreated)
	if short.Status != "expiring" {
		t.Fatalf("a key expiring within 7 days shows as %q", short.Status)
	}
	u, _ := e.store.UserByEmail(context.Background(), email)
	for range account.MaxAPIKeys - 2 {
		k, _ := apikey.Generate()
		if _, err := e.store.CreateAPIKey(context.Background(), account.NewAPIKey{UserID: u.ID, Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	msg := expectAPIError(t, e.apiCall("POST", "/api/v1/keys", admin, `{"label": "51st", "scopes": ["screenshots"]}`), http.StatusConflict, "key_limit_reached")
	if !strings.Contains(msg.Error.Message, "50") || len(userKeys(t, e, email)) != account.MaxAPIKeys {
		t.Fatalf("limit: %q, %d keys", msg.Error.Message, len(userKeys(t, e, email)))
	}
	// Past its expiry the short-lived key is refused and can't change.
	e.clock.Add(8 * 24 * time.Hour)
	p := "/api/v1/keys/" + strconv.FormatInt(short.ID, 10)
	if got := decodeJSON[apiKeyResponse](t, e.apiCall("GET", p, admin, ""), http.StatusOK); got.Status != "expired" {
		t.Fatalf("status %q, want expired", got.Status)
	}
	expectAPIError(t, e.apiCall("PATCH", p, admin, `{"label": "again"}`), http.StatusConflict, "conflict")
	expectAPIError(t, e.apiCall("POST", p+"/rotate", admin, `{"grace": "now"}`), http.StatusConflict, "conflict")
	expectAPIError(t, e.apiCall("GET", "/api/v1/me", short.Key, ""), http.StatusUnauthorized, "api_key_expired")
	// Nor be activated, with its label unchanged; deactivating it is harmless.
	expectAPIError(t, e.apiCall("PATCH", p, admin, `{"active": true, "label": "again"}`), http.StatusConflict, "conflict")
	if off := decodeJSON[apiKeyResponse](t, e.apiCall("PATCH", p, admin, `{"active": false}`), http.StatusOK); off.Active || off.Status != "expired" || off.Label != "Short-lived" {
		t.Fatalf("expired key after deactivation: %+v", off)
	}
	expectAPIError(t, e.apiCall("PATCH", p, admin, `{"active": true}`), http.StatusConflict, "conflict")
}
