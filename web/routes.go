package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
)

// routes lists every route in one place. Middleware is attached per route
// rather than by groups, so an unknown path answers 404 and a known path
// asked with the wrong method answers 405.
func (s *Server) routes() {
	e := s.echo
	e.Use(s.recoverPanics, s.logRequests, s.securityHeaders)

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.GET("/readyz", s.handleReady)
	e.GET("/static/*", s.handleStatic)

	// The API: x-api-key only, no session, no CSRF.
	e.GET("/api/v1/me", s.handleMe, s.requireAPIKey)
	e.POST("/api/v1/screenshots", s.handleScreenshot, s.requireAPIKey, s.requireScope(account.ScopeScreenshots))
	e.POST("/api/v1/html-to-image", s.handleHTMLToImage, s.requireAPIKey, s.requireScope(account.ScopeHTMLToImage))
	// A signed link instead of x-api-key, for <img src>; a scanner's alert,
	// signed by the scanner.
	e.GET("/api/v1/screenshots", s.handleSignedScreenshot, s.requireSignedLink, s.requireScope(account.ScopeScreenshots))
	e.POST("/api/v1/secret-scanning/github", s.handleGitHubSecretScanning)
	keysRead := []echo.MiddlewareFunc{s.requireAPIKey, s.requireScope(account.ScopeKeysRead)}
	keysWrite := []echo.MiddlewareFunc{s.requireAPIKey, s.requireScope(account.ScopeKeysWrite)}
	e.GET("/api/v1/keys", s.handleListKeys, keysRead...)
	e.POST("/api/v1/keys", s.handleCreateKey, keysWrite...)
	e.GET("/api/v1/keys/:id", s.handleGetKey, keysRead...)
	e.PATCH("/api/v1/keys/:id", s.handlePatchKey, keysWrite...)
	e.DELETE("/api/v1/keys/:id", s.handleDeleteKey, keysWrite...)
	e.POST("/api/v1/keys/:id/rotate", s.handleRotateKey, keysWrite...)
	// The API's description, for programs and for people; no key needed.
	e.GET("/api/v1/openapi.json", s.handleOpenAPI)
	e.GET("/docs/api", s.handleAPIDocs)

	// Pages: a session, and a CSRF check on every state-changing request.
	// Account pages first need someone signed in: a request without (a
	// page left open after signing out) goes to the sign-in page, changing
	// nothing, rather than failing the CSRF check.
	page := []echo.MiddlewareFunc{s.limitFormBody, s.loadSession, s.checkCSRF}
	account := []echo.MiddlewareFunc{s.limitFormBody, s.loadSession, s.requireUser, s.checkCSRF}

	e.GET("/", s.handleHome, page...)
	e.GET("/signup", s.handleSignupForm, page...)
	e.POST("/signup", s.handleSignup, page...)
	e.GET("/login", s.handleLoginForm, page...)
	e.POST("/login", s.handleLogin, page...)
	e.POST("/logout", s.handleLogout, page...)

	e.GET("/account", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/account/profile") }, account...)
	e.GET("/account/profile", s.handleProfile, account...)
	e.POST("/account/profile", s.handleUpdateName, account...)
	e.POST("/account/password", s.handleChangePassword, account...)
	e.POST("/account/delete", s.handleDeleteAccount, account...)
	e.GET("/account/api-keys", s.handleAPIKeys, account...)
	e.POST("/account/api-keys", s.handleCreateAPIKey, account...)
	e.GET("/account/api-keys/:id", s.handleKeyPage, account...)
	e.POST("/account/api-keys/:id/settings", s.handleKeySettings, account...)
	e.POST("/account/api-keys/:id/expire", s.handleExpireAPIKey, account...)
	e.POST("/account/api-keys/:id/deactivate", s.handleSetAPIKeyActive(false), account...)
	e.POST("/account/api-keys/:id/activate", s.handleSetAPIKeyActive(true), account...)
	e.POST("/account/api-keys/:id/rotate", s.handleRotateAPIKey, account...)
	e.POST("/account/api-keys/:id/signing-secret", s.handleSetSigningSecret, account...)
	e.POST("/account/api-keys/:id/dismiss-leak", s.handleDismissLeak, account...)
	e.GET("/account/api-keys/:id/delete", s.handleConfirmDeleteAPIKey, account...)
	e.POST("/account/api-keys/:id/delete", s.handleDeleteAPIKey, account...)
	e.DELETE("/account/api-keys/:id", s.handleDeleteAPIKey, account...)
	e.GET("/account/coupons", s.handleCoupons, account...)
	e.GET("/account/activity", s.handleActivity, account...)
	e.GET("/account/activity.csv", s.handleActivityCSV, account...)
	e.POST("/account/coupons/redeem", s.handleRedeemCoupon, account...)
}
