package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
)

// rotateAuto rotates a key with grace auto through the plain form and
// returns the replacement, read from the page that shows it once.
func rotateAuto(t *testing.T, b *browser, id int64) (string, int64) {
	t.Helper()
	expectStatus(t, b.post(keyPath(id)+"/rotate", url.Values{"grace": {"auto"}}), http.StatusSeeOther)
	d := b.get("/account/api-keys").doc(t)
	key, _ := d.Find(`[data-testid="new-key"]`).Attr("value")
	idAttr, _ := d.Find(`tr.row-new`).Attr("data-key-id")
	n, err := strconv.ParseInt(idAttr, 10, 64)
	if !keyPattern.MatchString(key) || err != nil {
		t.Fatalf("the rotation showed no new key (%q)", idAttr)
	}
	return key, n
}

// lifecycles runs the instance's lifecycle job once, as its timer would.
func (e *testEnv) lifecycles() {
	e.t.Helper()
	if err := e.srv.updateKeyLifecycles(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// retirementTexts is what the list's row and the key's page say of a
// rotated key's retirement.
func retirementTexts(t *testing.T, b *browser, id int64) (badge, note, page string) {
	t.Helper()
	row := b.get("/account/api-keys").doc(t).Find(`#key-` + strconv.FormatInt(id, 10))
	clean := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	badge = clean(row.Find(`[data-testid="key-status"]`).Text())
	note = clean(row.Find(`[data-testid="key-retirement-note"]`).Text())
	page = clean(b.get(keyPath(id)).doc(t).Find(`[data-testid="key-retirement"]`).Text())
	return badge, note, page
}

// TestGraceAutoRetiresWhenQuiet: with grace auto the old key works while it
// is in use; once the new key has made a request, it retires an hour after
// its own last use, is refused from then on, and key.retired is logged
// once. The row and the key's page say what the retirement waits for.
func TestGraceAutoRetiresWhenQuiet(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	b, email := e.signUp()
	uid := e.userID(email)
	oldKey, oldID := createKeyHTMX(t, b, "Billing worker")
	me := func(key string) response {
		t.Helper()
		return e.keyCall("GET", "/api/v1/me", key, "", "203.0.113.10", "worker/2")
	}
	expectStatus(t, me(oldKey), 200)
	newKey, newID := rotateAuto(t, b, oldID)
	rotated := e.clock.Now()
	limit := rotated.Add(account.AutoGraceMax)

	badge, note, page := retirementTexts(t, b, oldID)
	if badge != "Retires when quiet" || !strings.Contains(note, "new key's first request") ||
		!strings.Contains(page, "hasn't been used yet") || !strings.Contains(page, limit.UTC().Format("2 Jan 2006")) {
		t.Fatalf("before the new key is used, the row says %q / %q and the page %q", badge, note, page)
	}
	// In use for hours while the new key isn't: it keeps working.
	for range 4 {
		e.clock.Add(50 * time.Minute)
		expectStatus(t, me(oldKey), 200)
		e.lifecycles()
	}
	e.clock.Add(3 * time.Hour) // quiet, but the new key is not in use yet either
	e.lifecycles()
	expectStatus(t, me(oldKey), 200)

	b = e.signIn(email, "correct horse battery")
	expectStatus(t, me(newKey), 200)
	e.clock.Add(10 * time.Minute)
	expectStatus(t, me(oldKey), 200) // still in use after the new key's first request
	lastUse := e.clock.Now()
	e.lifecycles()
	if k := userKeyByID(t, e, email, oldID); !k.RetiresAt.Equal(lastUse.Add(time.Hour)) {
		t.Fatalf("retires %v, want an hour after its last use, %v", k.RetiresAt, lastUse.Add(time.Hour))
	}
	e.clock.Add(5 * time.Minute)
	badge, note, page = retirementTexts(t, b, oldID)
	if !strings.HasPrefix(badge, "Retiring in ") || note != "Retires 1 h after its last use — last used 5 minutes ago" ||
		!strings.Contains(page, "Retires 1 h after its last use — last used 5 minutes ago") {
		t.Fatalf("once the new key is used, the row says %q / %q and the page %q", badge, note, page)
	}

	e.clock.Add(55*time.Minute - time.Second)
	e.lifecycles()
	if k := userKeyByID(t, e, email, oldID); !k.Works(e.clock.Now()) {
		t.Fatal("the old key retired before an hour without use")
	}
	e.clock.Add(time.Second)
	e.lifecycles()
	e.lifecycles()
	expectAPIError(t, me(oldKey), 401, "api_key_expired")
	expectStatus(t, me(newKey), 200)
	retired, err := e.store.Activity(context.Background(), uid, account.ActivityFilter{Event: account.EventKeyRetired})
	if err != nil {
		t.Fatal(err)
	}
	if len(retired) != 1 || retired[0].KeyID != oldID || retired[0].Actor.Kind != account.ActorSystem {
		t.Fatalf("key.retired entries %+v, want one for the old key by PeekShot", retired)
	}
	// The refused request changes nothing: still retired, logged once.
	e.lifecycles()
	if n, _ := e.store.Activity(context.Background(), uid, account.ActivityFilter{Event: account.EventKeyRetired}); len(n) != 1 {
		t.Fatalf("key.retired logged %d times", len(n))
	}
	if badge, _, _ := retirementTexts(t, b, oldID); badge != "Expired" {
		t.Fatalf("the retired key's row says %q", badge)
	}
	if k := userKeyByID(t, e, email, newID); k.Status(e.clock.Now()) != account.KeyActive {
		t.Fatalf("the replacement is %v", k.Status(e.clock.Now()))
	}
}

// TestGraceAutoSevenDaysAtTheLatest: an old key in use every hour retires
// 7 days after the rotation all the same, and so does one whose new key
// was never used.
func TestGraceAutoSevenDaysAtTheLatest(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	b, email := e.signUp()
	busyKey, busyID := createKeyHTMX(t, b, "Busy")
	_, idleID := createKeyHTMX(t, b, "Forgotten")
	busyNew, _ := rotateAuto(t, b, busyID)
	rotateAuto(t, b, idleID)
	limit := e.clock.Now().Add(account.AutoGraceMax)
	expectStatus(t, e.keyCall("GET", "/api/v1/me", busyNew, "", "203.0.113.1", "new/1"), 200)
	for e.clock.Now().Add(55 * time.Minute).Before(limit) {
		e.clock.Add(55 * time.Minute)
		expectStatus(t, e.keyCall("GET", "/api/v1/me", busyKey, "", "203.0.113.2", "old/1"), 200)
		e.lifecycles()
	}
	e.clock.Add(limit.Sub(e.clock.Now()) - time.Second)
	expectStatus(t, e.keyCall("GET", "/api/v1/me", busyKey, "", "203.0.113.2", "old/1"), 200)
	e.clock.Add(time.Second)
	e.lifecycles()
	expectAPIError(t, e.keyCall("GET", "/api/v1/me", busyKey, "", "203.0.113.2", "old/1"), 401, "api_key_expired")
	uid := e.userID(email)
	for _, id := range []int64{busyID, idleID} {
		k := userKeyByID(t, e, email, id)
		if k.Works(e.clock.Now()) || !k.RetiresAt.Equal(limit) {
			t.Fatalf("key %d at 7 days: works %v, retires %v (limit %v)", id, k.Works(e.clock.Now()), k.RetiresAt, limit)
		}
		if got, _ := e.store.Activity(context.Background(), uid, account.ActivityFilter{KeyID: id, Event: account.EventKeyRetired}); len(got) != 1 {
			t.Fatalf("key %d: key.retired logged %d times", id, len(got))
		}
	}
}

// TestGraceAutoReplacementDeleted: when the new key of a grace auto
// rotation is deleted, nothing will take over from the old one, so it
// waits for nobody: the row and its page say it stops at the 7-day limit,
// and it does.
func TestGraceAutoReplacementDeleted(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	b, _ := e.signUp()
	oldKey, oldID := createKeyHTMX(t, b, "Billing worker")
	_, newID := rotateAuto(t, b, oldID)
	limit := e.clock.Now().Add(account.AutoGraceMax)
	expectStatus(t, b.post(keyPath(newID)+"/delete", url.Values{}), http.StatusSeeOther)

	badge, note, page := retirementTexts(t, b, oldID)
	if !strings.HasPrefix(badge, "Retiring in ") || !strings.Contains(note, "replacement was deleted") ||
		!strings.Contains(page, "replacement was deleted") || !strings.Contains(page, limit.UTC().Format("2 Jan 2006")) {
		t.Fatalf("after its replacement was deleted: badge %q, note %q, page %q", badge, note, page)
	}
	e.clock.Add(account.AutoGraceMax - time.Minute)
	e.lifecycles()
	expectStatus(t, e.apiCall("GET", "/api/v1/me", oldKey, ""), 200)
	e.clock.Add(2 * time.Minute)
	e.lifecycles()
	expectAPIError(t, e.apiCall("GET", "/api/v1/me", oldKey, ""), 401, "api_key_expired")
}
