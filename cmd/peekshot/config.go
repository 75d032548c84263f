package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/peekshot/peekshot/capture"
)

// config is everything the environment can set, with its defaults.
type config struct {
	Addr                string // PEEKSHOT_ADDR, default 127.0.0.1:8080 (this machine only)
	DB                  string // PEEKSHOT_DB, default data/peekshot.db
	DatabaseURL         string // PEEKSHOT_DATABASE_URL: postgres://… puts everything on PostgreSQL instead
	SessionSecret       string // PEEKSHOT_SESSION_SECRET, else kept in <data>/session.key
	Chrome              string // PEEKSHOT_CHROME, default chromium-headless-shell where installed, else chromium
	AllowPrivateTargets bool   // PEEKSHOT_ALLOW_PRIVATE_TARGETS=1
	RateLimit           int    // PEEKSHOT_RATE_LIMIT, render requests per key per minute, default 60
	RenderConcurrency   int    // PEEKSHOT_RENDER_CONCURRENCY, default 2
	LogFormat           string // PEEKSHOT_LOG_FORMAT: text (default) or json
	// TrustedProxies (PEEKSHOT_TRUSTED_PROXIES) are the proxies whose
	// X-Forwarded-For names the client, for keys' allowed IP addresses.
	TrustedProxies []netip.Prefix
	// MetricsAddr (PEEKSHOT_METRICS_ADDR) is where a listener of its own
	// serves Prometheus metrics at /metrics; unset, there is none.
	MetricsAddr string
	// SecretScanningKeys (PEEKSHOT_SECRET_SCANNING_KEYS) is the JSON file
	// of public keys that sign secret-scanning alerts; empty turns
	// POST /api/v1/secret-scanning/github off.
	SecretScanningKeys string
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:               or(getenv("PEEKSHOT_ADDR"), "127.0.0.1:8080"),
		DB:                 or(getenv("PEEKSHOT_DB"), filepath.Join("data", "peekshot.db")),
		DatabaseURL:        getenv("PEEKSHOT_DATABASE_URL"),
		SessionSecret:      getenv("PEEKSHOT_SESSION_SECRET"),
		Chrome:             or(getenv("PEEKSHOT_CHROME"), capture.DefaultChromePath()),
		LogFormat:          or(getenv("PEEKSHOT_LOG_FORMAT"), "text"),
		MetricsAddr:        getenv("PEEKSHOT_METRICS_ADDR"),
		SecretScanningKeys: getenv("PEEKSHOT_SECRET_SCANNING_KEYS"),
	}
	var err error
	if c.AllowPrivateTargets, err = envBool(getenv, "PEEKSHOT_ALLOW_PRIVATE_TARGETS"); err != nil {
		return c, err
	}
	if c.RateLimit, err = envInt(getenv, "PEEKSHOT_RATE_LIMIT", 60, 1, 1_000_000); err != nil {
		return c, err
	}
	if c.RenderConcurrency, err = envInt(getenv, "PEEKSHOT_RENDER_CONCURRENCY", 2, 1, 64); err != nil {
		return c, err
	}
	if c.TrustedProxies, err = parsePrefixes(getenv("PEEKSHOT_TRUSTED_PROXIES")); err != nil {
		return c, fmt.Errorf("PEEKSHOT_TRUSTED_PROXIES: %w", err)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return c, fmt.Errorf("PEEKSHOT_METRICS_ADDR must be an address and port like 127.0.0.1:9090, not %q", c.MetricsAddr)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("PEEKSHOT_LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	if c.SessionSecret != "" && len(c.SessionSecret) < 32 {
		return c, errors.New("PEEKSHOT_SESSION_SECRET must be at least 32 characters")
	}
	if c.DatabaseURL != "" {
		if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
			return c, errors.New("PEEKSHOT_DATABASE_URL must be a PostgreSQL URL, postgres://user@host:5432/database (leave it unset for the SQLite file in PEEKSHOT_DB)")
		}
	}
	return c, nil
}

// parsePrefixes reads addresses and CIDR ranges separated by commas.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR range (like 10.0.0.0/8 or 127.0.0.1)", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func envBool(getenv func(string) string, name string) (bool, error) {
	switch strings.ToLower(getenv(name)) {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%s must be 1 or 0, not %q", name, getenv(name))
}

func envInt(getenv func(string) string, name string, def, min, max int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%s must be a whole number from %d to %d, not %q", name, min, max, v)
	}
	return n, nil
}

// sessionSecret returns the configured secret, or the one kept next to the
// SQLite database, creating it (0600) on first start. On PostgreSQL every
// instance must sign with the same secret, so it must be configured.
func (c config) sessionSecret() ([]byte, error) {
	if c.SessionSecret != "" {
		return []byte(c.SessionSecret), nil
	}
	if c.DatabaseURL != "" {
		return nil, errors.New("PEEKSHOT_SESSION_SECRET is required with PEEKSHOT_DATABASE_URL: every instance must share it (at least 32 characters; e.g. openssl rand -hex 32)")
	}
	path := filepath.Join(filepath.Dir(c.DB), "session.key")
	b, err := os.ReadFile(path)
	if err == nil {
		secret, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(secret) < 32 {
			return nil, fmt.Errorf("session secret in %s is damaged: delete it to make a new one (everyone will be signed out)", path)
		}
		return secret, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read session secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write session secret: %w", err)
	}
	return secret, nil
}
