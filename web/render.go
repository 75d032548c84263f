package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render renders a component into a buffer and only then writes it, so a
// failed render never leaves half a page.
func (s *Server) render(c echo.Context, status int, comp templ.Component) error {
	buf := buffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer buffers.Put(buf)
	if err := comp.Render(c.Request().Context(), buf); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Add("Vary", "HX-Request")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "private, no-cache")
	}
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(buf.Bytes())
	return err
}

// noStore keeps a response out of every cache: it shows a secret.
func noStore(c echo.Context) {
	c.Response().Header().Set("Cache-Control", "no-store")
}

// page builds what every full page needs. It saves a new session first, so
// the CSRF token in the page belongs to a session the next request finds,
// and takes the session's pending flash messages.
func (s *Server) page(c echo.Context, title string) (templates.Page, error) {
	sess := session(c)
	p := templates.Page{Title: title}
	flashes := flashesOf(sess)
	if len(flashes) > 0 {
		delete(sess.Values, keyFlash)
	}
	if sess.IsNew || len(flashes) > 0 {
		if err := sess.Save(c.Request(), c.Response()); err != nil {
			return p, fmt.Errorf("save session: %w", err)
		}
	}
	p.CSRF = s.sessions.csrfToken(sess)
	for _, f := range flashes {
		kind, msg, _ := strings.Cut(f, "\x1f")
		p.Flashes = append(p.Flashes, templates.Flash{Kind: templates.FlashKind(kind), Message: msg})
	}
	if u := currentUser(c); u != nil {
		p.Viewer = &templates.Viewer{Email: u.Email, Name: u.Name, Credits: u.Credits}
		leaks, err := s.leakReports(c)
		if err != nil {
			return p, err
		}
		p.Leaks = leaks
	}
	return p, nil
}

// csrf is the session's token, for partials that render forms.
func (s *Server) csrf(c echo.Context) string { return s.sessions.csrfToken(session(c)) }

// flash queues a message for the page a redirect leads to. It is called
// after the request's change is committed, so a full disk must not turn
// that change into an error page saying nothing changed: the message is
// dropped instead, and the page the redirect leads to shows the result.
func (s *Server) flash(c echo.Context, kind templates.FlashKind, msg string) error {
	sess := session(c)
	before, had := sess.Values[keyFlash]
	addFlash(sess, templates.Flash{Kind: kind, Message: msg})
	err := sess.Save(c.Request(), c.Response())
	if errors.Is(err, account.ErrStorageFull) {
		if had {
			sess.Values[keyFlash] = before
		} else {
			delete(sess.Values, keyFlash)
		}
		s.log.Warn("storage full: flash message dropped", "request_id", c.Get(ctxReqID))
		return nil
	}
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// redirectWithFlash answers a plain form post: a message, then 303 back.
func (s *Server) redirectWithFlash(c echo.Context, to string, kind templates.FlashKind, msg string) error {
	if err := s.flash(c, kind, msg); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// renderTab answers a tab URL: only the panel (with the tab row out of
// band) for htmx, the whole Account page otherwise.
func (s *Server) renderTab(c echo.Context, status int, tab templates.Tab, panel templ.Component) error {
	if wantsPartial(c) {
		leaks, err := s.leakReports(c)
		if err != nil {
			return err
		}
		return s.render(c, status, templates.TabPartial(tab, panel, templates.LeakBanner{CSRF: s.csrf(c), Leaks: leaks}))
	}
	p, err := s.page(c, tab.Title())
	if err != nil {
		return err
	}
	return s.render(c, status, templates.AccountPage(p, tab, panel))
}
