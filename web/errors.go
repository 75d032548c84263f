package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// httpError is an error with what the user should be told. For the API,
// Code is the JSON error code of SPEC §4.
type httpError struct {
	Status  int
	Code    string
	Title   string
	Message string
	// RetryAfter, in seconds, is sent as Retry-After when set.
	RetryAfter int
	// Field names the request's field that is wrong, when one is.
	Field string
}

func (e *httpError) Error() string { return strconv.Itoa(e.Status) + " " + e.Message }

var (
	errNotFound = &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "Page not found",
		Message: "There is nothing at this address. It may have been deleted, or the link may be mistyped."}
	errKeyNotFound = &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "API key not found",
		Message: "That API key doesn't exist or was deleted."}
	errBadCSRF = &httpError{Status: http.StatusForbidden, Code: "forbidden", Title: "Session expired",
		Message: "Your session expired or this page is out of date, so nothing was changed. Reload the page and try again."}
	errCrossSite = &httpError{Status: http.StatusForbidden, Code: "forbidden", Title: "Request refused",
		Message: "This request came from another site, so PeekShot refused it and changed nothing."}
	errPayloadTooLarge = &httpError{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Title: "Request too large",
		Message: "The request body is too large."}
	errStorageFull = &httpError{Status: http.StatusInsufficientStorage, Code: "storage_full", Title: "Storage full",
		Message: "PeekShot can't save changes right now because its storage is full. Nothing was changed; please try again shortly."}
	errUnavailable = &httpError{Status: http.StatusServiceUnavailable, Code: "service_unavailable", Title: "PeekShot is unavailable",
		Message: "PeekShot can't reach its database right now, so nothing was read or changed. Please try again in a few seconds.", RetryAfter: 2}
	errInternal = &httpError{Status: http.StatusInternalServerError, Code: "internal_error", Title: "Something went wrong",
		Message: "PeekShot hit an unexpected error and nothing was changed. Please try again; if it keeps happening, contact the operator."}
)

// handleError is the one place errors become responses: JSON for the API,
// a toast fragment for htmx, a page in the product's frame otherwise.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	he := classify(err)
	attrs := []any{"request_id", c.Get(ctxReqID), "status", he.Status, "path", c.Request().URL.Path}
	if he.Status >= 500 {
		s.log.Error("request failed", append(attrs, "err", err.Error())...)
	} else {
		s.log.Warn("request refused", append(attrs, "reason", he.Message)...)
	}
	if he.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(he.RetryAfter))
	}
	var werr error
	switch {
	case strings.HasPrefix(c.Request().URL.Path, "/api/"):
		werr = c.JSON(he.Status, apiErrorBody(he))
	case isHTMX(c):
		// The toast goes out of band; the element's own target stays as it was.
		c.Response().Header().Set("HX-Reswap", "none")
		werr = s.render(c, he.Status, templates.Toasts(templates.Flash{Kind: templates.FlashError, Message: he.Message}))
	default:
		werr = s.renderErrorPage(c, he)
	}
	if werr != nil {
		s.log.Error("write error response", "request_id", c.Get(ctxReqID), "err", werr.Error())
	}
}

func (s *Server) renderErrorPage(c echo.Context, he *httpError) error {
	if session(c) == nil {
		// An address no route knows never ran the session middleware; a
		// signed-in person still gets the page inside the app frame. This
		// only reads the session.
		_ = s.loadSession(func(echo.Context) error { return nil })(c)
	}
	p := templates.Page{Title: he.Title}
	if sess := session(c); sess != nil && !sess.IsNew {
		p.CSRF = s.sessions.csrfToken(sess)
	}
	if u := currentUser(c); u != nil {
		p.Viewer = &templates.Viewer{Email: u.Email, Name: u.Name, Credits: u.Credits}
	}
	return s.render(c, he.Status, templates.ErrorPage(p, templates.ErrorProps{Status: he.Status, Title: he.Title, Message: he.Message}))
}

// classify maps any error to what the user is told.
func classify(err error) *httpError {
	if he, ok := err.(*httpError); ok {
		return he // the common case, without errors.As's allocation
	}
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ee *echo.HTTPError
	if errors.As(err, &ee) {
		switch ee.Code {
		case http.StatusNotFound:
			return errNotFound
		case http.StatusMethodNotAllowed:
			return &httpError{Status: ee.Code, Code: "method_not_allowed", Title: "Method not allowed",
				Message: "This address doesn't accept that kind of request."}
		case http.StatusRequestEntityTooLarge:
			return errPayloadTooLarge
		}
		if ee.Code < 500 {
			return &httpError{Status: ee.Code, Code: "invalid_request", Title: http.StatusText(ee.Code), Message: http.StatusText(ee.Code) + "."}
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errPayloadTooLarge
	}
	if errors.Is(err, account.ErrStorageFull) {
		return errStorageFull
	}
	if errors.Is(err, account.ErrUnavailable) {
		return errUnavailable
	}
	return errInternal
}

type apiErrorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func apiErrorBody(he *httpError) apiErrorJSON {
	var b apiErrorJSON
	b.Error.Code, b.Error.Message, b.Error.Field = he.Code, he.Message, he.Field
	return b
}
