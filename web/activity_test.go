package web

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// agentTransport sends every request with one User-Agent, as a person's
// browser does.
type agentTransport struct{ agent string }

func (a agentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", a.agent)
	return http.DefaultTransport.RoundTrip(r)
}

// browserAs is a browser whose requests say they come from agent.
func (e *testEnv) browserAs(agent string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, env: e, c: &http.Client{
		Jar:           jar,
		Transport:     agentTransport{agent},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

const testAgent = "Mozilla/5.0 (insight test) Firefox/140.0"

// activityRow is one row of the activity page, cell by cell.
type activityRow struct {
	event, at, eventText, key, masked, by, ip, client string
}

func activityRows(t *testing.T, d *goquery.Document) []activityRow {
	t.Helper()
	var rows []activityRow
	d.Find(`[data-testid="activity-table"] [data-testid="activity-row"]`).Each(func(_ int, tr *goquery.Selection) {
		cell := func(label string) *goquery.Selection { return tr.Find(`td[data-label="` + label + `"]`) }
		text := func(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }
		ev, _ := tr.Attr("data-event")
		at, _ := cell("Time").Find("time").Attr("datetime")
		rows = append(rows, activityRow{
			event: ev, at: at, eventText: text(cell("Event").Find(".event-name")),
			key: text(cell("Key").Find(".activity-key")), masked: text(cell("Key").Find("code")),
			by: text(cell("By")), ip: text(cell("IP")), client: text(cell("Client")),
		})
	})
	return rows
}

func rowEvents(rows []activityRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.event
	}
	return out
}

// activityCSV downloads the CSV of a query and parses it.
func activityCSV(t *testing.T, b *browser, query string) [][]string {
	t.Helper()
	r := b.get("/account/activity.csv" + query)
	expectStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("CSV Content-Type %q", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".csv") {
		t.Fatalf("CSV Content-Disposition %q", cd)
	}
	records, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v\n%s", err, r.body)
	}
	if !slices.Equal(records[0], activityCSVHeader) {
		t.Fatalf("CSV header %v", records[0])
	}
	return records[1:]
}

