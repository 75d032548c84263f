package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

// Key insight (SPEC §7): usage per key per day, the activity log, and the
// lifecycle job that retires keys rotated with grace auto.

func testKeyUsageDays(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u, other := NewUser(t, s), NewUser(t, s)
	k, _ := NewKey(t, s, u.ID, "charted")
	today := account.DayStart(clk.Now())
	yesterday := today.AddDate(0, 0, -1)
	at := clk.Now()
	t.Run("ExactPerDay", func(t *testing.T) {
		batch := []account.KeyUsage{
			{KeyID: k.ID, Day: yesterday.Add(23 * time.Hour), Requests: 5, Accepted: 4, Renders: 2, Errors: map[string]int64{"rate_limited": 1, "invalid_request": 1},
				IPs: []string{"203.0.113.1"}, FirstUsed: yesterday.Add(23 * time.Hour), LastUsed: yesterday.Add(23 * time.Hour), LastIP: "203.0.113.1", LastAgent: "old/1"},
			{KeyID: k.ID, Day: at, Requests: 3, Accepted: 3, Renders: 1, Errors: map[string]int64{"invalid_request": 2},
				IPs: []string{"203.0.113.2"}, FirstUsed: at, LastUsed: at, LastIP: "203.0.113.2", LastAgent: "new/1"},
		}
		if err := s.RecordAPIKeyUsage(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// Another process adds to the same day.
		if err := h.Again().RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: at, Requests: 1, Errors: map[string]int64{"ip_not_allowed": 1}, IPs: []string{"198.51.100.1"}}}); err != nil {
			t.Fatal(err)
		}
		days, err := s.KeyUsageDays(ctx, u.ID, k.ID, yesterday)
		if err != nil {
			t.Fatal(err)
		}
		if len(days) != 2 || !days[0].Day.Equal(yesterday) || !days[1].Day.Equal(today) {
			t.Fatalf("days %+v, want yesterday and today, oldest first", days)
		}
		y, td := days[0], days[1]
		if y.Requests != 5 || y.Renders != 2 || y.Errors != 2 || !maps.Equal(y.ErrorsByCode, map[string]int64{"rate_limited": 1, "invalid_request": 1}) {
			t.Fatalf("yesterday %+v", y)
		}
		if td.Requests != 4 || td.Renders != 1 || td.Errors != 3 || !maps.Equal(td.ErrorsByCode, map[string]int64{"invalid_request": 2, "ip_not_allowed": 1}) {
			t.Fatalf("today %+v", td)
		}
		got, _ := s.APIKey(ctx, u.ID, k.ID)
		// The refused request of the other process is not the key's use.
		if got.RequestCount != 7 || got.LastIP != "203.0.113.2" || got.LastUserAgent != "new/1" || !got.LastUsedAt.Equal(at) ||
			!got.FirstUsedAt.Equal(yesterday.Add(23*time.Hour)) {
			t.Fatalf("the key after the flushes: %+v", got)
		}
		if from, _ := s.KeyUsageDays(ctx, u.ID, k.ID, at); len(from) != 1 || !from[0].Day.Equal(today) {
			t.Fatalf("from today (any time of it): %+v", from)
		}
	})
	t.Run("CreditsOfRenders", func(t *testing.T) {
		SetBalance(t, h, u.ID, 10)
		for range 2 {
			r, err := s.AdmitRender(ctx, admission(u, k))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ChargeRender(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		days, _ := s.KeyUsageDays(ctx, u.ID, k.ID, today)
		if len(days) != 1 || days[0].Credits != 2 || days[0].Requests != 4 {
			t.Fatalf("today after 2 charges %+v", days)
		}
	})
	t.Run("AnotherUsersKeyHasNone", func(t *testing.T) {
		if days, err := s.KeyUsageDays(ctx, other.ID, k.ID, yesterday); err != nil || len(days) != 0 {
			t.Fatalf("another user reads %+v (%v)", days, err)
		}
		if n, err := s.KeyIPsPerDay(ctx, other.ID, yesterday, 0); err != nil || len(n) != 0 {
			t.Fatalf("another user reads addresses %v (%v)", n, err)
		}
	})
	t.Run("AddressesPerDay", func(t *testing.T) {
		busy, _ := NewKey(t, s, u.ID, "busy")
		var ips []string
		for i := range account.MaxDayIPs + 5 {
			ips = append(ips, fmt.Sprintf("192.0.2.%d", i+1))
		}
		// Two flushes of overlapping addresses: stored once each, at most
		// MaxDayIPs of a day.
		if err := s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: busy.ID, Day: at, Requests: 4, IPs: ips[:4]}}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: busy.ID, Day: at, Requests: 1, IPs: ips[2:]}}); err != nil {
			t.Fatal(err)
		}
		n, err := s.KeyIPsPerDay(ctx, u.ID, yesterday, account.ManyIPs)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(n, map[int64]int{busy.ID: account.MaxDayIPs}) {
			t.Fatalf("keys with more than %d addresses a day: %v, want only the busy key with %d", account.ManyIPs, n, account.MaxDayIPs)
		}
		all, _ := s.KeyIPsPerDay(ctx, u.ID, yesterday, 0)
		if all[k.ID] != 2 {
			t.Fatalf("the charted key's busiest day had %d addresses, want 2", all[k.ID])
		}
	})
	t.Run("FlushesInAnyOrderNeverDeadlock", func(t *testing.T) {
		// Two processes flush the same keys in opposite orders at once:
		// each flush commits (none is chosen as a deadlock's victim).
		var keys []account.APIKey
		for i := range 12 {
			k, _ := NewKey(t, s, u.ID, fmt.Sprintf("k%d", i))
			keys = append(keys, k)
		}
		ss := stores(h, 2)
		batch := func(reverse bool) []account.KeyUsage {
			var b []account.KeyUsage
			for _, k := range keys {
				b = append(b, account.KeyUsage{KeyID: k.ID, Day: at, Requests: 1, Accepted: 1, FirstUsed: at, LastUsed: at, Errors: map[string]int64{"rate_limited": 1}, IPs: []string{"192.0.2.200"}})
			}
			if reverse {
				slices.Reverse(b)
			}
			return b
		}
		const rounds = 20
		race(t, 2*rounds, func(i int) error { return ss[i%2].RecordAPIKeyUsage(ctx, batch(i%2 == 1)) }, nil)
		for _, k := range keys {
			if d, _ := s.KeyUsageDays(ctx, u.ID, k.ID, today); len(d) != 1 || d[0].Requests != 2*rounds {
				t.Fatalf("key %d: %+v, want %d requests", k.ID, d, 2*rounds)
			}
		}
	})
}

