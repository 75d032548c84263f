// Package web is PeekShot's HTTP layer: the dashboard (sign-up, sign-in and
// the Account page with its tabs) served as templ pages and htmx partials,
// and the JSON API authenticated by API keys. Handlers parse and validate
// input, call the store and render; the rules live in store and apikey.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

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
	// RateLimit is how many renders one key may ask for a minute (default 60).
	RateLimit int
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
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server is PeekShot's HTTP handler.
type Server struct {
	cfg      Config
	store    *store.Store
	renderer Renderer
	log      *slog.Logger
	echo     *echo.Echo
	sessions *SessionStore
	reveals  *revealCache
	usage    *usageRecorder
	keys     *keyCache
	limiter  *keyLimiter
	reserved *reservations
	origins  *http.CrossOriginProtection
	dummy    []byte // a password hash to compare against when no account matches

	stop    context.CancelFunc
	stopped sync.WaitGroup
	closing sync.Once
}

// NewServer builds the server and starts its background work (usage
// flushing, session clean-up); Close stops it. A nil renderer makes the
// render endpoints answer 503.
func NewServer(cfg Config, st *store.Store, renderer Renderer, logger *slog.Logger) (*Server, error) {
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
		reveals:  newRevealCache(cfg.Now),
		usage:    newUsageRecorder(),
		keys:     newKeyCache(),
		limiter:  newKeyLimiter(cfg.RateLimit),
		reserved: newReservations(),
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
	s.stopped.Add(2)
	go func() {
		defer s.stopped.Done()
		s.every(ctx, cfg.UsageFlushInterval, "flush API key usage", s.flushUsage)
	}()
	go func() { defer s.stopped.Done(); s.every(ctx, 10*time.Minute, "clean sessions", s.cleanSessions) }()
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

// cleanSessions deletes sessions past their idle timeout or lifetime.
func (s *Server) cleanSessions(ctx context.Context) error {
	now := s.cfg.Now()
	n, err := s.store.DeleteStaleSessions(ctx, now.Add(-s.cfg.SessionIdle), now.Add(-s.cfg.SessionLifetime))
	if n > 0 {
		s.log.Info("cleaned sessions", "deleted", n)
	}
	return err
}
