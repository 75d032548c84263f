package web

import (
	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
)

// ctxLeaks holds the signed-in user's leak reports once read in a request.
const ctxLeaks = "leaks"

// leakReports are the signed-in user's keys reported leaked and not yet
// dealt with, read once per request: the banner of every Account page
// and the API Keys tab's health both show them.
func (s *Server) leakReports(c echo.Context) ([]account.LeakReport, error) {
	if l, ok := c.Get(ctxLeaks).([]account.LeakReport); ok {
		return l, nil
	}
	l, err := s.store.LeakReports(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return nil, err
	}
	if l == nil {
		l = []account.LeakReport{}
	}
	c.Set(ctxLeaks, l)
	return l, nil
}