// activityOf is the user's whole log, newest first.
func activityOf(t *testing.T, s store.Activities, userID int64, f account.ActivityFilter) []account.Activity {
	t.Helper()
	a, err := s.Activity(context.Background(), userID, f)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func events(a []account.Activity) []account.Event {
	out := make([]account.Event, len(a))
	for i, e := range a {
		out[i] = e.Event
	}
	return out
}

func testActivityLog(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	as := account.WithActor(ctx, account.Actor{Kind: account.ActorSession, IP: "203.0.113.9", UserAgent: "Firefox/140"})
	u, err := s.CreateUser(as, account.NewUser{Email: fmt.Sprintf("activity%d@example.com", userSeq.Add(1)), PasswordHash: "$2a$10$hash"})
	if err != nil {
		t.Fatal(err)
	}
	other := NewUser(t, s)
	k, err := s.CreateAPIKey(as, account.NewAPIKey{UserID: u.ID, Label: "=cmd|' /C calc'!A0", Key: MustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAPIKeyActive(as, u.ID, k.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAPIKeyActive(as, other.ID, k.ID, true); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("another user activated the key: %v", err)
	}
	if err := s.LogActivity(as, u.ID, account.EventLoginSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	t.Run("WrittenByTheChanges", func(t *testing.T) {
		all := activityOf(t, s, u.ID, account.ActivityFilter{})
		want := []account.Event{account.EventLoginSucceeded, account.EventKeyDeactivated, account.EventKeyCreated, account.EventAccountCreated}
		if !slices.Equal(events(all), want) {
			t.Fatalf("log %v, want %v", events(all), want)
		}
		for _, a := range all {
			if a.Actor != (account.Actor{Kind: account.ActorSession, IP: "203.0.113.9", UserAgent: "Firefox/140"}) || !a.At.Equal(clk.Now()) || a.UserID != u.ID {
				t.Fatalf("entry %+v: wrong actor or time", a)
			}
		}
		if all[1].KeyID != k.ID || all[1].KeyLabel != k.Label || all[1].KeyMasked != k.Masked() {
			t.Fatalf("the key's entry %+v", all[1])
		}
		if theirs := activityOf(t, s, other.ID, account.ActivityFilter{}); !slices.Equal(events(theirs), []account.Event{account.EventAccountCreated}) {
			t.Fatalf("the other user's log %v", events(theirs))
		}
		// Without an actor, it is PeekShot's own doing.
		sys := NewUser(t, s)
		if a := activityOf(t, s, sys.ID, account.ActivityFilter{}); len(a) != 1 || a[0].Actor.Kind != account.ActorSystem {
			t.Fatalf("an entry without an actor: %+v", a)
		}
	})
	t.Run("Filters", func(t *testing.T) {
		if got := activityOf(t, s, u.ID, account.ActivityFilter{KeyID: k.ID}); !slices.Equal(events(got), []account.Event{account.EventKeyDeactivated, account.EventKeyCreated}) {
			t.Fatalf("by key %v", events(got))
		}
		if got := activityOf(t, s, u.ID, account.ActivityFilter{Event: account.EventKeyCreated}); len(got) != 1 || got[0].KeyID != k.ID {
			t.Fatalf("by event %+v", got)
		}
		if got := activityOf(t, s, other.ID, account.ActivityFilter{KeyID: k.ID}); len(got) != 0 {
			t.Fatalf("another user filters by the key and reads %+v", got)
		}
		all := activityOf(t, s, u.ID, account.ActivityFilter{})
		page := activityOf(t, s, u.ID, account.ActivityFilter{Limit: 2})
		next := activityOf(t, s, u.ID, account.ActivityFilter{Limit: 2, Before: page[1].ID})
		if !slices.Equal(append(events(page), events(next)...), events(all)) {
			t.Fatalf("two pages %v + %v, the whole log %v", events(page), events(next), events(all))
		}
	})
	t.Run("AppendOnly", func(t *testing.T) {
		n := h.Int(t, `SELECT count(*) FROM activity WHERE user_id = ?`, u.ID)
		if err := h.Exec(`UPDATE activity SET detail = 'changed' WHERE user_id = ?`, u.ID); err == nil {
			t.Fatal("an entry of the log was changed")
		}
		if h.Int(t, `SELECT count(*) FROM activity WHERE user_id = ? AND detail = 'changed'`, u.ID) != 0 ||
			h.Int(t, `SELECT count(*) FROM activity WHERE user_id = ?`, u.ID) != n {
			t.Fatal("the refused change changed the log")
		}
	})
	t.Run("DeletedKeysStay", func(t *testing.T) {
		gone, _ := NewKey(t, s, u.ID, "gone")
		if err := s.DeleteAPIKey(as, u.ID, gone.ID); err != nil {
			t.Fatal(err)
		}
		got := activityOf(t, s, u.ID, account.ActivityFilter{KeyID: gone.ID})
		if !slices.Equal(events(got), []account.Event{account.EventKeyDeleted, account.EventKeyCreated}) || got[0].KeyMasked != gone.Masked() || got[0].KeyLabel != "gone" {
			t.Fatalf("a deleted key's entries %+v", got)
		}
	})
	t.Run("KeptOneYear", func(t *testing.T) {
		before := len(activityOf(t, s, u.ID, account.ActivityFilter{}))
		clk.Add(account.ActivityKept - time.Hour)
		if err := s.LogActivity(ctx, u.ID, account.EventLoginSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if got := activityOf(t, s, u.ID, account.ActivityFilter{}); len(got) != before+1 {
			t.Fatalf("%d entries after a sweep within the year, want %d", len(got), before+1)
		}
		clk.Add(2 * time.Hour)
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if got := activityOf(t, s, u.ID, account.ActivityFilter{}); len(got) != 1 || got[0].Event != account.EventLoginSucceeded {
			t.Fatalf("after a year the log holds %v, want the last sign-in only", events(got))
		}
	})
	t.Run("GoesWithTheAccount", func(t *testing.T) {
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if n := h.Int(t, `SELECT count(*) FROM activity WHERE user_id = ?`, u.ID); n != 0 {
			t.Fatalf("%d entries outlived the account", n)
		}
	})
}

func testKeyLifecycles(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	u := NewUser(t, s)
	use := func(t *testing.T, k account.APIKey) {
		t.Helper()
		now := clk.Now()
		if err := s.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: k.ID, Day: now, Requests: 1, Accepted: 1, FirstUsed: now, LastUsed: now}}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T) int {
		t.Helper()
		n, err := s.UpdateKeyLifecycles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	key := func(t *testing.T, id int64) account.APIKey {
		t.Helper()
		k, err := s.APIKey(ctx, u.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	retired := func(t *testing.T, keyID int64) int {
		t.Helper()
		return len(activityOf(t, s, u.ID, account.ActivityFilter{KeyID: keyID, Event: account.EventKeyRetired}))
	}
	t.Run("QuietHourAfterTheReplacement", func(t *testing.T) {
		k, _ := NewKey(t, s, u.ID, "auto")
		rotated := clk.Now()
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.AutoGrace)
		if err != nil || !old.AutoRetire || !old.RetiresAt.Equal(rotated.Add(account.AutoGraceMax)) {
			t.Fatalf("rotated %+v %v", old, err)
		}
		// In use, the replacement not yet: nothing moves.
		clk.Add(2 * time.Hour)
		use(t, old)
		if run(t) != 0 || !key(t, old.ID).RetiresAt.Equal(rotated.Add(account.AutoGraceMax)) {
			t.Fatal("the retirement moved before the replacement was used")
		}
		clk.Add(10 * time.Minute)
		use(t, repl)
		run(t)
		if got := key(t, old.ID).RetiresAt; !got.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("retires %v, want an hour after the replacement's first use (%v), the later of the two", got, clk.Now().Add(time.Hour))
		}
		clk.Add(30 * time.Minute)
		use(t, old) // still in use: an hour from now
		run(t)
		if got := key(t, old.ID).RetiresAt; !got.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("retires %v after another use, want %v", got, clk.Now().Add(time.Hour))
		}
		clk.Add(time.Hour - time.Second)
		if run(t) != 0 || !key(t, old.ID).Works(clk.Now()) || retired(t, old.ID) != 0 {
			t.Fatal("retired before its quiet hour was over")
		}
		clk.Add(time.Second)
		if n := run(t); n != 1 {
			t.Fatalf("%d keys ended, want the old one", n)
		}
		if k := key(t, old.ID); k.Works(clk.Now()) || k.Status(clk.Now()) != account.KeyExpired {
			t.Fatalf("the old key after its quiet hour: %v", k.Status(clk.Now()))
		}
		if run(t) != 0 || retired(t, old.ID) != 1 {
			t.Fatalf("key.retired logged %d times, want once", retired(t, old.ID))
		}
		// Used again after it retired (a request another instance let
		// through a moment too late): it stays retired.
		use(t, old)
		run(t)
		if k := key(t, old.ID); k.Works(clk.Now()) {
			t.Fatal("a retired key came back")
		}
		e := activityOf(t, s, u.ID, account.ActivityFilter{KeyID: old.ID, Event: account.EventKeyRetired})[0]
		if e.Actor.Kind != account.ActorSystem || e.KeyMasked != old.Masked() {
			t.Fatalf("key.retired entry %+v", e)
		}
	})
	t.Run("CachesSeeTheMove", func(t *testing.T) {
		c, f := Cache(t, h, h.Again())
		k, plain := NewKey(t, s, u.ID, "cached")
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.AutoGrace)
		if err != nil {
			t.Fatal(err)
		}
		// Once the rotation has reached the other process, its cache
		// holds the rotated key.
		f.WaitFor(t, 5*time.Second, "the rotation", func(_ []bool, changes []store.Change) bool {
			return slices.ContainsFunc(changes, func(c store.Change) bool { return c.KeyID == old.ID })
		})
		FromMemory(t, f, func() any {
			got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
			if err != nil || !got.RetiresAt.Equal(old.RetiresAt) {
				t.Fatalf("cached %+v %v", got, err)
			}
			return got.Label
		}, func(int) {
			if err := h.Exec(`UPDATE api_keys SET label = ? WHERE id = ?`, "behind its back", old.ID); err != nil {
				t.Fatal(err)
			}
		})
		use(t, repl)
		run(t)
		want := clk.Now().Add(account.AutoGraceQuiet)
		// Another process's cache forgets its copy, as for any change of
		// the key, well before its entries would go stale.
		within(t, 2*time.Second, "the moved retirement reaching another process's cache", func() bool {
			got, err := c.APIKeyByHash(ctx, apikey.HashOf(plain))
			return err == nil && got.RetiresAt.Equal(want)
		})
	})
	t.Run("SevenDaysAtTheLatest", func(t *testing.T) {
		k, _ := NewKey(t, s, u.ID, "busy")
		old, repl, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.AutoGrace)
		if err != nil {
			t.Fatal(err)
		}
		limit := old.RetiresAt
		use(t, repl)
		// Used every 55 minutes, never quiet for an hour, for 7 days.
		for clk.Now().Add(55 * time.Minute).Before(limit) {
			clk.Add(55 * time.Minute)
			use(t, old)
			run(t)
			if got := key(t, old.ID).RetiresAt; got.After(limit) || !key(t, old.ID).Works(clk.Now()) {
				t.Fatalf("at %v: retires %v (the 7-day limit is %v)", clk.Now(), got, limit)
			}
		}
		if !key(t, old.ID).Works(clk.Now()) {
			t.Fatal("the old key in use stopped before 7 days")
		}
		clk.Add(limit.Sub(clk.Now()))
		if run(t) != 1 || key(t, old.ID).Works(clk.Now()) || retired(t, old.ID) != 1 {
			t.Fatal("the old key did not retire at 7 days")
		}
	})
	t.Run("ExpiryLoggedOnce", func(t *testing.T) {
		k, err := s.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Label: "short", Key: MustKey(t),
			Expiry: account.Expiry{At: clk.Now().Add(time.Hour), Lifetime: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		fixed, _ := NewKey(t, s, u.ID, "rotated 1h")
		if _, _, err := s.RotateAPIKey(ctx, u.ID, fixed.ID, MustKey(t), account.Grace{For: time.Hour}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
		if n := run(t); n != 2 {
			t.Fatalf("%d keys ended, want the expired one and the rotated one", n)
		}
		run(t)
		if got := activityOf(t, s, u.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeyExpired}); len(got) != 1 || got[0].Actor.Kind != account.ActorSystem {
			t.Fatalf("key.expired entries %+v, want one by PeekShot", got)
		}
		if retired(t, fixed.ID) != 1 {
			t.Fatal("a key rotated with a fixed grace period did not log key.retired")
		}
	})
	t.Run("EndsLoggedOnceAcrossProcesses", func(t *testing.T) {
		// Every instance runs the job; run at once, they log each end once.
		var ids []int64
		for i := range 6 {
			k, _ := NewKey(t, s, u.ID, fmt.Sprintf("ends %d", i))
			if _, _, err := s.RotateAPIKey(ctx, u.ID, k.ID, MustKey(t), account.Grace{For: time.Minute}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, k.ID)
		}
		clk.Add(time.Minute)
		ss := stores(h, 3)
		for range raceRounds {
			race(t, 6, func(i int) error { _, err := ss[i%3].UpdateKeyLifecycles(ctx); return err }, nil)
		}
		for _, id := range ids {
			if n := retired(t, id); n != 1 {
				t.Fatalf("key %d: key.retired logged %d times by racing jobs", id, n)
			}
		}
	})
}
