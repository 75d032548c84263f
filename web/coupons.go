package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/templates"
)

func (s *Server) handleCoupons(c echo.Context) error {
	u := currentUser(c)
	history, err := s.store.Redemptions(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	return s.renderTab(c, http.StatusOK, templates.TabCoupons, templates.CouponsPanel(templates.CouponsProps{
		CSRF: s.csrf(c), Credits: u.Credits, Redemptions: history, Now: s.cfg.Now(),
	}))
}
