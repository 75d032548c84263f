package storetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

// newSigningSecret is a signing secret to store: the store never sees it
// in clear, so "sealed" here is any opaque bytes long enough to be a
// sealed secret.
func newSigningSecret(t testing.TB, tag byte) (account.NewSigningSecret, string) {
	t.Helper()
	plain, err := apikey.GenerateSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	sealed := bytes.Repeat([]byte{tag}, 70)
	return account.NewSigningSecret{Prefix: apikey.DisplayPrefix(plain), Last4: apikey.Last4(plain), Sealed: sealed}, plain
}

func testSigningSecrets(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	alice, bob := NewUser(t, s), NewUser(t, s)
	k, _ := NewKey(t, s, alice.ID, "images")

	t.Run("NoneAtFirst", func(t *testing.T) {
		if _, err := s.SigningSecret(ctx, alice.ID, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if _, err := s.SignedLinkKey(ctx, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("a key without a secret: %v", err)
		}
	})
	first, plain := newSigningSecret(t, 1)
	t.Run("Create", func(t *testing.T) {
		got, replaced, err := s.SetSigningSecret(ctx, alice.ID, k.ID, first)
		if err != nil || replaced || got.KeyID != k.ID || got.Masked() != apikey.MaskKey(plain) || !got.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("%+v %v", got, err)
		}
		read, err := s.SigningSecret(ctx, alice.ID, k.ID)
		if err != nil || !bytes.Equal(read.Sealed, first.Sealed) || read.Masked() != got.Masked() || !read.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("read %+v %v", read, err)
		}
		sk, err := s.SignedLinkKey(ctx, k.ID)
		if err != nil || sk.Key.ID != k.ID || sk.Key.UserID != alice.ID || !sk.Key.Active || sk.Key.Label != "images" ||
			!bytes.Equal(sk.Sealed, first.Sealed) || len(sk.Key.Policy.Scopes) == 0 {
			t.Fatalf("signed link key %+v %v", sk, err)
		}
		entries, _ := s.Activity(ctx, alice.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeySettingsChanged})
		if len(entries) != 1 || !strings.Contains(entries[0].Detail, "signing secret "+got.Masked()+" created") {
			t.Fatalf("activity %+v", entries)
		}
	})
	t.Run("RotateReplaces", func(t *testing.T) {
		clk.Add(time.Minute)
		next, nextPlain := newSigningSecret(t, 2)
		if _, replaced, err := h.Again().SetSigningSecret(ctx, alice.ID, k.ID, next); err != nil || !replaced {
			t.Fatalf("rotation: replaced %v, %v", replaced, err)
		}
		sk, err := s.SignedLinkKey(ctx, k.ID)
		if err != nil || !bytes.Equal(sk.Sealed, next.Sealed) {
			t.Fatalf("after rotation %+v %v", sk, err)
		}
		read, _ := s.SigningSecret(ctx, alice.ID, k.ID)
		if read.Masked() != apikey.MaskKey(nextPlain) || !read.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("read %+v", read)
		}
		if n := h.Int(t, `SELECT count(*) FROM key_signing_secrets WHERE api_key_id = ?`, k.ID); n != 1 {
			t.Fatalf("%d secrets for one key", n)
		}
		entries, _ := s.Activity(ctx, alice.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeySettingsChanged})
		if len(entries) != 2 || !strings.Contains(entries[0].Detail, "rotated") || !strings.Contains(entries[0].Detail, apikey.MaskKey(plain)) {
			t.Fatalf("activity %+v", entries)
		}
	})
	t.Run("SignedLinkKeyFollowsTheKey", func(t *testing.T) {
		if _, err := s.SetAPIKeyActive(ctx, alice.ID, k.ID, false); err != nil {
			t.Fatal(err)
		}
		sk, err := s.SignedLinkKey(ctx, k.ID)
		if err != nil || sk.Key.Active {
			t.Fatalf("%+v %v", sk, err)
		}
		if _, err := s.SetAPIKeyActive(ctx, alice.ID, k.ID, true); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OwnershipEnforced", func(t *testing.T) {
		other, _ := newSigningSecret(t, 3)
		if _, _, err := s.SetSigningSecret(ctx, bob.ID, k.ID, other); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("bob set alice's secret: %v", err)
		}
		if _, err := s.SigningSecret(ctx, bob.ID, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("bob read alice's secret: %v", err)
		}
		if sk, _ := s.SignedLinkKey(ctx, k.ID); bytes.Equal(sk.Sealed, other.Sealed) {
			t.Fatal("bob's secret stored")
		}
	})
	t.Run("NotForAnExpiredKey", func(t *testing.T) {
		gone, _ := NewKey(t, s, alice.ID, "")
		if _, _, err := s.RotateAPIKey(ctx, alice.ID, gone.ID, MustKey(t), account.Grace{}); err != nil {
			t.Fatal(err)
		}
		ns, _ := newSigningSecret(t, 4)
		if _, _, err := s.SetSigningSecret(ctx, alice.ID, gone.ID, ns); !errors.Is(err, account.ErrKeyExpired) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("GoesWithItsKey", func(t *testing.T) {
		doomed, _ := NewKey(t, s, alice.ID, "")
		ns, _ := newSigningSecret(t, 5)
		if _, _, err := s.SetSigningSecret(ctx, alice.ID, doomed.ID, ns); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAPIKey(ctx, alice.ID, doomed.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignedLinkKey(ctx, doomed.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if n := h.Int(t, `SELECT count(*) FROM key_signing_secrets WHERE api_key_id = ?`, doomed.ID); n != 0 {
			t.Fatalf("%d secrets left", n)
		}
	})
	t.Run("Constraints", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			prefix string
			last4  string
			sealed []byte
		}{
			{"KeyPrefix", "psk_abcd", "wxyz", bytes.Repeat([]byte{1}, 70)},
			{"ShortLast4", "pss_abcd", "xyz", bytes.Repeat([]byte{1}, 70)},
			{"SealedTooShortToBeSealed", "pss_abcd", "wxyz", []byte("pss_short")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := h.Exec(`UPDATE key_signing_secrets SET prefix = ?, last4 = ?, sealed = ? WHERE api_key_id = ?`,
					tc.prefix, tc.last4, tc.sealed, k.ID); err == nil {
					t.Fatal("the schema accepted it")
				}
			})
		}
	})
}

