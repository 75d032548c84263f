package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/templates"
)

// openAPIDocument is the API's description (OpenAPI 3.1), written by hand
// next to the code it describes: the one source for programs
// (/api/v1/openapi.json) and people (/docs/api). The web package's tests
// hold every API request and response they make to it, and fail on a route
// it lacks, so it cannot drift from the code.
//
//go:embed openapi/openapi.json
var openAPIDocument []byte

// handleOpenAPI answers GET /api/v1/openapi.json, with no key needed.
func (s *Server) handleOpenAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/json", openAPIDocument)
}

// handleAPIDocs answers GET /docs/api: the document, rendered for people.
func (s *Server) handleAPIDocs(c echo.Context) error {
	return s.render(c, http.StatusOK, templates.APIDocsPage())
}
