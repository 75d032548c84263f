package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/capture"
)

// readyTimeout bounds each check of GET /readyz.
const readyTimeout = 2 * time.Second

// handleReady answers GET /readyz for load balancers: 200 when this
// instance can serve everything (its database answers and its renderer
// has a browser running), 503 saying what is missing otherwise. GET
// /healthz, which touches neither, says only that the process is up.
func (s *Server) handleReady(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	var problems []string
	if err := s.store.Ping(ctx); err != nil {
		problems = append(problems, "database: unreachable")
	}
	switch r := s.renderer.(type) {
	case nil:
		problems = append(problems, "renderer: not configured")
	case interface{ Stats() capture.Stats }:
		if r.Stats().BrowserPID == 0 {
			problems = append(problems, "renderer: browser starting")
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		return c.String(http.StatusServiceUnavailable, strings.Join(problems, "\n")+"\n")
	}
	return c.String(http.StatusOK, "ready\n")
}