// TestActivityRecordsEveryEvent: each event of SPEC §7 (but
// key.leak_reported, which secret scanning writes) is written by the
// action that causes it, by the right actor, with the client's address and
// user agent, and the page and its CSV show the same rows.
func TestActivityRecordsEveryEvent(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour), withRenderer(&fakeRenderer{}))
	const password, newPassword = "correct horse battery", "another long passphrase"
	b := e.browserAs(testAgent)
	email := uniqueEmail()
	b.get("/signup")
	expectStatus(t, b.post("/signup", url.Values{"email": {email}, "password": {password}}), http.StatusSeeOther)
	uid := e.userID(email)
	b.get("/account/api-keys")
	expectStatus(t, b.post("/logout", nil), http.StatusSeeOther)
	b.get("/login")
	expectStatus(t, b.post("/login", url.Values{"email": {email}, "password": {"not my password"}}), http.StatusUnprocessableEntity)
	expectStatus(t, b.post("/login", url.Values{"email": {email}, "password": {password}}), http.StatusSeeOther)
	b.get("/account/profile")
	expectStatus(t, b.post("/account/profile", url.Values{"name": {"Ada"}}), http.StatusSeeOther)
	expectStatus(t, b.post("/account/password", url.Values{"current_password": {password}, "new_password": {newPassword}}), http.StatusSeeOther)
	b.get("/account/api-keys")
	zapier, zapierID := createKeyHTMX(t, b, "Zapier")
	expectStatus(t, b.post(keyPath(zapierID)+"/deactivate", nil), http.StatusSeeOther)
	expectStatus(t, b.post(keyPath(zapierID)+"/activate", nil), http.StatusSeeOther)
	setUsageSettings(t, b, zapierID, url.Values{"label": {"Zapier integration"}, "rate_limit": {"30"}})
	rotated := b.post(keyPath(zapierID)+"/rotate", url.Values{"grace": {"1h"}})
	expectStatus(t, rotated, http.StatusSeeOther)
	doomed, doomedID := createKeyHTMX(t, b, "Doomed")
	expectStatus(t, b.post(keyPath(doomedID)+"/delete", nil), http.StatusSeeOther)
	short := b.post("/account/api-keys", url.Values{"label": {"Short-lived"}, "expires": {"7d"}})
	expectStatus(t, short, http.StatusSeeOther)
	var shortID, replacementID int64
	for _, k := range userKeys(t, e, email) {
		switch {
		case k.Label == "Short-lived":
			shortID = k.ID
		case k.Label == "Zapier integration" && k.ID != zapierID:
			replacementID = k.ID
		}
	}
	if _, err := e.store.CreateCoupon(context.Background(), account.NewCoupon{Code: "WELCOME50", Credits: 50}); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, b.post("/account/coupons/redeem", url.Values{"code": {"welcome50"}}), http.StatusSeeOther)
	// The rotated key's hour and the short-lived key's week pass: the
	// lifecycle job logs both ends, as PeekShot's own doing.
	e.clock.Add(7*24*time.Hour + time.Minute)
	if err := e.srv.updateKeyLifecycles(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.get("/login")
	expectStatus(t, b.post("/login", url.Values{"email": {email}, "password": {newPassword}}), http.StatusSeeOther)
	// A wrong password for a signed-in action is a failed sign-in too.
	b.get("/account/profile")
	expectStatus(t, b.post("/account/delete", url.Values{"password": {"not my password"}}), http.StatusUnprocessableEntity)

	type want struct {
		ev    account.Event
		actor account.ActorKind
		key   int64
	}
	session, system := account.ActorSession, account.ActorSystem
	wants := []want{ // newest first
		{account.EventLoginFailed, session, 0},
		{account.EventLoginSucceeded, session, 0},
		// The lifecycle job logs keys in id order: the rotated key first.
		{account.EventKeyExpired, system, shortID},
		{account.EventKeyRetired, system, zapierID},
		{account.EventCouponRedeemed, session, 0},
		{account.EventKeyCreated, session, shortID},
		{account.EventKeyDeleted, session, doomedID},
		{account.EventKeyCreated, session, doomedID},
		{account.EventKeyCreated, session, replacementID},
		{account.EventKeyRotated, session, zapierID},
		{account.EventKeySettingsChanged, session, zapierID},
		{account.EventKeyActivated, session, zapierID},
		{account.EventKeyDeactivated, session, zapierID},
		{account.EventKeyCreated, session, zapierID},
		{account.EventPasswordChanged, session, 0},
		{account.EventProfileChanged, session, 0},
		{account.EventLoginSucceeded, session, 0},
		{account.EventLoginFailed, session, 0},
		{account.EventAccountCreated, session, 0},
	}
	entries, err := e.store.Activity(context.Background(), uid, account.ActivityFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(wants) {
		var got []account.Event
		for _, a := range entries {
			got = append(got, a.Event)
		}
		t.Fatalf("%d entries %v, want %d", len(entries), got, len(wants))
	}
	for i, w := range wants {
		a := entries[i]
		if a.Event != w.ev || a.Actor.Kind != w.actor || a.KeyID != w.key {
			t.Fatalf("entry %d: %s by %s about key %d, want %s by %s about key %d", i, a.Event, a.Actor.Kind, a.KeyID, w.ev, w.actor, w.key)
		}
		switch w.actor {
		case session:
			if a.Actor.IP != "127.0.0.1" || a.Actor.UserAgent != testAgent {
				t.Fatalf("entry %d (%s): from %q with %q, want 127.0.0.1 with the browser's agent", i, a.Event, a.Actor.IP, a.Actor.UserAgent)
			}
		case system:
			if a.Actor.IP != "" || a.Actor.UserAgent != "" {
				t.Fatalf("PeekShot's entry %d (%s) has a client %q %q", i, a.Event, a.Actor.IP, a.Actor.UserAgent)
			}
		}
		if w.key != 0 {
			k := a.KeyMasked
			if len(k) != len("psk_7Gq2…x9Lb") || !strings.HasPrefix(k, "psk_") || a.KeyLabel == "" {
				t.Fatalf("entry %d (%s) names its key %q %q", i, a.Event, a.KeyLabel, k)
			}
		}
	}
	if entries[10].Detail != "label, rate limit" {
		t.Fatalf("the settings change says %q, want what changed", entries[10].Detail)
	}
	if !strings.Contains(entries[4].Detail, "WELCOME50") || !strings.Contains(entries[4].Detail, "50 credits") {
		t.Fatalf("the redemption says %q", entries[4].Detail)
	}

	// The page shows the same, newest first, and so does the CSV.
	page := b.get("/account/activity")
	expectStatus(t, page, http.StatusOK)
	d := page.doc(t)
	rows := activityRows(t, d)
	records := activityCSV(t, b, "")
	if len(rows) != len(wants) || len(records) != len(wants) {
		t.Fatalf("%d rows on the page and %d in the CSV, want %d", len(rows), len(records), len(wants))
	}
	for i, a := range entries {
		r, c := rows[i], records[i]
		if r.event != string(a.Event) || r.eventText != templates.EventText(a.Event) || r.at != a.At.UTC().Format(time.RFC3339) {
			t.Fatalf("row %d: %+v, entry %+v", i, r, a)
		}
		if c[0] != r.at || c[1] != r.event || c[4] != r.masked || c[7] != dash(r.ip) || c[8] != dash(r.client) || c[5] != string(a.Actor.Kind) {
			t.Fatalf("CSV row %d %q and page row %+v differ", i, c, r)
		}
		if a.KeyID != 0 && (c[2] != strconv.FormatInt(a.KeyID, 10) || c[3] != r.key) {
			t.Fatalf("CSV row %d names key %q %q, the page %q", i, c[2], c[3], r.key)
		}
	}
	if rows[0].by != "You, signed in" || rows[2].by != "PeekShot" {
		t.Fatalf("the page's actors: %q and %q", rows[0].by, rows[2].by)
	}

	// No secret in either: keys, passwords, the session cookie, the CSRF
	// token.
	base, _ := url.Parse(e.http.URL)
	secrets := []string{zapier, doomed, password, newPassword, b.csrf}
	for _, c := range b.c.Jar.Cookies(base) {
		secrets = append(secrets, c.Value)
	}
	panel, _ := d.Find(`[data-testid="activity-panel"]`).Html()
	csvBody := b.get("/account/activity.csv").body
	for _, where := range []struct{ name, text string }{{"the activity page", panel}, {"the CSV", csvBody}} {
		if m := keyPattern.FindString(where.text); m != "" {
			t.Fatalf("%s shows a full key", where.name)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(where.text, s) {
				t.Fatalf("%s contains a secret (%.6s…)", where.name, s)
			}
		}
	}
	// Linked from Profile and API Keys, and the three tabs stay.
	for _, tab := range []string{"/account/profile", "/account/api-keys"} {
		if href, _ := b.get(tab).doc(t).Find(`[data-testid="activity-link"]`).Attr("href"); href != "/account/activity" {
			t.Fatalf("%s links the activity log as %q", tab, href)
		}
	}
	if n := d.Find(`[data-testid^="tab-"]`).Length(); n != 3 {
		t.Fatalf("the activity page has %d tabs, want the three", n)
	}
}

func dash(s string) string {
	if s == "—" {
		return ""
	}
	return s
}

// TestActivityIsPrivate: another user's entries never show, on the page or
// in the CSV, not even when filtered by one of their keys.
func TestActivityIsPrivate(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	alice, aliceEmail := e.signUp()
	_, aliceKey := createKeyHTMX(t, alice, "Alice's secret project")
	expectStatus(t, alice.post("/account/profile", url.Values{"name": {"Alice Liddell"}}), http.StatusSeeOther)
	aliceKeys := userKeys(t, e, aliceEmail)
	bob, _ := e.signUp()
	createKeyHTMX(t, bob, "Bob's")
	for _, q := range []string{"", "?key=" + strconv.FormatInt(aliceKey, 10), "?event=key.created", "?key=" + strconv.FormatInt(aliceKey, 10) + "&event=key.created"} {
		page := bob.get("/account/activity" + q)
		expectStatus(t, page, http.StatusOK)
		csvBody := bob.get("/account/activity.csv" + q)
		expectStatus(t, csvBody, http.StatusOK)
		for _, body := range []string{page.body, csvBody.body} {
			for _, leak := range []string{"Alice", aliceKeys[0].Masked(), aliceEmail} {
				if strings.Contains(body, leak) {
					t.Fatalf("Bob's activity%s shows Alice's %q", q, leak)
				}
			}
		}
		for _, r := range activityRows(t, page.doc(t)) {
			if strings.Contains(q, "key=") {
				t.Fatalf("Bob filtered by Alice's key and sees %+v", r)
			}
		}
	}
	// Alice's own filter by her key shows her entries.
	if rows := activityRows(t, alice.get("/account/activity?key="+strconv.FormatInt(aliceKey, 10)).doc(t)); len(rows) != 1 || rows[0].event != "key.created" {
		t.Fatalf("Alice's key's activity %+v", rows)
	}
}

// TestActivityFiltersAndPages: filters by key and event, pages of 50 with
// Older and Newest, the CSV of every page, a clear 400 for a filter that
// can't be understood, and formulas in labels defused in the CSV.
func TestActivityFiltersAndPages(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	b, _ := e.signUp()
	_, k1 := createKeyHTMX(t, b, "=HYPERLINK(\"https://evil.example\",\"click\")")
	_, k2 := createKeyHTMX(t, b, "+SUM(1,2)")
	_, k3 := createKeyHTMX(t, b, "@cmd")
	const names = 55
	for i := range names {
		expectStatus(t, b.post("/account/profile", url.Values{"name": {"Name " + strconv.Itoa(i)}}), http.StatusSeeOther)
	}
	expectStatus(t, b.post(keyPath(k2)+"/deactivate", nil), http.StatusSeeOther)
	total := 1 + 3 + names + 1 // account.created, 3 keys, the names, a deactivation

	first := b.get("/account/activity")
	d := first.doc(t)
	rows := activityRows(t, d)
	if len(rows) != activityPage || rows[0].event != "key.deactivated" {
		t.Fatalf("the first page has %d rows, newest %q; want %d, the deactivation", len(rows), rows[0].event, activityPage)
	}
	if d.Find(`[data-testid="activity-newest"]`).Length() != 0 {
		t.Fatal("the first page links to itself as Newest")
	}
	older, ok := d.Find(`[data-testid="activity-older"]`).Attr("href")
	if !ok {
		t.Fatal("no Older link with more than 50 entries")
	}
	second := b.get(older)
	expectStatus(t, second, http.StatusOK)
	d2 := second.doc(t)
	rows2 := activityRows(t, d2)
	if len(rows2) != total-activityPage || rows2[len(rows2)-1].event != "account.created" {
		t.Fatalf("the second page %v", rowEvents(rows2))
	}
	if d2.Find(`[data-testid="activity-older"]`).Length() != 0 {
		t.Fatal("the last page links to older entries")
	}
	newest, _ := d2.Find(`[data-testid="activity-newest"]`).Attr("href")
	if back := activityRows(t, b.get(newest).doc(t)); !slices.Equal(rowEvents(back), rowEvents(rows)) {
		t.Fatal("Newest does not lead back to the first page")
	}
	all := activityCSV(t, b, "")
	if len(all) != total {
		t.Fatalf("the CSV has %d rows, want all %d entries, every page", len(all), total)
	}
	for i, r := range append(rows, rows2...) {
		if all[i][1] != r.event || all[i][0] != r.at {
			t.Fatalf("CSV row %d %v, page row %+v", i, all[i], r)
		}
	}

	t.Run("ByEvent", func(t *testing.T) {
		d := b.get("/account/activity?event=profile.changed").doc(t)
		rows := activityRows(t, d)
		if len(rows) != activityPage {
			t.Fatalf("%d profile changes on the first page", len(rows))
		}
		for _, r := range rows {
			if r.event != "profile.changed" {
				t.Fatalf("the filter let %q through", r.event)
			}
		}
		if v, _ := d.Find(`[data-testid="activity-filter-event"] option[selected]`).Attr("value"); v != "profile.changed" {
			t.Fatalf("the event filter shows %q selected", v)
		}
		older, _ := d.Find(`[data-testid="activity-older"]`).Attr("href")
		if !strings.Contains(older, "event=profile.changed") {
			t.Fatalf("Older %q loses the filter", older)
		}
		if rest := activityRows(t, b.get(older).doc(t)); len(rest) != names-activityPage {
			t.Fatalf("the second page of profile changes has %d rows", len(rest))
		}
		if csvRows := activityCSV(t, b, "?event=profile.changed"); len(csvRows) != names {
			t.Fatalf("the filtered CSV has %d rows, want %d", len(csvRows), names)
		}
	})
	t.Run("ByKey", func(t *testing.T) {
		d := b.get("/account/activity?key=" + strconv.FormatInt(k2, 10)).doc(t)
		if got := rowEvents(activityRows(t, d)); !slices.Equal(got, []string{"key.deactivated", "key.created"}) {
			t.Fatalf("the key's entries %v", got)
		}
		if v, _ := d.Find(`[data-testid="activity-filter-key"] option[selected]`).Attr("value"); v != strconv.FormatInt(k2, 10) {
			t.Fatalf("the key filter shows %q selected", v)
		}
		if csvHref, _ := d.Find(`[data-testid="activity-csv"]`).Attr("href"); csvHref != "/account/activity.csv?key="+strconv.FormatInt(k2, 10) {
			t.Fatalf("Download CSV leads to %q", csvHref)
		}
		if n := len(activityCSV(t, b, "?key="+strconv.FormatInt(k2, 10)+"&event=key.created")); n != 1 {
			t.Fatalf("key and event together: %d rows", n)
		}
	})
	t.Run("BadFilters", func(t *testing.T) {
		for _, q := range []string{"?key=abc", "?key=0", "?key=-4", "?key=1e3", "?event=key.exploded", "?event=%00", "?before=yesterday", "?before=-1"} {
			for _, path := range []string{"/account/activity", "/account/activity.csv"} {
				r := b.get(path + q)
				expectStatus(t, r, http.StatusBadRequest)
				if strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
					t.Fatalf("%s%s: a refused filter answered a CSV", path, q)
				}
				msg := strings.Join(strings.Fields(r.doc(t).Find(`[data-testid="error-page"]`).Text()), " ")
				if !strings.Contains(msg, "Choose") && !strings.Contains(msg, "page of the activity log") {
					t.Fatalf("%s%s: the 400 says %q", path, q, msg)
				}
			}
		}
	})
	t.Run("FormulasDefused", func(t *testing.T) {
		byKey := map[string]string{}
		for _, r := range activityCSV(t, b, "?event=key.created") {
			byKey[r[2]] = r[3]
		}
		for id, label := range map[int64]string{
			k1: "'=HYPERLINK(\"https://evil.example\",\"click\")", k2: "'+SUM(1,2)", k3: "'@cmd",
		} {
			if got := byKey[strconv.FormatInt(id, 10)]; got != label {
				t.Fatalf("key %d's label in the CSV is %q, want %q", id, got, label)
			}
		}
		// The page shows the label as typed.
		if !strings.Contains(b.get("/account/activity?key="+strconv.FormatInt(k2, 10)).doc(t).Find(".activity-key").Text(), "+SUM(1,2)") {
			t.Fatal("the page does not show the label as it is")
		}
	})
}

