package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// routes lists every route in one place.
func (s *Server) routes() {
	e := s.echo
	e.Use(s.recoverPanics, s.logRequests, s.securityHeaders)

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.GET("/static/*", s.handleStatic)

	pages := e.Group("", s.limitFormBody, s.loadSession, s.checkCSRF)
	pages.GET("/", s.handleHome)
	pages.GET("/signup", s.handleSignupForm)
	pages.POST("/signup", s.handleSignup)
	pages.GET("/login", s.handleLoginForm)
	pages.POST("/login", s.handleLogin)
	pages.POST("/logout", s.handleLogout)

	account := pages.Group("/account", s.requireUser)
	account.GET("", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/account/profile") })
	account.GET("/profile", s.handleProfile)
	account.GET("/api-keys", s.handleAPIKeys)
	account.POST("/api-keys", s.handleCreateAPIKey)
	account.POST("/api-keys/:id/deactivate", s.handleSetAPIKeyActive(false))
	account.POST("/api-keys/:id/activate", s.handleSetAPIKeyActive(true))
	account.POST("/api-keys/:id/rotate", s.handleRotateAPIKey)
	account.GET("/api-keys/:id/delete", s.handleConfirmDeleteAPIKey)
	account.POST("/api-keys/:id/delete", s.handleDeleteAPIKey)
	account.DELETE("/api-keys/:id", s.handleDeleteAPIKey)
	account.GET("/coupons", s.handleCoupons)
}
