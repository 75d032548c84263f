package web

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store/sqlite"
)

// giveFindings makes every key of the tab's user need attention: all
// never expire; of every four, one was seen from more than 5 addresses in
// a day, one has every scope and no address restriction, one has been
// idle for 30 days (and the fourth only never expires).
func giveFindings(tb testing.TB, tab *keysTab) {
	tb.Helper()
	ctx := context.Background()
	keys, err := tab.store.APIKeys(ctx, tab.userID)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", sqlite.DSN(tab.store.(*sqlite.Store).Path(), "_busy_timeout=10000"))
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	now := time.Now()
	var usage []account.KeyUsage
	for i, k := range keys {
		switch i % 4 {
		case 0:
			var ips []string
			for j := range account.ManyIPs + 2 {
				ips = append(ips, fmt.Sprintf("198.51.100.%d", j+1))
			}
			usage = append(usage, account.KeyUsage{KeyID: k.ID, Day: now, Requests: int64(len(ips)), Accepted: int64(len(ips)),
				IPs: ips, FirstUsed: now, LastUsed: now, LastIP: ips[0], LastAgent: "bench/1"})
		case 1:
			p := k.Policy
			p.Scopes = account.AllScopes
			if _, err := tab.store.UpdateAPIKeySettings(ctx, tab.userID, k.ID, account.KeySettings{Label: k.Label, Policy: p}); err != nil {
				tb.Fatal(err)
			}
		case 2:
			if _, err := raw.Exec(`UPDATE api_keys SET created_at = ? WHERE id = ?`, now.Add(-account.IdleAfter-time.Hour).Unix(), k.ID); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tab.store.RecordAPIKeyUsage(ctx, usage); err != nil {
		tb.Fatal(err)
	}
}

// healthFindings counts the findings and the keys they name on a tab.
func healthFindings(body string) (findings, keys int) {
	return strings.Count(body, `<li class="finding"`), strings.Count(body, `data-testid="finding-key"`)
}

// BenchmarkAPIKeysTabWithHealth: the API Keys tab of a user with 50 keys
// (the most an account may hold), every one of them in a finding of key
// health, through the whole handler path (target: ≤2 ms).
func BenchmarkAPIKeysTabWithHealth(b *testing.B) {
	tab := newKeysTab(b, account.MaxAPIKeys, sqlite.Options{})
	giveFindings(b, tab)
	benchPage(b, tab, "/account/api-keys", func(body string) {
		if f, k := healthFindings(body); f != 4 || strings.Count(body, `<tr id="key-`) != account.MaxAPIKeys || k == 0 {
			b.Fatalf("%d findings naming %d keys; want 4, with 50 rows", f, k)
		}
	})
}

// TestAPIKeysTabWithHealthIsFixedQueries: key health costs the same
// queries for 1 key as for 50, each with findings: the keys in one query,
// their addresses per day in one more, their leak reports in a third.
func TestAPIKeysTabWithHealthIsFixedQueries(t *testing.T) {
	counted := func(n int) (total, keyQueries int, body string) {
		all, keys, body := tabQueries(t, n, func(tab *keysTab) { giveFindings(t, tab) })
		return len(all), len(keys), body
	}
	one, oneKeys, oneBody := counted(4) // one key of each kind
	fifty, fiftyKeys, fiftyBody := counted(account.MaxAPIKeys)
	if f, _ := healthFindings(oneBody); f != 4 {
		t.Fatalf("4 keys show %d findings, want 4", f)
	}
	if f, _ := healthFindings(fiftyBody); f != 4 {
		t.Fatalf("50 keys show %d findings, want 4", f)
	}
	if fifty != one || fiftyKeys != oneKeys || fiftyKeys != 3 {
		t.Fatalf("the tab ran %d queries (%d on keys) for 4 keys with findings and %d (%d) for 50: the count must not grow, and the keys take 3", one, oneKeys, fifty, fiftyKeys)
	}
}

// keyPageWith30Days is a key with usage on each of the last 30 days
// (requests, renders, credits, refusals of three kinds), some activity,
// and 49 other keys beside it.
func keyPageWith30Days(tb testing.TB, opts sqlite.Options) (*keysTab, int64) {
	tb.Helper()
	tab := newKeysTab(tb, account.MaxAPIKeys, opts)
	ctx := context.Background()
	keys, err := tab.store.APIKeys(ctx, tab.userID)
	if err != nil {
		tb.Fatal(err)
	}
	id := keys[0].ID
	now := time.Now()
	var usage []account.KeyUsage
	for d := range 30 {
		at := now.AddDate(0, 0, -d)
		usage = append(usage, account.KeyUsage{KeyID: id, Day: at, Requests: int64(100 + d*7), Accepted: int64(90 + d*7), Renders: int64(80 + d*5),
			Errors: map[string]int64{"rate_limited": int64(d%5 + 1), "invalid_request": 3, "insufficient_credits": int64(d%2 + 1)},
			IPs:    []string{"203.0.113.1", "203.0.113.2"}, FirstUsed: at, LastUsed: at, LastIP: "203.0.113.1", LastAgent: "bench/1"})
	}
	if err := tab.store.RecordAPIKeyUsage(ctx, usage); err != nil {
		tb.Fatal(err)
	}
	for i := range 20 {
		k := keys[0]
		if _, err := tab.store.UpdateAPIKeySettings(ctx, tab.userID, id, account.KeySettings{Label: "Renamed " + strconv.Itoa(i), Policy: k.Policy}); err != nil {
			tb.Fatal(err)
		}
	}
	return tab, id
}

// get answers a page of the signed-in user, as a direct load or as htmx's
// request for its panel.
func (k *keysTab) get(tb testing.TB, path string, htmx bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Cookie", k.cookie)
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	rec := httptest.NewRecorder()
	k.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET %s: %d\n%.500s", path, rec.Code, rec.Body.String())
	}
	return rec
}

// BenchmarkKeyPage: a key's page with 30 days of usage (the chart, its
// table, the recent activity), as a direct load and as htmx's (target:
// ≤5 ms).
func BenchmarkKeyPage(b *testing.B) {
	tab, id := keyPageWith30Days(b, sqlite.Options{})
	benchPage(b, tab, keyPath(id), func(body string) {
		if n := strings.Count(body, `data-testid="chart-day"`); n != 2*30 || !strings.Contains(body, `data-requests="303"`) {
			b.Fatalf("the chart's two drawings have %d days, or lack the oldest day's 303 requests", n)
		}
	})
}

// TestKeyPageIsFixedQueries: the key's page reads the same queries with
// 30 days of usage as with one.
func TestKeyPageIsFixedQueries(t *testing.T) {
	log := &queryLog{}
	tab, id := keyPageWith30Days(t, sqlite.Options{Driver: registerCountingDriver(log)})
	tab.get(t, keyPath(id), false)
	log.take()
	tab.get(t, keyPath(id), false)
	thirty := len(log.take())
	key, _ := tab.store.APIKeys(context.Background(), tab.userID)
	quiet := key[len(key)-1].ID
	tab.get(t, keyPath(quiet), false)
	log.take()
	tab.get(t, keyPath(quiet), false)
	if none := len(log.take()); none != thirty {
		t.Fatalf("the key's page ran %d queries with 30 days of usage and %d with none", thirty, none)
	}
}

// cpuTime is the CPU time the process has used (every thread: the
// handler's, the database driver's, the collector's).
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op to a benchmark: the CPU its loop used per
// operation, which a busy machine's waits (for a core, shared with other
// work) don't inflate the way they do ns/op.
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-since)/float64(b.N), "cpu-ns/op")
}
