package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/signedlink"
	"github.com/peekshot/peekshot/templates"
)

// keySigningReveal is the session's field for a new signing secret on its
// way to its key's page (see holdRevealAs).
const keySigningReveal = "signing-reveal"

// exampleLinkLife is how long the example link shown with a new signing
// secret works.
const exampleLinkLife = 24 * time.Hour

// handleSetSigningSecret answers POST /account/api-keys/{id}/signing-secret:
// a new signing secret for the key's signed links, replacing the one it
// had (the page asks first), shown once like a new key. It is stored
// sealed; links signed with the old one are refused from the next request
// on, on every instance (the store announces the change to every cache).
func (s *Server) handleSetSigningSecret(c echo.Context) error {
	u := currentUser(c)
	k, err := s.ownKeyWithUsage(c)
	if err != nil {
		return err
	}
	secret, err := apikey.GenerateSigningSecret()
	if err != nil {
		return err
	}
	sealed, err := s.signing.seal(secret, k.ID)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	_, rotated, err := s.store.SetSigningSecret(ctx, u.ID, k.ID, account.NewSigningSecret{
		Prefix: apikey.DisplayPrefix(secret), Last4: apikey.Last4(secret), Sealed: sealed})
	switch {
	case errors.Is(err, account.ErrNotFound):
		return errKeyNotFound
	case errors.Is(err, account.ErrKeyExpired):
		return expiredKeySigning(k)
	case err != nil:
		return err
	}
	s.log.Info("signing secret set", "user_id", u.ID, "api_key_id", k.ID, "rotated", rotated, "request_id", c.Get(ctxReqID))
	msg := "Signing secret created for “" + templates.KeyLabel(k) + "”. Copy it now: it is shown once."
	if rotated {
		msg = "Signing secret of “" + templates.KeyLabel(k) + "” rotated: links signed with the old one no longer work."
	}
	if isHTMX(c) {
		return s.renderKeyPageReveal(c, http.StatusOK, k, s.settingsFormOf(k), s.signingRevealFor(c, k.ID, secret, rotated),
			templates.Flash{Kind: templates.FlashSuccess, Message: msg})
	}
	sess := session(c)
	err = s.holdRevealAs(c, keySigningReveal, pendingReveal{KeyID: k.ID, Key: secret, Rotated: rotated})
	if err == nil {
		addFlash(sess, templates.Flash{Kind: templates.FlashSuccess, Message: msg})
		err = sess.Save(c.Request(), c.Response())
	}
	if errors.Is(err, account.ErrStorageFull) {
		// Stored, but it can't be carried across the redirect: show it in
		// this response, once, rather than an error over a secret nobody
		// would ever see.
		delete(sess.Values, keySigningReveal)
		delete(sess.Values, keyFlash)
		return s.renderKeyPageReveal(c, http.StatusOK, k, s.settingsFormOf(k), s.signingRevealFor(c, k.ID, secret, rotated))
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, keyPath(k.ID))
}

// takeSigningReveal is the new signing secret held for this session and
// this key, once, or nil.
func (s *Server) takeSigningReveal(c echo.Context, k account.APIKey) (*templates.SigningReveal, error) {
	if _, ok := session(c).Values[keySigningReveal]; !ok {
		return nil, nil
	}
	pr, err := s.takeRevealAs(c, keySigningReveal)
	if err != nil || pr == nil || pr.KeyID != k.ID || !apikey.ValidSigningSecret(pr.Key) {
		return nil, err
	}
	return s.signingRevealFor(c, k.ID, pr.Key, pr.Rotated), nil
}

// signingRevealFor shows a new secret with a link signed with it, for the
// server the person is looking at.
func (s *Server) signingRevealFor(c echo.Context, keyID int64, secret string, rotated bool) *templates.SigningReveal {
	q := signedlink.Sign(secret, keyID, s.cfg.Now().Add(exampleLinkLife),
		url.Values{"url": {"https://example.com"}, "width": {"1280"}, "height": {"720"}})
	return &templates.SigningReveal{Secret: secret, Rotated: rotated, ExampleURL: baseURL(c.Request()) + "/api/v1/screenshots?" + q}
}

// settingsFormOf is a key's settings form as its page first shows it.
func (s *Server) settingsFormOf(k account.APIKey) templates.SettingsForm {
	return templates.SettingsForm{Label: k.Label, Policy: templates.PolicyFormOf(k, s.cfg.RateLimit, s.cfg.Now())}
}

// expiredKeySigning refuses a signing secret to an expired key.
func expiredKeySigning(k account.APIKey) error {
	return &httpError{Status: http.StatusConflict, Code: "conflict", Title: "Key expired",
		Message: "“" + templates.KeyLabel(k) + "” has expired, so it can't sign links. Create a new key instead."}
}
