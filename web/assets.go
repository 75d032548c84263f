package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/static"
)

// handleStatic serves embedded assets. URLs carry a content hash (?v=), so
// a versioned asset is cached for a year; an unversioned one is revalidated.
func (s *Server) handleStatic(c echo.Context) error {
	name := strings.TrimPrefix(c.Param("*"), "/")
	if name == "" || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".go") {
		return errNotFound
	}
	if c.QueryParam("v") != "" {
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
	}
	if _, err := static.FS().Open(name); err != nil {
		return errNotFound
	}
	http.ServeFileFS(c.Response(), c.Request(), static.FS(), name)
	return nil
}
