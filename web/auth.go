package web

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// loginFailed is the one message for every failed sign-in, so it tells
// nobody which emails have accounts.
const loginFailed = "Invalid email or password."

func (s *Server) handleHome(c echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/account/api-keys")
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

func (s *Server) handleSignupForm(c echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/account/api-keys")
	}
	return s.renderAuth(c, http.StatusOK, "Create your account", templates.SignupPage, templates.AuthForm{})
}

func (s *Server) handleLoginForm(c echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/account/api-keys")
	}
	return s.renderAuth(c, http.StatusOK, "Sign in", templates.LoginPage, templates.AuthForm{})
}

func (s *Server) renderAuth(c echo.Context, status int, title string, view func(templates.Page, templates.AuthForm) templ.Component, f templates.AuthForm) error {
	p, err := s.page(c, title)
	if err != nil {
		return err
	}
	f.CSRF = p.CSRF
	return s.render(c, status, view(p, f))
}

func (s *Server) handleSignup(c echo.Context) error {
	r := c.Request()
	f := templates.AuthForm{Fields: templates.FieldErrors{}}
	rawEmail := r.PostFormValue("email")
	email := normalizeEmail(rawEmail)
	password := r.PostFormValue("password")
	f.Email = email
	if !utf8.ValidString(rawEmail) {
		f.Fields["email"] = "Email contains characters that aren't valid text."
	} else if msg := checkEmail(email); msg != "" {
		f.Fields["email"] = msg
	}
	name, msg := cleanText("Name", r.PostFormValue("name"), maxNameLen)
	f.Name = name
	if msg != "" {
		f.Fields["name"] = msg
		f.Name = ""
	}
	if msg := checkNewPassword(password); msg != "" {
		f.Fields["password"] = msg
	}
	if len(f.Fields) > 0 {
		if f.Fields["email"] != "" && !validForDisplay(email) {
			f.Email = ""
		}
		f.Error = "Please fix the highlighted fields."
		return s.renderAuth(c, http.StatusUnprocessableEntity, "Create your account", templates.SignupPage, f)
	}
	hash, err := hashPassword(password, s.cfg.PasswordCost)
	if err != nil {
		return err
	}
	u, err := s.store.CreateUser(r.Context(), account.NewUser{Email: email, Name: name, PasswordHash: string(hash)})
	if errors.Is(err, account.ErrEmailTaken) {
		f.Fields["email"] = "An account with this email already exists. Sign in instead."
		return s.renderAuth(c, http.StatusUnprocessableEntity, "Create your account", templates.SignupPage, f)
	}
	if err != nil {
		return err
	}
	if err := s.sessions.renew(r, c.Response(), session(c), u.ID); err != nil {
		// An account its owner could not be signed in to (the disk filled
		// between the two writes) is undone, so the error page's "nothing
		// was changed" holds and trying again works.
		if derr := s.store.DeleteUser(r.Context(), u.ID); derr != nil {
			s.log.Error("undo sign-up", "user_id", u.ID, "request_id", c.Get(ctxReqID), "err", derr.Error())
		}
		return err
	}
	s.log.Info("account created", "user_id", u.ID, "request_id", c.Get(ctxReqID))
	return s.redirectWithFlash(c, "/account/api-keys", templates.FlashSuccess,
		"Welcome to PeekShot! Your account has 100 free credits. Create an API key to get started.")
}

func (s *Server) handleLogin(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	email := normalizeEmail(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	f := templates.AuthForm{Email: email}
	if !validForDisplay(email) || len(email) > maxEmailLen {
		f.Email = ""
	}
	if email == "" || password == "" {
		f.Error = "Enter your email and password."
		return s.renderAuth(c, http.StatusUnprocessableEntity, "Sign in", templates.LoginPage, f)
	}
	throttleKey := email
	if len(throttleKey) > maxEmailLen || !validForDisplay(throttleKey) {
		throttleKey = "invalid"
	}
	// The attempt is counted before the password is compared, so however
	// many requests race, at most LoginFailureLimit passwords are checked
	// per account per window (right ones included: see AdmitLoginAttempt).
	admitted, err := s.store.AdmitLoginAttempt(ctx, throttleKey, s.cfg.Now().Add(-s.cfg.LoginFailureWindow), s.cfg.LoginFailureLimit)
	if err != nil {
		return err
	}
	if !admitted {
		// Not logged: the failures that led here were, and anyone may send
		// attempts without end, which must not write without end into the
		// account's log.
		return s.loginThrottled(c, f)
	}
	// What can't be an address has no account: it is not even looked up
	// (PostgreSQL refuses a NUL in text), and is compared against the
	// dummy hash all the same, so the answer takes as long.
	var u account.User
	hash := s.dummy
	if checkEmail(email) == "" {
		var err error
		u, err = s.store.UserByEmail(ctx, email)
		if err == nil {
			hash = []byte(u.PasswordHash)
		} else if !errors.Is(err, account.ErrNotFound) {
			return err
		}
	}
	ok, err := passwordMatches(hash, password)
	if err != nil {
		return err
	}
	if !ok || u.ID == 0 {
		s.log.Warn("sign-in failed", "request_id", c.Get(ctxReqID))
		if u.ID != 0 {
			s.logActivity(c, u.ID, account.EventLoginFailed, "wrong password")
		}
		f.Error = loginFailed
		return s.renderAuth(c, http.StatusUnprocessableEntity, "Sign in", templates.LoginPage, f)
	}
	if err := s.sessions.renew(r, c.Response(), session(c), u.ID); err != nil {
		return err
	}
	s.log.Info("signed in", "user_id", u.ID, "request_id", c.Get(ctxReqID))
	s.logActivity(c, u.ID, account.EventLoginSucceeded, "")
	return c.Redirect(http.StatusSeeOther, "/account/api-keys")
}

func (s *Server) loginThrottled(c echo.Context, f templates.AuthForm) error {
	minutes := int(math.Ceil(s.cfg.LoginFailureWindow.Minutes()))
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(s.cfg.LoginFailureWindow.Seconds())))
	f.Error = "Too many sign-in attempts for this account. Wait " + strconv.Itoa(minutes) + " minutes and try again."
	return s.renderAuth(c, http.StatusTooManyRequests, "Sign in", templates.LoginPage, f)
}

func (s *Server) handleLogout(c echo.Context) error {
	sess := session(c)
	if err := s.sessions.renew(c.Request(), c.Response(), sess, 0); err != nil {
		return err
	}
	return s.redirectWithFlash(c, "/login", templates.FlashInfo, "You've been signed out.")
}

// validForDisplay reports whether a typed value may be echoed back into a
// form (it is escaped either way; invalid UTF-8 would be mangled).
func validForDisplay(s string) bool {
	for _, r := range s {
		if r == 0xFFFD || r == 0 {
			return false
		}
	}
	return true
}

// logActivity appends an entry that no change of the store writes itself
// (a sign-in): a failure to write it is logged, and does not fail the
// request it describes.
func (s *Server) logActivity(c echo.Context, userID int64, ev account.Event, detail string) {
	if err := s.store.LogActivity(c.Request().Context(), userID, ev, detail); err != nil {
		s.log.Warn("log activity", "event", string(ev), "request_id", c.Get(ctxReqID), "err", err.Error())
	}
}
