package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// dbState is everything a dashboard or API write can change.
type dbState struct {
	Users, Sessions, SignedIn, Keys, Ledger, Redemptions, Credits, CouponUses int64
	Names                                                                     string
}

// readState reads dbState through a connection of its own, as an operator
// inspecting the database would.
func readState(t *testing.T, e *testEnv) dbState {
	t.Helper()
	names := `SELECT coalesce(group_concat(name, '|'), '') FROM (SELECT name FROM users ORDER BY id) AS u`
	if e.db.Dialect == "postgres" {
		names = `SELECT coalesce(string_agg(name, '|' ORDER BY id), '') FROM users`
	}
	var s dbState
	err := e.db.Raw.QueryRow(`SELECT
		(SELECT count(*) FROM users), (SELECT count(*) FROM sessions),
		(SELECT count(*) FROM sessions WHERE user_id IS NOT NULL),
		(SELECT count(*) FROM api_keys), (SELECT count(*) FROM credit_ledger),
		(SELECT count(*) FROM coupon_redemptions), (SELECT coalesce(sum(credits), 0) FROM users),
		(SELECT coalesce(sum(redemptions), 0) FROM coupons),
		(`+names+`)`).
		Scan(&s.Users, &s.Sessions, &s.SignedIn, &s.Keys, &s.Ledger, &s.Redemptions, &s.Credits, &s.CouponUses, &s.Names)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expectStorageFull checks that a refused write got the product's 507 in
// the shape its client expects: JSON for the API, a toast for htmx, the
// error page otherwise.
func expectStorageFull(t *testing.T, r response, kind string) {
	t.Helper()
	switch kind {
	case "api":
		expectAPIError(t, r, http.StatusInsufficientStorage, "storage_full")
	case "htmx":
		expectStatus(t, r, http.StatusInsufficientStorage)
		if r.Header.Get("HX-Reswap") != "none" || isFullPage(r.body) {
			t.Fatalf("htmx 507 is not a toast: HX-Reswap %q\n%s", r.Header.Get("HX-Reswap"), r.body)
		}
		if got := r.doc(t).Find(`[data-testid="toast"]`).Text(); !strings.Contains(got, "storage is full") {
			t.Fatalf("toast says %q", got)
		}
	default:
		expectStatus(t, r, http.StatusInsufficientStorage)
		d := r.doc(t)
		if d.Find(`[data-testid="error-page"]`).Length() != 1 || !strings.Contains(d.Find("h1").Text(), "Storage full") {
			t.Fatalf("507 is not the product's error page:\n%.1500s", r.body)
		}
	}
}

// TestStorageFullWeb caps the database as a full disk would and drives every
// kind of write through the real routes until each has been refused: each
// refusal is a clear 507 (page, toast or JSON), leaves the database exactly
// as it was (no user without a session, no debit without its ledger row, no
// image without a debit), and once space returns the same server accepts
// the same writes without a restart.
func TestStorageFullWeb(t *testing.T) {
	e := newTestEnv(t, withRenderer(&fakeRenderer{}), withConfig(func(c *Config) { c.RateLimit = 1_000_000 }))
	sq := e.needSQLite()
	ctx := context.Background()
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "full")
	u := userOf(t, e, email)
	e.coupon(account.NewCoupon{Code: "BIG", Credits: account.MaxCouponCredits})
	if _, _, err := e.store.RedeemCoupon(ctx, u.ID, "BIG"); err != nil {
		t.Fatal(err)
	}
	for _, i := range append(seq(0, 100), append(seq(500, 600), 1000, 1500)...) {
		e.coupon(account.NewCoupon{Code: fmt.Sprintf("FULL-%d", i), Credits: 1})
	}
	pad := strings.Repeat("p", 50)

	// Each write, with what it looks like when it succeeded. n makes every
	// attempt distinct; mark snapshots the database just before the write.
	type write struct {
		name, kind string
		// inPlace writes change a row in place and may never need a new
		// page, so they need not be refused.
		inPlace   bool
		do        func(n int, mark func()) response
		succeeded func(r response) bool
	}
	writes := []write{
		{"sign-up", "page", false, func(n int, mark func()) response {
			nb := e.browser()
			mark()
			if r := nb.get("/signup"); r.StatusCode != http.StatusOK {
				return r // saving the new visitor's session is a write too
			}
			mark()
			return nb.post("/signup", url.Values{"email": {fmt.Sprintf("full-%d-%s@example.com", n, pad)}, "password": {"correct horse battery"}, "name": {pad}})
		}, func(r response) bool { return r.StatusCode == http.StatusSeeOther }},
		{"render", "api", false, func(n int, mark func()) response {
			mark()
			return e.apiCall("POST", "/api/v1/html-to-image", key, fmt.Sprintf(`{"html": "<p>%d</p>"}`, n))
		}, func(r response) bool { return r.StatusCode == http.StatusOK }},
		{"create key (htmx)", "htmx", false, func(n int, mark func()) response {
			mark()
			return b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {fmt.Sprintf("%d %s", n, pad)}})
		}, func(r response) bool { return r.StatusCode == http.StatusOK }},
		{"create key (form)", "page", false, func(n int, mark func()) response {
			mark()
			return b.post("/account/api-keys", url.Values{"label": {fmt.Sprintf("%d %s", n, pad)}})
		}, func(r response) bool { return r.StatusCode == http.StatusSeeOther }},
		{"redeem (form)", "page", false, func(n int, mark func()) response {
			mark()
			return b.post("/account/coupons/redeem", url.Values{"code": {fmt.Sprintf("FULL-%d", n)}})
		}, func(r response) bool { return r.StatusCode == http.StatusSeeOther }},
		{"redeem (htmx)", "htmx", false, func(n int, mark func()) response {
			mark()
			return b.htmx(http.MethodPost, "/account/coupons/redeem", url.Values{"code": {fmt.Sprintf("FULL-%d", 500+n)}})
		}, func(r response) bool { return r.StatusCode == http.StatusOK }},
		{"rename", "page", true, func(n int, mark func()) response {
			mark()
			// A long name: its flash message takes more room than the
			// change and its activity entry, so the change can fit where
			// the message doesn't.
			return b.post("/account/profile", url.Values{"name": {fmt.Sprintf("%d %s%s", n, pad, pad[:40])}})
		}, func(r response) bool { return r.StatusCode == http.StatusSeeOther }},
	}

	// No free pages left for the writes to take first (the migrations'
	// rebuilt indexes leave some): the file must grow to store anything.
	if err := e.db.Exec(`VACUUM`); err != nil {
		t.Fatal(err)
	}
	pages, _ := sq.PageCount(ctx)
	if _, err := sq.SetMaxPageCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("database capped at %d pages", pages)

	t.Run("RefusedCleanly", func(t *testing.T) {
		refused := map[string]int{}
		// Renders write little (a ledger row each), so they take longest
		// to reach the end of a page; the others are refused much sooner.
		for n := 0; n < 600 && len(refused) < len(writes); n++ {
			for _, w := range writes {
				if refused[w.name] > 0 {
					continue
				}
				var before dbState
				r := w.do(n, func() { before = readState(t, e) })
				switch {
				case r.StatusCode == http.StatusInsufficientStorage:
					expectStorageFull(t, r, w.kind)
					if after := readState(t, e); after != before {
						t.Fatalf("%s #%d was refused with 507 but changed the database:\nbefore %+v\nafter  %+v", w.name, n, before, after)
					}
					if w.name == "render" && strings.HasPrefix(r.Header.Get("Content-Type"), "image/") {
						t.Fatal("an image was returned although its debit could not be recorded")
					}
					refused[w.name]++
				case r.StatusCode >= 500:
					t.Fatalf("%s #%d: %d, want 507 for a full disk\n%.1500s", w.name, n, r.StatusCode, r.body)
				case !w.succeeded(r):
					t.Fatalf("%s #%d: unexpected %d\n%.1500s", w.name, n, r.StatusCode, r.body)
				}
				if bad, err := e.store.LedgerMismatches(ctx); err != nil || len(bad) > 0 {
					t.Fatalf("after %s #%d balances differ from their ledgers: %v %v", w.name, n, bad, err)
				}
			}
		}
		for _, w := range writes {
			if refused[w.name] == 0 && !w.inPlace {
				t.Errorf("%s was never refused: the database did not fill where it writes", w.name)
			}
		}
		if strings.Contains(e.logs.String(), "database is locked") {
			t.Fatal("a full disk surfaced as \"database is locked\"")
		}
	})

	t.Run("RecoversWithoutRestart", func(t *testing.T) {
		if _, err := sq.SetMaxPageCount(ctx, 1<<30); err != nil {
			t.Fatal(err)
		}
		for _, w := range writes {
			var before dbState
			r := w.do(1000, func() { before = readState(t, e) })
			if !w.succeeded(r) {
				t.Fatalf("%s after space returned: %d\n%.1500s", w.name, r.StatusCode, r.body)
			}
			if after := readState(t, e); after == before {
				t.Fatalf("%s succeeded but changed nothing", w.name)
			}
		}
		expectStatus(t, b.get("/account/api-keys"), http.StatusOK)
		if bad, _ := e.store.LedgerMismatches(ctx); len(bad) > 0 {
			t.Fatalf("mismatched ledgers %v", bad)
		}
	})
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestStorageFullBetweenKeyAndReveal fills the disk so that a key can still
// be stored but the session that carries it to the reveal page (the
// no-JavaScript path: POST, 303, GET) cannot grow: the user must still see
// the key once, or get a 507 with no key created. A key stored but never
// shown would be useless and invisible.
// TestStorageFullAfterACommittedChange: when a change was committed but
// its flash message can't be saved (the session's table is what is full),
// the change stands and only the message is dropped: no 507 page saying
// nothing changed over a change that was made.
func TestStorageFullAfterACommittedChange(t *testing.T) {
	e := newTestEnv(t)
	sq := e.needSQLite()
	ctx := context.Background()
	b, email := e.signUp()
	u := userOf(t, e, email)
	if err := e.db.Exec(`VACUUM`); err != nil {
		t.Fatal(err)
	}
	if _, err := sq.SetMaxPageCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Fill the page of the browser's session (the newest row, so the last
	// page) with small sessions: the rename and its log entry still fit in
	// their pages, its flash message no longer in the session's.
	now := e.clock.Now()
	for i := 0; ; i++ {
		id, _ := account.NewSessionID()
		err := e.store.CreateSession(ctx, account.Session{ID: id, UserID: u.ID, CreatedAt: now, LastSeenAt: now})
		if errors.Is(err, account.ErrStorageFull) {
			break
		}
		if err != nil || i > 10_000 {
			t.Fatalf("filling sessions: %v after %d", err, i)
		}
	}
	name := "A name long enough that its flash message needs room " + strings.Repeat("n", 40)
	r := b.post("/account/profile", url.Values{"name": {name}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a rename that was stored answered %d", r.StatusCode)
	}
	if got := userOf(t, e, email); got.Name != name {
		t.Fatalf("name %q: the change did not stand", got.Name)
	}
	if !strings.Contains(e.logs.String(), "flash message dropped") {
		t.Fatal("the flash message was not dropped: the test filled the wrong place")
	}
}

func TestStorageFullBetweenKeyAndReveal(t *testing.T) {
	for _, action := range []string{"create", "rotate"} {
		t.Run(action, func(t *testing.T) {
			e := newTestEnv(t)
			sq := e.needSQLite()
			ctx := context.Background()
			b, email := e.signUp()
			var path string
			if action == "rotate" {
				_, id := createKeyHTMX(t, b, "to rotate")
				path = "/account/api-keys/" + strconv.Itoa(int(id)) + "/rotate"
			}
			// Start the session afresh so its row is the newest, then fill
			// the sessions table behind it until the disk is full.
			e.clock.Add(2 * time.Minute) // the next request touches the session
			expectStatus(t, b.get("/account/profile"), http.StatusOK)
			if _, err := sq.SetMaxPageCount(ctx, 1); err != nil {
				t.Fatal(err)
			}
			now := e.clock.Now()
			u, err := e.store.UserByEmail(ctx, email)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				id, _ := account.NewSessionID()
				err := e.store.CreateSession(ctx, account.Session{ID: id, UserID: u.ID, Data: []byte("{}"), CreatedAt: now, LastSeenAt: now})
				if errors.Is(err, account.ErrStorageFull) {
					break
				}
				if err != nil || i > 10_000 {
					t.Fatalf("filling sessions: %v after %d", err, i)
				}
			}
			before := readState(t, e)
			var r response
			if action == "create" {
				r = b.post("/account/api-keys", url.Values{"label": {"no js"}})
			} else {
				r = b.post(path, url.Values{"grace": {"1h"}})
			}
			after := readState(t, e)
			switch r.StatusCode {
			case http.StatusInsufficientStorage:
				expectStorageFull(t, r, "page")
				if after != before {
					t.Fatalf("507 but the database changed:\nbefore %+v\nafter  %+v", before, after)
				}
				t.Fatal("the key could not be stored: the disk filled in the wrong place for this test")
			case http.StatusSeeOther:
				r = b.get("/account/api-keys")
				fallthrough
			case http.StatusOK:
				key := keyPattern.FindString(r.body)
				if key == "" {
					t.Fatalf("%d without the key\n%.1500s", r.StatusCode, r.body)
				}
				if r.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("the reveal is cacheable: %q", r.Header.Get("Cache-Control"))
				}
				if after.Keys != before.Keys+1 {
					t.Fatalf("keys %d → %d", before.Keys, after.Keys)
				}
				found := false
				for _, k := range userKeys(t, e, email) {
					found = found || k.Masked() == apikey.MaskKey(key)
				}
				if !found {
					t.Fatal("the key shown is not the key stored")
				}
			default:
				t.Fatalf("%d\n%.1500s", r.StatusCode, r.body)
			}
		})
	}
}
