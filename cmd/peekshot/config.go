package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/peekshot/peekshot/capture"
)

// config is everything the environment can set, with its defaults.
type config struct {
	Addr                string // PEEKSHOT_ADDR, default :8080
	DB                  string // PEEKSHOT_DB, default data/peekshot.db
	SessionSecret       string // PEEKSHOT_SESSION_SECRET, else kept in <data>/session.key
	Chrome              string // PEEKSHOT_CHROME, default chromium-headless-shell where installed, else chromium
	AllowPrivateTargets bool   // PEEKSHOT_ALLOW_PRIVATE_TARGETS=1
	RateLimit           int    // PEEKSHOT_RATE_LIMIT, render requests per key per minute, default 60
	RenderConcurrency   int    // PEEKSHOT_RENDER_CONCURRENCY, default 2
	LogFormat           string // PEEKSHOT_LOG_FORMAT: text (default) or json
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:          or(getenv("PEEKSHOT_ADDR"), ":8080"),
		DB:            or(getenv("PEEKSHOT_DB"), filepath.Join("data", "peekshot.db")),
		SessionSecret: getenv("PEEKSHOT_SESSION_SECRET"),
		Chrome:        or(getenv("PEEKSHOT_CHROME"), capture.DefaultChromePath()),
		LogFormat:     or(getenv("PEEKSHOT_LOG_FORMAT"), "text"),
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
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("PEEKSHOT_LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	if c.SessionSecret != "" && len(c.SessionSecret) < 32 {
		return c, errors.New("PEEKSHOT_SESSION_SECRET must be at least 32 characters")
	}
	return c, nil
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
// database, creating it (0600) on first start.
func (c config) sessionSecret() ([]byte, error) {
	if c.SessionSecret != "" {
		return []byte(c.SessionSecret), nil
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
