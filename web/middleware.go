package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// Context keys.
const (
	ctxSession = "session"
	ctxUser    = "user"
	ctxKey     = "apikey"
	// ctxRendered marks an API request whose render succeeded.
	ctxRendered = "rendered"
	// ctxScopeRefused marks an API request whose key lacks the endpoint's
	// scope: a refusal of the key check, which the metrics count as such.
	ctxScopeRefused = "scope_refused"
	ctxReqID        = "request_id"
)

// maxFormBody bounds dashboard request bodies; forms here are tiny.
const maxFormBody = 64 << 10

// recoverPanics turns a panic into a logged 500 instead of a dropped connection.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "request_id", c.Get(ctxReqID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = errors.New("internal error")
			}
		}()
		return next(c)
	}
}

// logRequests writes one structured line per request: never the query
// string, headers, cookies or bodies, which may carry secrets.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		c.Set(ctxReqID, id)
		c.Response().Header().Set("X-Request-Id", id)
		if err := next(c); err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		s.cfg.Metrics.Request(c.Request().Method, c.Path(), status)
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("method", c.Request().Method),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", c.Response().Size),
			slog.Float64("ms", float64(time.Since(start).Microseconds())/1000),
		}
		if u := currentUser(c); u != nil {
			attrs = append(attrs, slog.Int64("user_id", u.ID))
		}
		if k := currentKey(c); k != nil {
			attrs = append(attrs, slog.Int64("api_key_id", k.ID))
		}
		s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// contentSecurityPolicy allows only the app's own scripts and styles: no
// inline script, no eval.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; manifest-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if isHTTPS(c.Request()) {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// limitFormBody refuses dashboard bodies over maxFormBody, with or
// without a Content-Length.
func (s *Server) limitFormBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > maxFormBody {
			return errPayloadTooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBody)
		return next(c)
	}
}

// loadSession finds the request's session and signed-in user.
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		sess, err := s.sessions.Get(r, sessionCookie)
		if err != nil {
			return fmt.Errorf("load session: %w", err)
		}
		c.Set(ctxSession, sess)
		// Whatever this request changes is logged as done from here.
		_, ip := s.client(r)
		r = r.WithContext(account.WithActor(r.Context(), account.Actor{Kind: account.ActorSession, IP: ip, UserAgent: userAgent(r)}))
		c.SetRequest(r)
		if uid := sessionUserID(sess); uid != 0 {
			u, err := s.store.UserByID(r.Context(), uid)
			switch {
			case errors.Is(err, account.ErrNotFound):
				// The account is gone; the session died with it.
			case err != nil:
				return err
			default:
				c.Set(ctxUser, &u)
			}
		}
		return next(c)
	}
}

// checkCSRF refuses state-changing requests that come from another site or
// lack the session's CSRF token (form field _csrf or header X-CSRF-Token).
func (s *Server) checkCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		if err := s.origins.Check(r); err != nil {
			return errCrossSite
		}
		token := r.Header.Get("X-CSRF-Token")
		if token == "" {
			token = r.PostFormValue("_csrf")
		}
		sess := session(c)
		if sess.IsNew || !s.sessions.validCSRF(sess, token) {
			if sessionEnded(sess) {
				// The page was left open while its session ended elsewhere
				// (sign-out, password change, time-out): nothing changes,
				// and the person is taken to sign in again.
				return s.toSignIn(c)
			}
			return errBadCSRF
		}
		return next(c)
	}
}

// sessionEnded reports whether the request's cookie named a session that
// has ended.
func sessionEnded(sess *sessions.Session) bool {
	ended, _ := sess.Values[keyEnded].(bool)
	return ended
}

// toSignIn sends a visitor without a live session to the sign-in page,
// saying why when their session ended or what they asked for was not done.
func (s *Server) toSignIn(c echo.Context) error {
	msg := ""
	switch {
	case c.Request().Method != http.MethodGet:
		msg = "You're signed out, so nothing was changed. Sign in to continue."
	case sessionEnded(session(c)):
		msg = "Your session ended. Sign in to continue."
	}
	if msg != "" {
		if err := s.flash(c, templates.FlashInfo, msg); err != nil {
			return err
		}
	}
	if isHTMX(c) {
		c.Response().Header().Set("HX-Redirect", "/login")
		return c.NoContent(http.StatusUnauthorized)
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

// requireUser sends visitors without a session to the sign-in page.
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentUser(c) == nil {
			return s.toSignIn(c)
		}
		return next(c)
	}
}

func session(c echo.Context) *sessions.Session {
	sess, _ := c.Get(ctxSession).(*sessions.Session)
	return sess
}

func currentUser(c echo.Context) *account.User {
	u, _ := c.Get(ctxUser).(*account.User)
	return u
}

// keyRequest is a request made with an API key that passed its checks:
// the key, and the client it came from.
type keyRequest struct {
	key   account.APIKey
	ip    string
	agent string
}

func currentKey(c echo.Context) *account.APIKey {
	if kr, ok := c.Get(ctxKey).(*keyRequest); ok {
		return &kr.key
	}
	return nil
}

// actingContext is the request's context carrying who acts, for the
// activity log the store writes with every change: the signed-in person
// (loadSession puts them in the request's context) or the request's API
// key. The key's actor is made here, only for a request that changes
// something: most API requests change nothing, and checking a key stays
// free of the allocations a new request context costs.
func actingContext(c echo.Context) context.Context {
	ctx := c.Request().Context()
	if kr, ok := c.Get(ctxKey).(*keyRequest); ok {
		return account.WithActor(ctx, account.Actor{Kind: account.ActorKey, KeyMasked: kr.key.Masked(), IP: kr.ip, UserAgent: kr.agent})
	}
	return ctx
}
