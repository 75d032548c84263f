package web

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

func (s *Server) handleProfile(c echo.Context) error {
	return s.renderProfile(c, http.StatusOK, templates.ProfileProps{})
}

// profileProps fills in what the Profile tab shows around a form's state.
func (s *Server) profileProps(c echo.Context, p templates.ProfileProps) (templates.ProfileProps, error) {
	u := currentUser(c)
	active, err := s.store.CountActiveAPIKeys(c.Request().Context(), u.ID)
	if err != nil {
		return p, err
	}
	p.CSRF, p.User, p.ActiveKeys, p.Now = s.csrf(c), *u, active, s.cfg.Now()
	return p, nil
}

// renderProfile answers with the Profile tab: the whole page, or the panel
// for htmx (with any toasts).
func (s *Server) renderProfile(c echo.Context, status int, p templates.ProfileProps, flashes ...templates.Flash) error {
	p, err := s.profileProps(c, p)
	if err != nil {
		return err
	}
	if isHTMX(c) && c.Request().Method == http.MethodPost {
		return s.render(c, status, templates.ProfilePanelUpdate(p, flashes))
	}
	return s.renderTab(c, status, templates.TabProfile, templates.ProfilePanel(p))
}

// profileDone answers a successful profile action: the refreshed panel and
// a toast for htmx, a 303 back to the tab with the message otherwise.
func (s *Server) profileDone(c echo.Context, kind templates.FlashKind, msg string) error {
	if !isHTMX(c) {
		return s.redirectDone(c, templates.TabProfile.URL(), kind, msg)
	}
	return s.renderProfile(c, http.StatusOK, templates.ProfileProps{}, templates.Flash{Kind: kind, Message: msg})
}

func (s *Server) handleUpdateName(c echo.Context) error {
	u := currentUser(c)
	raw := c.Request().PostFormValue("name")
	name, msg := cleanText("Name", raw, maxNameLen)
	if msg != "" {
		return s.renderProfile(c, http.StatusUnprocessableEntity, templates.ProfileProps{
			Name: templates.NameForm{Name: displayable(raw), Error: msg},
		})
	}
	if name == u.Name {
		return s.profileDone(c, templates.FlashInfo, "Your name is unchanged.")
	}
	err := s.store.UpdateUserName(c.Request().Context(), u.ID, name)
	if errors.Is(err, account.ErrNotFound) {
		return accountGone(c)
	}
	if err != nil {
		return err
	}
	u.Name = name
	s.log.Info("name changed", "user_id", u.ID, "request_id", c.Get(ctxReqID))
	if name == "" {
		return s.profileDone(c, templates.FlashSuccess, "Your name was removed.")
	}
	return s.profileDone(c, templates.FlashSuccess, "Your name was changed to “"+name+"”.")
}

func (s *Server) handleChangePassword(c echo.Context) error {
	u := currentUser(c)
	r := c.Request()
	current, next := r.PostFormValue("current_password"), r.PostFormValue("new_password")
	fields := templates.FieldErrors{}
	if current == "" {
		fields["current_password"] = "Enter your current password."
	}
	if msg := checkNewPassword(next); msg != "" {
		fields["new_password"] = msg
	}
	if len(fields) == 0 {
		ok, err := s.verifyPassword(c, u, current)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			fields["current_password"] = "Your current password is incorrect."
		case next == current:
			fields["new_password"] = "Choose a password different from your current one."
		}
	}
	if len(fields) > 0 {
		return s.renderProfile(c, http.StatusUnprocessableEntity, templates.ProfileProps{
			Password: templates.PasswordForm{Fields: fields},
		})
	}
	hash, err := hashPassword(next, s.cfg.PasswordCost)
	if err != nil {
		return err
	}
	err = s.store.ChangePassword(r.Context(), u.ID, string(hash), account.SessionID(session(c).ID))
	if errors.Is(err, account.ErrNotFound) {
		return accountGone(c)
	}
	if err != nil {
		return err
	}
	u.PasswordHash = string(hash)
	s.log.Info("password changed; other sessions ended", "user_id", u.ID, "request_id", c.Get(ctxReqID))
	return s.profileDone(c, templates.FlashSuccess, "Password changed. You were signed out everywhere else; this browser stays signed in.")
}

