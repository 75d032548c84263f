package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/templates"
)

func (s *Server) handleProfile(c echo.Context) error {
	u := currentUser(c)
	active, err := s.store.CountActiveAPIKeys(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	return s.renderTab(c, http.StatusOK, templates.TabProfile, templates.ProfilePanel(templates.ProfileProps{
		CSRF: s.csrf(c), User: *u, ActiveKeys: active, Now: s.cfg.Now(),
	}))
}
