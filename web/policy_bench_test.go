package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/storetest"
)

// BenchmarkPolicyVerification runs what every render request goes through
// before its handler, requireAPIKey then requireScope, for a key with
// every restriction a policy can have (issue 12: under 1 µs for a cached
// key), next to a key with the default policy:
//
//   - full-policy: expiry, three scopes, 20 allowed ranges (the client
//     matching the last), 50 allowed sites, a rate limit and a budget;
//     the client is the TCP peer.
//   - full-policy-via-proxy: the same, from behind a trusted proxy, the
//     client read from a three-hop X-Forwarded-For.
//   - default-policy: no restriction, for comparison.
//   - malformed: a key whose checksum is wrong, refused before any lookup;
//     the benchmark fails if the store was asked.
//
// The key is read through the store's cache, as serve does; the benchmark
// fails if the database is asked for it again after the first request.
func BenchmarkPolicyVerification(b *testing.B) {
	st := storetest.OpenSQLite(b, filepath.Join(b.TempDir(), "peekshot.db"), nil)
	counted := &countingStore{Store: st}
	cached := store.NewCached(counted, nil)
	waitLive(b, cached)
	srv, err := NewServer(Config{
		SessionSecret:      []byte("0123456789abcdef0123456789abcdef-bench"),
		PasswordCost:       bcrypt.MinCost,
		UsageFlushInterval: time.Hour,
		TrustedProxies:     []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")},
	}, cached, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.Close(context.Background())
		cached.Close()
	})
	ctx := context.Background()
	u, err := st.CreateUser(ctx, account.NewUser{Email: "bench@example.com", Name: "Bench", PasswordHash: "x"})
	if err != nil {
		b.Fatal(err)
	}
	var ips, sites []string
	for i := range account.MaxAllowedIPs {
		ips = append(ips, fmt.Sprintf("198.51.%d.0/24", 100+i))
	}
	for i := range account.MaxAllowedTargets {
		sites = append(sites, fmt.Sprintf("*.site%d.example", i))
	}
	policy, expiry, err := account.PolicyInput{
		Expires:        "1y",
		Scopes:         []string{"screenshots", "html_to_image", "keys_read"},
		ScopesGiven:    true,
		AllowedIPs:     strings.Join(ips, "\n"),
		AllowedTargets: strings.Join(sites, "\n"),
		RateLimit:      "30",
		MonthlyBudget:  "1000",
	}.Parse(time.Now(), 60)
	if err != nil {
		b.Fatal(err)
	}
	newKey := func(p account.Policy, x account.Expiry) string {
		key, err := apikey.Generate()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.CreateAPIKey(ctx, account.NewAPIKey{UserID: u.ID, Label: "bench", Key: key, Policy: p, Expiry: x}); err != nil {
			b.Fatal(err)
		}
		return key
	}
	full, plain := newKey(policy, expiry), newKey(account.Policy{}, account.Expiry{})
	// The client the policy allows: in the last of its 20 ranges.
	client := fmt.Sprintf("198.51.%d.7", 100+account.MaxAllowedIPs-1)

	var reached bool
	mw := srv.requireAPIKey(srv.requireScope(account.ScopeScreenshots)(func(echo.Context) error { reached = true; return nil }))
	run := func(b *testing.B, key, remote string, headers ...string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/screenshots", nil)
		req.Header.Set("X-Api-Key", key)
		req.RemoteAddr = remote
		setHeaders(req, headers)
		c := srv.echo.NewContext(req, httptest.NewRecorder())
		if err := mw(c); err != nil || !reached {
			b.Fatalf("refused: %v", err)
		}
		lookups := counted.lookups.Load()
		b.ReportAllocs()
		for b.Loop() {
			c.SetRequest(req) // as it came in: a middleware may have replaced it
			if err := mw(c); err != nil {
				b.Fatal(err)
			}
		}
		if n := counted.lookups.Load() - lookups; n != 0 {
			b.Fatalf("the key was read from the database %d times: not cached", n)
		}
	}
	b.Run("full-policy", func(b *testing.B) { run(b, full, client+":41234") })
	b.Run("full-policy-via-proxy", func(b *testing.B) {
		run(b, full, "10.1.0.5:41234", "X-Forwarded-For", "203.0.113.99, "+client+", 192.0.2.10")
	})
	b.Run("default-policy", func(b *testing.B) { run(b, plain, "203.0.113.5:41234") })
	b.Run("malformed", func(b *testing.B) {
		bad := []byte(full)
		bad[len(bad)-1] ^= 1
		req := httptest.NewRequest(http.MethodPost, "/api/v1/screenshots", nil)
		req.Header.Set("X-Api-Key", string(bad))
		req.RemoteAddr = client + ":41234"
		c := srv.echo.NewContext(req, httptest.NewRecorder())
		lookups := counted.lookups.Load()
		b.ReportAllocs()
		for b.Loop() {
			c.SetRequest(req)
			if err := mw(c); err != errInvalidKey {
				b.Fatalf("err = %v, want errInvalidKey", err)
			}
		}
		if n := counted.lookups.Load() - lookups; n != 0 {
			b.Fatalf("a malformed key reached the store %d times", n)
		}
	})
}
