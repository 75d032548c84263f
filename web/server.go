// Package web is PeekShot's HTTP layer: the dashboard (sign-up, sign-in and
// the Account page with its tabs) served as templ pages and htmx partials,
// and the JSON API authenticated by API keys. Handlers parse and validate
// input, call the store and render; the rules live in account and apikey.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/peekshot/peekshot/secretscan"
	"github.com/peekshot/peekshot/store"
)

// Config tunes the HTTP layer. Zero values take the defaults noted.
type Config struct {
	// SessionSecret signs session cookies and derives CSRF tokens (≥32 bytes).
	SessionSecret []byte
	// PasswordCost is the bcrypt cost (default 12).
	PasswordCost int
	// SessionIdle and SessionLifetime bound a session (default 24 h, 30 days).
	SessionIdle, SessionLifetime time.Duration
	// LoginFailureLimit failures in LoginFailureWindow throttle an account
	// (default 10 in 15 minutes).
	LoginFailureLimit  int
	LoginFailureWindow time.Duration
	// UsageFlushInterval is how often API key usage is written (default 1 s).
	UsageFlushInterval time.Duration
	// SweepInterval is how often stale sessions and what else has outlived
	// its use (reveals, reservations) are deleted (default 10 minutes).
	SweepInterval time.Duration
	// LifecycleInterval is how often keys rotated with grace auto are
	// retired when quiet, and ended keys logged (default 30 s).
	LifecycleInterval time.Duration
	// RateLimit is how many renders one key may ask for a minute (default
	// 60), and the most a key's own limit may be.
	RateLimit int
	// TrustedProxies are the addresses whose X-Forwarded-For says where a
	// request comes from (for keys' allowed IPs); empty trusts none.
	TrustedProxies []netip.Prefix
	// Metrics receives what monitoring counts (nil: nothing).
	Metrics Metrics
	// SignedImageCache is how many bytes of images rendered for signed
	// links each instance keeps, to answer a link again for free (default
	// 64 MiB).
	SignedImageCache int64
	// SecretScanningKeys are the public keys that sign secret-scanning
	// alerts (PEEKSHOT_SECRET_SCANNING_KEYS); nil turns the endpoint off.
	SecretScanningKeys *secretscan.Keys
	// Now replaces the clock, for tests.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if len(c.SessionSecret) < 32 {
		return errors.New("web: session secret must be at least 32 bytes")
	}
	if c.PasswordCost == 0 {
		c.PasswordCost = 12
	}
	if c.PasswordCost < bcrypt.MinCost || c.PasswordCost > bcrypt.MaxCost {
		return errors.New("web: bcrypt cost out of range")
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = 24 * time.Hour
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = 30 * 24 * time.Hour
	}
	if c.LoginFailureLimit == 0 {
		c.LoginFailureLimit = 10
	}
	if c.LoginFailureWindow == 0 {
		c.LoginFailureWindow = 15 * time.Minute
	}
	if c.RateLimit == 0 {
		c.RateLimit = 60
	}
	if c.RateLimit < 0 {
		return errors.New("web: rate limit must be positive")
	}
	if c.UsageFlushInterval == 0 {
		c.UsageFlushInterval = time.Second
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 10 * time.Minute
	}
	if c.SignedImageCache == 0 {
		c.SignedImageCache = 64 << 20
	}
	if c.LifecycleInterval == 0 {
		c.LifecycleInterval = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	return nil
}

// Server is PeekShot's HTTP handler. It keeps nothing that must hold
// across instances: sessions, credits, rate limits and pending key reveals
// live in the store, and only the usage counted since the last flush (added
// to the store, never overwriting), the store's own cache and the images
// of signed links (answered again for free, rendered again elsewhere) are
// in memory.
type Server struct {
	cfg      Config
	store    store.Store
	renderer Renderer
	log      *slog.Logger
	echo     *echo.Echo
	sessions *SessionStore
	reveals  *revealSealer
	signing  *signingSealer
	images   *imageCache
	usage    *usageRecorder
	origins  *http.CrossOriginProtection
	dummy    []byte // a password hash to compare against when no account matches

	stop    context.CancelFunc
	stopped sync.WaitGroup
	closing sync.Once
}

// NewServer builds the server and starts its background work (usage
// flushing, clean-up); Close stops it. The API's hot path reads keys
// through st, which should be a store.Cached. A nil renderer makes the
// render endpoints answer 503.
func NewServer(cfg Config, st store.Store, renderer Renderer, logger *slog.Logger) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dummy, err := hashPassword("not a real password, only for timing", cfg.PasswordCost)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		store:    st,
		renderer: renderer,
		log:      logger,
		sessions: newSessionStore(st, cfg),
		reveals:  newRevealSealer(cfg.SessionSecret),
		signing:  newSigningSealer(cfg.SessionSecret),
		images:   newImageCache(cfg.SignedImageCache),
		usage:    newUsageRecorder(),
		origins:  http.NewCrossOriginProtection(),
		dummy:    dummy,
	}
	s.echo = echo.New()
	s.echo.HideBanner = true
	s.echo.HidePort = true
	s.echo.HTTPErrorHandler = s.handleError
	s.routes()

	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.stopped.Add(3)
	go func() {
		defer s.stopped.Done()
		s.every(ctx, cfg.UsageFlushInterval, "flush API key usage", s.flushUsage)
	}()
	go func() { defer s.stopped.Done(); s.every(ctx, cfg.SweepInterval, "clean up", s.cleanUp) }()
	go func() {
		defer s.stopped.Done()
		s.every(ctx, cfg.LifecycleInterval, "key lifecycles", s.updateKeyLifecycles)
	}()
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Close stops background work and writes pending key usage. Call it after
// the HTTP server has stopped taking requests.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.closing.Do(func() {
		s.stop()
		s.stopped.Wait()
		err = s.flushUsage(ctx)
	})
	return err
}

// every runs fn every interval until ctx ends, logging what fails.
func (s *Server) every(ctx context.Context, interval time.Duration, what string, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				s.log.Error(what, "err", err)
			}
		}
	}
}

// updateKeyLifecycles retires quiet keys rotated with grace auto and logs
// the keys that ended. The usage it judges by is this instance's too, so
// it is flushed first.
func (s *Server) updateKeyLifecycles(ctx context.Context) error {
	if err := s.flushUsage(ctx); err != nil {
		return err
	}
	_, err := s.store.UpdateKeyLifecycles(ctx)
	return err
}

// cleanUp deletes sessions past their idle timeout or lifetime, and what
// else has outlived its use.
func (s *Server) cleanUp(ctx context.Context) error {
	now := s.cfg.Now()
	n, err := s.store.DeleteStaleSessions(ctx, now.Add(-s.cfg.SessionIdle), now.Add(-s.cfg.SessionLifetime))
	if n > 0 {
		s.log.Info("cleaned sessions", "deleted", n)
	}
	return errors.Join(err, s.store.Sweep(ctx))
}