func (s *Server) handleDeleteAccount(c echo.Context) error {
	u := currentUser(c)
	r := c.Request()
	password := r.PostFormValue("password")
	refuse := func(msg string) error {
		return s.renderProfile(c, http.StatusUnprocessableEntity, templates.ProfileProps{
			Delete: templates.DeleteAccountForm{Error: msg},
		})
	}
	if password == "" {
		return refuse("Enter your password to confirm. Your account was not deleted.")
	}
	ok, err := s.verifyPassword(c, u, password)
	if err != nil {
		return err
	}
	if !ok {
		return refuse("That password is incorrect. Your account was not deleted.")
	}
	// The cascade takes the keys and sessions with the account, in one
	// transaction: the keys are refused from the next request on. Not
	// found means a double submit already deleted it: done either way.
	err = s.store.DeleteUser(r.Context(), u.ID)
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		return err
	}
	s.log.Info("account deleted", "user_id", u.ID, "request_id", c.Get(ctxReqID))
	c.Set(ctxUser, nil)
	if err := s.sessions.renew(r, c.Response(), session(c), 0); err != nil {
		return err
	}
	const msg = "Your account was deleted, with its API keys and credits."
	if err := s.flash(c, templates.FlashInfo, msg); err != nil {
		return err
	}
	if isHTMX(c) {
		c.Response().Header().Set("HX-Redirect", "/signup")
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, "/signup")
}

// redirectDone answers a plain form post that succeeded: a flash, then 303
// back. When the session was ended meanwhile (the account was deleted, or
// its password changed, in another tab) the flash has nowhere to go, and
// the browser is sent to sign in instead of getting an error.
func (s *Server) redirectDone(c echo.Context, to string, kind templates.FlashKind, msg string) error {
	err := s.redirectWithFlash(c, to, kind, msg)
	if errors.Is(err, account.ErrNotFound) {
		return accountGone(c)
	}
	return err
}

// accountGone answers a request whose account was deleted while it ran
// (from another tab), as requireUser answers one without an account.
func accountGone(c echo.Context) error {
	if isHTMX(c) {
		c.Response().Header().Set("HX-Redirect", "/login")
		return c.NoContent(http.StatusUnauthorized)
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

// verifyPassword checks the signed-in user's password before a sensitive
// action. Each check counts with the sign-in attempts of the account, so a
// hijacked session can't guess the password faster than the sign-in form
// allows.
func (s *Server) verifyPassword(c echo.Context, u *account.User, password string) (bool, error) {
	ctx := c.Request().Context()
	admitted, err := s.store.AdmitLoginAttempt(ctx, u.Email, s.cfg.Now().Add(-s.cfg.LoginFailureWindow), s.cfg.LoginFailureLimit)
	if err != nil {
		return false, err
	}
	if !admitted {
		return false, s.errPasswordThrottled()
	}
	ok, err := passwordMatches([]byte(u.PasswordHash), password)
	if err != nil || ok {
		return ok, err
	}
	s.log.Warn("wrong password for a signed-in action", "user_id", u.ID, "request_id", c.Get(ctxReqID))
	s.logActivity(c, u.ID, account.EventLoginFailed, "wrong password for "+c.Request().URL.Path)
	return false, nil
}

func (s *Server) errPasswordThrottled() *httpError {
	minutes := int(math.Ceil(s.cfg.LoginFailureWindow.Minutes()))
	return &httpError{Status: http.StatusTooManyRequests, Code: "rate_limited", Title: "Too many attempts",
		Message:    "Too many wrong passwords for this account. Nothing was changed; wait " + strconv.Itoa(minutes) + " minutes and try again.",
		RetryAfter: int(s.cfg.LoginFailureWindow.Seconds())}
}
