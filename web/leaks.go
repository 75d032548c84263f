package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/secretscan"
	"github.com/peekshot/peekshot/templates"
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

// maxAlertBody bounds a secret-scanning alert: a batch of tokens.
const maxAlertBody = 1 << 20

var errAlertUnsigned = apiErr(http.StatusUnauthorized, "invalid_signature",
	"This alert is not signed: send the ECDSA signature of the raw body in GITHUB-PUBLIC-KEY-SIGNATURE and its key's identifier in GITHUB-PUBLIC-KEY-IDENTIFIER. Nothing was changed.")

// handleGitHubSecretScanning answers POST /api/v1/secret-scanning/github:
// a secret scanner's alert (GitHub's partner format), signed over its raw
// body by a key of PEEKSHOT_SECRET_SCANNING_KEYS. Each token that is one of
// PeekShot's keys deactivates that key at once on every instance, with
// key.leak_reported in its owner's log and a banner on their dashboard;
// the answer labels each token in the alert's order. Nothing is read or
// changed before the signature holds.
func (s *Server) handleGitHubSecretScanning(c echo.Context) error {
	keys := s.cfg.SecretScanningKeys
	if keys == nil {
		return apiErr(http.StatusNotFound, "not_found",
			"This server doesn't take secret-scanning alerts: its operator hasn't set PEEKSHOT_SECRET_SCANNING_KEYS.")
	}
	r := c.Request()
	if r.ContentLength > maxAlertBody {
		return apiErr(http.StatusRequestEntityTooLarge, "payload_too_large", "An alert may be at most 1 MiB.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxAlertBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return apiErr(http.StatusRequestEntityTooLarge, "payload_too_large", "An alert may be at most 1 MiB.")
	}
	if err != nil {
		return invalidRequest("The alert's body could not be read.")
	}
	switch err := keys.Verify(r.Header.Get(secretscan.HeaderKeyIdentifier), r.Header.Get(secretscan.HeaderSignature), body); {
	case errors.Is(err, secretscan.ErrUnsigned):
		return errAlertUnsigned
	case errors.Is(err, secretscan.ErrUnknownKey):
		return apiErr(http.StatusUnauthorized, "invalid_signature",
			"GITHUB-PUBLIC-KEY-IDENTIFIER names a key this server doesn't have (its list is PEEKSHOT_SECRET_SCANNING_KEYS). Nothing was changed.")
	case err != nil:
		return apiErr(http.StatusUnauthorized, "invalid_signature",
			"The alert's signature doesn't match its body under the key GITHUB-PUBLIC-KEY-IDENTIFIER names. Nothing was changed.")
	}
	alerts, err := secretscan.ParseAlerts(body)
	if err != nil {
		return invalidRequest(sentence(err.Error()))
	}
	_, ip := s.client(r)
	ctx := account.WithActor(r.Context(), account.Actor{Kind: account.ActorScanner, IP: ip, UserAgent: userAgent(r)})
	results := make([]secretscan.Result, len(alerts))
	for i, a := range alerts {
		sum := sha256.Sum256([]byte(a.Token))
		results[i] = secretscan.Result{TokenHash: hex.EncodeToString(sum[:]), TokenType: cleanLine(a.Type, 100), Label: secretscan.FalsePositive}
		// A string that only looks like a key (its checksum is wrong) is
		// no key: no database work for it.
		if !apikey.Valid(a.Token) {
			continue
		}
		rep, err := s.store.ReportLeakedKey(ctx, apikey.HashOf(a.Token), account.Leak{
			URL: cleanLine(a.URL, account.MaxLeakURL), Source: cleanLine(a.Source, account.MaxLeakSource)})
		if errors.Is(err, account.ErrNotFound) {
			continue
		}
		if err != nil {
			// The scanner sends the alert again; a report is idempotent.
			return err
		}
		results[i].Label = secretscan.TruePositive
		s.log.Warn("API key reported leaked: deactivated", "user_id", rep.Key.UserID, "api_key_id", rep.Key.ID,
			"request_id", c.Get(ctxReqID))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, results)
}

// cleanLine is text from outside kept as one line (see oneLine) of at
// most n bytes, cut with an ellipsis.
func cleanLine(s string, n int) string {
	s = oneLine(s)
	if len(s) <= n {
		return s
	}
	return truncateText(s, n-len("…"))
}

// handleDismissLeak answers POST /account/api-keys/{id}/dismiss-leak: the
// owner has dealt with a leak report some other way than rotating or
// deleting the key (which end it by themselves), so the banner and the
// health finding go. The key stays as it is.
func (s *Server) handleDismissLeak(c echo.Context) error {
	u := currentUser(c)
	k, err := s.ownKey(c)
	if err != nil {
		return err
	}
	if err := s.store.DismissLeakReport(c.Request().Context(), u.ID, k.ID); errors.Is(err, account.ErrNotFound) {
		return &httpError{Status: http.StatusNotFound, Code: "not_found", Title: "No leak report",
			Message: "“" + templates.KeyLabel(k) + "” has no leak report to dismiss."}
	} else if err != nil {
		return err
	}
	s.log.Info("leak report dismissed", "user_id", u.ID, "api_key_id", k.ID, "request_id", c.Get(ctxReqID))
	msg := "The leak report of “" + templates.KeyLabel(k) + "” is dismissed."
	if !k.Active {
		msg += " The key stays deactivated until you activate it."
	}
	return s.redirectWithFlash(c, "/account/api-keys", templates.FlashSuccess, msg)
}