// TestActivityFailedSignInsAreBounded: someone guessing at an account's
// password writes at most the throttle's number of entries in its log per
// window, however many attempts the throttle refuses: the log can't be
// flooded from outside.
func TestActivityFailedSignInsAreBounded(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	_, email := e.signUp()
	guesser := e.browserAs("guesser/1")
	guesser.get("/login")
	for i := range 3 * e.srv.cfg.LoginFailureLimit {
		r := guesser.post("/login", url.Values{"email": {email}, "password": {"guess " + strconv.Itoa(i)}})
		if r.StatusCode != http.StatusUnprocessableEntity && r.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("attempt %d: %d", i, r.StatusCode)
		}
	}
	failed, err := e.store.Activity(context.Background(), e.userID(email), account.ActivityFilter{Event: account.EventLoginFailed, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != e.srv.cfg.LoginFailureLimit {
		t.Fatalf("%d failed sign-ins logged for %d attempts, want the %d passwords checked", len(failed), 3*e.srv.cfg.LoginFailureLimit, e.srv.cfg.LoginFailureLimit)
	}
	for _, a := range failed {
		if a.Actor.UserAgent != "guesser/1" || a.Actor.IP != "127.0.0.1" {
			t.Fatalf("a failed sign-in from %q with %q", a.Actor.IP, a.Actor.UserAgent)
		}
	}
}

// TestActivityOfADeletedKey: a deleted key's entries stay in the log, and
// filtering by its id still finds them, the filter naming the key as it
// was; the CSV holds the same.
func TestActivityOfADeletedKey(t *testing.T) {
	e := insightEnv(t, laterDay(1, 8*time.Hour))
	b, _ := e.signUp()
	_, gone := createKeyHTMX(t, b, "Old CI")
	createKeyHTMX(t, b, "Kept")
	expectStatus(t, b.post(keyPath(gone)+"/delete", url.Values{}), http.StatusSeeOther)

	query := "?key=" + strconv.FormatInt(gone, 10)
	d := b.get("/account/activity" + query).doc(t)
	rows := activityRows(t, d)
	if got := rowEvents(rows); !slices.Equal(got, []string{"key.deleted", "key.created"}) {
		t.Fatalf("the deleted key's entries: %v", got)
	}
	if rows[0].key != "Old CI" {
		t.Fatalf("its entries name the key %q", rows[0].key)
	}
	selected := strings.TrimSpace(d.Find(`[data-testid="activity-filter-key"] option[selected]`).Text())
	if selected != "Old CI (deleted)" {
		t.Fatalf("the key filter shows %q, want the deleted key by its label", selected)
	}
	if csv := activityCSV(t, b, query); len(csv) != 2 || csv[0][1] != "key.deleted" || csv[1][1] != "key.created" {
		t.Fatalf("the CSV of the deleted key: %v", csv)
	}
}
