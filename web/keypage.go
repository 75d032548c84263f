package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// keyPath is a key's page.
func keyPath(id int64) string { return "/account/api-keys/" + strconv.FormatInt(id, 10) }

// handleKeyPage answers GET /account/api-keys/{id}: the key's page inside
// the API Keys tab.
func (s *Server) handleKeyPage(c echo.Context) error {
	k, err := s.ownKeyWithUsage(c)
	if err != nil {
		return err
	}
	return s.renderKeyPage(c, http.StatusOK, k, templates.SettingsForm{Label: k.Label, Policy: templates.PolicyFormOf(k, s.cfg.RateLimit, s.cfg.Now())})
}

// ownKeyWithUsage is one of the user's keys as the list shows it: with
// what it spent this month and its usage not yet flushed.
func (s *Server) ownKeyWithUsage(c echo.Context) (account.APIKey, error) {
	id, err := keyID(c)
	if err != nil {
		return account.APIKey{}, err
	}
	keys, err := s.store.APIKeys(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return account.APIKey{}, err
	}
	for _, k := range keys {
		if k.ID == id {
			one := []account.APIKey{k}
			s.usage.overlay(one)
			return one[0], nil
		}
	}
	return account.APIKey{}, errKeyNotFound
}

func (s *Server) renderKeyPage(c echo.Context, status int, k account.APIKey, form templates.SettingsForm, flashes ...templates.Flash) error {
	p := templates.KeyPageProps{CSRF: s.csrf(c), Key: k, Now: s.cfg.Now(), Settings: form}
	if isHTMX(c) && c.Request().Method == http.MethodPost {
		return s.render(c, status, templates.KeyPanelUpdate(p, flashes))
	}
	return s.renderTab(c, status, templates.TabAPIKeys, templates.KeyPanel(p))
}

// handleKeySettings answers POST /account/api-keys/{id}/settings: the key's
// label and policy. Bad values re-render the form with a message each and
// change nothing; a change applies to the key's very next request, on
// every instance (the store announces it to every cache).
func (s *Server) handleKeySettings(c echo.Context) error {
	u := currentUser(c)
	k, err := s.ownKeyWithUsage(c)
	if err != nil {
		return err
	}
	r := c.Request()
	in := policyInput(r)
	rawLabel := r.PostFormValue("label")
	label, labelMsg := cleanText("Label", rawLabel, maxLabelLen)
	current := account.Expiry{At: k.ExpiresAt, Lifetime: k.ExpiryLifetime}
	policy, expiry, errs := s.parsePolicy(in, &current)
	if labelMsg != "" || errs != nil {
		form := templates.SettingsForm{Label: displayable(rawLabel), LabelError: labelMsg, Policy: s.policyForm(in, errs, true, current)}
		return s.renderKeyPage(c, http.StatusUnprocessableEntity, k, form)
	}
	updated, err := s.store.UpdateAPIKeySettings(r.Context(), u.ID, k.ID, account.KeySettings{Label: label, Policy: policy, Expiry: expiry})
	switch {
	case errors.Is(err, account.ErrNotFound):
		return errKeyNotFound
	case errors.Is(err, account.ErrKeyExpired):
		return &httpError{Status: http.StatusConflict, Code: "conflict", Title: "Key expired",
			Message: "“" + templates.KeyLabel(k) + "” has expired, so its settings can't change. Create a new key instead."}
	case err != nil:
		return err
	}
	s.log.Info("API key settings changed", "user_id", u.ID, "api_key_id", k.ID, "request_id", c.Get(ctxReqID))
	msg := "Settings of “" + templates.KeyLabel(updated) + "” saved. They apply from the key's next request."
	if !isHTMX(c) {
		return s.redirectWithFlash(c, keyPath(k.ID), templates.FlashSuccess, msg)
	}
	updated.RequestCount, updated.LastUsedAt, updated.SpentThisMonth = k.RequestCount, k.LastUsedAt, k.SpentThisMonth
	return s.renderKeyPage(c, http.StatusOK, updated,
		templates.SettingsForm{Label: updated.Label, Policy: templates.PolicyFormOf(updated, s.cfg.RateLimit, s.cfg.Now())},
		templates.Flash{Kind: templates.FlashSuccess, Message: msg})
}