func testLeakReports(t *testing.T, h *Harness) {
	s, clk, ctx := h.Store, h.Clock, t.Context()
	alice, bob := NewUser(t, s), NewUser(t, s)
	leak := account.Leak{URL: "https://github.com/acme/site/blob/abc123/.env", Source: "commit"}
	scanner := account.WithActor(ctx, account.Actor{Kind: account.ActorScanner, IP: "192.0.2.7", UserAgent: "GitHub-Hookshot"})

	t.Run("DeactivatesAtOnceAndLogs", func(t *testing.T) {
		k, plain := NewKey(t, s, alice.ID, "leaky")
		r, err := s.ReportLeakedKey(scanner, apikey.HashOf(plain), leak)
		if err != nil || r.Key.ID != k.ID || r.Key.Active || r.URL != leak.URL || r.Source != "commit" ||
			!r.ReportedAt.Equal(clk.Now()) || !r.DeactivatedAt.Equal(clk.Now()) {
			t.Fatalf("%+v %v", r, err)
		}
		if got, err := s.APIKeyByHash(ctx, apikey.HashOf(plain)); err != nil || got.Active {
			t.Fatalf("still active: %+v %v", got, err)
		}
		entries, _ := s.Activity(ctx, alice.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeyLeakReported})
		if len(entries) != 1 || entries[0].Actor.Kind != account.ActorScanner || entries[0].Actor.IP != "192.0.2.7" ||
			!strings.Contains(entries[0].Detail, leak.URL) || !strings.Contains(entries[0].Detail, "deactivated") ||
			entries[0].KeyMasked != k.Masked() {
			t.Fatalf("activity %+v", entries)
		}
		reports, err := s.LeakReports(ctx, alice.ID)
		if err != nil || len(reports) != 1 || reports[0].Key.ID != k.ID || reports[0].URL != leak.URL || reports[0].Key.Label != "leaky" {
			t.Fatalf("reports %+v %v", reports, err)
		}
		if reports, _ := s.LeakReports(ctx, bob.ID); len(reports) != 0 {
			t.Fatalf("bob sees %+v", reports)
		}
		// Ready for the next subtests: alice deals with it by dismissing.
		if err := s.DismissLeakReport(ctx, alice.ID, k.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("UnknownChangesNothing", func(t *testing.T) {
		before := h.Int(t, `SELECT count(*) FROM activity`)
		if _, err := s.ReportLeakedKey(scanner, apikey.HashOf(MustKey(t)), leak); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if n := h.Int(t, `SELECT count(*) FROM key_leak_reports`); n != 1 {
			t.Fatalf("%d reports", n)
		}
		if after := h.Int(t, `SELECT count(*) FROM activity`); after != before {
			t.Fatalf("activity grew from %d to %d", before, after)
		}
	})
	t.Run("Dismiss", func(t *testing.T) {
		k, plain := NewKey(t, s, alice.ID, "")
		if _, err := s.ReportLeakedKey(scanner, apikey.HashOf(plain), leak); err != nil {
			t.Fatal(err)
		}
		if err := s.DismissLeakReport(ctx, bob.ID, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("bob dismissed alice's report: %v", err)
		}
		if err := s.DismissLeakReport(ctx, alice.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if reports, _ := s.LeakReports(ctx, alice.ID); len(reports) != 0 {
			t.Fatalf("dismissed, still %+v", reports)
		}
		if err := s.DismissLeakReport(ctx, alice.ID, k.ID); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("dismissed twice: %v", err)
		}
		// Still off: dismissing is not activating.
		if got, _ := s.APIKey(ctx, alice.ID, k.ID); got.Active {
			t.Fatal("dismissing activated the key")
		}
		// A new report brings it back, and keeps when the key went off.
		clk.Add(time.Minute)
		r, err := s.ReportLeakedKey(scanner, apikey.HashOf(plain), account.Leak{URL: "https://gist.github.com/x/1"})
		if err != nil || r.URL != "https://gist.github.com/x/1" || !r.DeactivatedAt.Equal(clk.Now().Add(-time.Minute)) {
			t.Fatalf("%+v %v", r, err)
		}
		reports, _ := s.LeakReports(ctx, alice.ID)
		if len(reports) != 1 || reports[0].Key.ID != k.ID {
			t.Fatalf("reports %+v", reports)
		}
		entries, _ := s.Activity(ctx, alice.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeyLeakReported})
		if len(entries) != 2 || !strings.Contains(entries[0].Detail, "already deactivated") {
			t.Fatalf("activity %+v", entries)
		}
		if err := s.DismissLeakReport(ctx, alice.ID, k.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DealtWithByRotationOrDeletion", func(t *testing.T) {
		rotated, plain1 := NewKey(t, s, alice.ID, "")
		deleted, plain2 := NewKey(t, s, alice.ID, "")
		for _, p := range []string{plain1, plain2} {
			if _, err := s.ReportLeakedKey(scanner, apikey.HashOf(p), leak); err != nil {
				t.Fatal(err)
			}
		}
		if reports, _ := s.LeakReports(ctx, alice.ID); len(reports) != 2 {
			t.Fatalf("reports %+v", reports)
		}
		clk.Add(time.Second)
		if _, _, err := s.RotateAPIKey(ctx, alice.ID, rotated.ID, MustKey(t), account.Grace{For: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAPIKey(ctx, alice.ID, deleted.ID); err != nil {
			t.Fatal(err)
		}
		if reports, _ := s.LeakReports(ctx, alice.ID); len(reports) != 0 {
			t.Fatalf("dealt with, still %+v", reports)
		}
		// The rotated key stays off through its grace period.
		if got, _ := s.APIKey(ctx, alice.ID, rotated.ID); got.Works(clk.Now()) {
			t.Fatal("a leaked key works again after its rotation")
		}
	})
	t.Run("RotatedBeforeTheReport", func(t *testing.T) {
		k, plain := NewKey(t, s, alice.ID, "")
		if _, _, err := s.RotateAPIKey(ctx, alice.ID, k.ID, MustKey(t), account.Grace{For: 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if _, err := s.ReportLeakedKey(scanner, apikey.HashOf(plain), leak); err != nil {
			t.Fatal(err)
		}
		reports, _ := s.LeakReports(ctx, alice.ID)
		if len(reports) != 1 || reports[0].Key.ID != k.ID {
			t.Fatalf("a key leaked during its grace period: reports %+v", reports)
		}
		if got, _ := s.APIKeyByHash(ctx, apikey.HashOf(plain)); got.Works(clk.Now()) {
			t.Fatal("still works in its grace period")
		}
		if err := s.DismissLeakReport(ctx, alice.ID, k.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ExpiredKeyIsNoConcern", func(t *testing.T) {
		k, plain := NewKey(t, s, alice.ID, "")
		if _, _, err := s.RotateAPIKey(ctx, alice.ID, k.ID, MustKey(t), account.Grace{}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		r, err := s.ReportLeakedKey(scanner, apikey.HashOf(plain), leak)
		if err != nil || !r.DeactivatedAt.IsZero() {
			t.Fatalf("%+v %v", r, err)
		}
		if reports, _ := s.LeakReports(ctx, alice.ID); len(reports) != 0 {
			t.Fatalf("an expired key in the banner: %+v", reports)
		}
		entries, _ := s.Activity(ctx, alice.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeyLeakReported})
		if len(entries) != 1 || !strings.Contains(entries[0].Detail, "already stopped working") {
			t.Fatalf("activity %+v", entries)
		}
	})
	t.Run("SeenByEveryProcess", func(t *testing.T) {
		_, plain := NewKey(t, s, alice.ID, "")
		if _, err := h.Again().ReportLeakedKey(scanner, apikey.HashOf(plain), leak); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.APIKeyByHash(ctx, apikey.HashOf(plain)); got.Active {
			t.Fatal("active for the other process")
		}
	})
}

// signingWrites are the writes of this file that caches must hear of, for
// the Watch suite.
func signingWrites(h *Harness) []struct {
	name string
	do   func(t *testing.T, s store.Store) store.Change
} {
	return []struct {
		name string
		do   func(t *testing.T, s store.Store) store.Change
	}{
		{"SetSigningSecret", func(t *testing.T, s store.Store) store.Change {
			u := NewUser(t, h.Store)
			k, _ := NewKey(t, h.Store, u.ID, "")
			ns, _ := newSigningSecret(t, 9)
			if _, _, err := s.SetSigningSecret(t.Context(), u.ID, k.ID, ns); err != nil {
				t.Fatal(err)
			}
			return store.Change{KeyID: k.ID, UserID: u.ID}
		}},
		{"ReportLeakedKey", func(t *testing.T, s store.Store) store.Change {
			u := NewUser(t, h.Store)
			k, plain := NewKey(t, h.Store, u.ID, "")
			if _, err := s.ReportLeakedKey(t.Context(), apikey.HashOf(plain), account.Leak{URL: "https://example.com/leak"}); err != nil {
				t.Fatal(err)
			}
			return store.Change{KeyID: k.ID, UserID: u.ID}
		}},
	}
}
