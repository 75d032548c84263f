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
	reveal, err := s.takeSigningReveal(c, k)
	if err != nil {
		return err
	}
	return s.renderKeyPageReveal(c, http.StatusOK, k, s.settingsFormOf(k), reveal)
}

// ownKeyWithUsage is one of the user's keys as the list shows it: with
// what it spent this month and its usage not yet flushed.
func (s *Server) ownKeyWithUsage(c echo.Context) (account.APIKey, error) {
	return s.pathKeyWithUsage(c, currentUser(c).ID)
}

func (s *Server) renderKeyPage(c echo.Context, status int, k account.APIKey, form templates.SettingsForm, flashes ...templates.Flash) error {
	return s.renderKeyPageReveal(c, status, k, form, nil, flashes...)
}

// renderKeyPageReveal is renderKeyPage showing a new signing secret once
// (reveal, unless nil), kept out of every cache.
func (s *Server) renderKeyPageReveal(c echo.Context, status int, k account.APIKey, form templates.SettingsForm, reveal *templates.SigningReveal, flashes ...templates.Flash) error {
	p, err := s.keyPageProps(c, k, form)
	if err != nil {
		return err
	}
	p.SigningReveal = reveal
	if reveal != nil {
		noStore(c)
	}
	if isHTMX(c) && c.Request().Method == http.MethodPost {
		return s.render(c, status, templates.KeyPanelUpdate(p, flashes))
	}
	return s.renderTab(c, status, templates.TabAPIKeys, templates.KeyPanel(p))
}

// keyPageProps is everything the key's page shows around its settings
// form: its signing secret, the last 30 days and its latest activity.
func (s *Server) keyPageProps(c echo.Context, k account.APIKey, form templates.SettingsForm) (templates.KeyPageProps, error) {
	ctx := c.Request().Context()
	now := s.cfg.Now()
	u := currentUser(c)
	p := templates.KeyPageProps{CSRF: s.csrf(c), Key: k, Now: now, Settings: form, APIBase: baseURL(c.Request())}
	switch secret, err := s.store.SigningSecret(ctx, u.ID, k.ID); {
	case err == nil:
		p.Signing = &secret
	case !errors.Is(err, account.ErrNotFound):
		return p, err
	}
	days, err := s.store.KeyUsageDays(ctx, u.ID, k.ID, now.AddDate(0, 0, -29))
	if err != nil {
		return p, err
	}
	p.Chart = templates.NewUsageChart(s.usage.overlayDays(k.ID, days), now)
	if p.Recent, err = s.store.Activity(ctx, u.ID, account.ActivityFilter{KeyID: k.ID, Limit: 8}); err != nil {
		return p, err
	}
	return p, nil
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
	// An expired key's page has no settings form to show messages in:
	// whatever was sent, the answer is that it can't change.
	if k.Status(s.cfg.Now()) == account.KeyExpired {
		return expiredKeySettings(k)
	}
	r := c.Request()
	in := policyInput(r)
	rawLabel := r.PostFormValue("label")
	current := account.Expiry{At: k.ExpiresAt, Lifetime: k.ExpiryLifetime}
	ks, labelMsg, errs := s.keySettingsOf(rawLabel, in, &current)
	if labelMsg != "" || errs != nil {
		form := templates.SettingsForm{Label: displayable(rawLabel), LabelError: labelMsg, Policy: s.policyForm(in, errs, true, current)}
		return s.renderKeyPage(c, http.StatusUnprocessableEntity, k, form)
	}
	updated, err := s.changeKeySettings(c, u.ID, k, ks)
	if err != nil {
		return settingsChangeRefused(err, k)
	}
	msg := "Settings of “" + templates.KeyLabel(updated) + "” saved. They apply from the key's next request."
	if !isHTMX(c) {
		return s.redirectWithFlash(c, keyPath(k.ID), templates.FlashSuccess, msg)
	}
	// The stored row, with the usage of this instance not yet flushed
	// (count, first and last use, last client) and the month's spending.
	updated = s.usage.overlayKey(updated)
	updated.SpentThisMonth = k.SpentThisMonth
	return s.renderKeyPage(c, http.StatusOK, updated, s.settingsFormOf(updated),
		templates.Flash{Kind: templates.FlashSuccess, Message: msg})
}

// settingsChangeRefused is the page's answer to a settings change of k the
// store refused: gone, or expired meanwhile.
func settingsChangeRefused(err error, k account.APIKey) error {
	switch {
	case errors.Is(err, account.ErrNotFound):
		return errKeyNotFound
	case errors.Is(err, account.ErrKeyExpired):
		return expiredKeySettings(k)
	}
	return err
}

// expiredKeySettings refuses a change to an expired key.
func expiredKeySettings(k account.APIKey) error {
	return &httpError{Status: http.StatusConflict, Code: "conflict", Title: "Key expired",
		Message: "“" + templates.KeyLabel(k) + "” has expired, so its settings can't change. Create a new key instead."}
}

// handleExpireAPIKey answers POST /account/api-keys/{id}/expire: key
// health's one-click fix for a key that never expires. It gives the key
// the expiry in `expires` (90d, a lifetime, or "date" with expires_date)
// and keeps everything else.
func (s *Server) handleExpireAPIKey(c echo.Context) error {
	u := currentUser(c)
	k, err := s.ownKey(c)
	if err != nil {
		return err
	}
	if k.Status(s.cfg.Now()) == account.KeyExpired {
		return expiredKeySettings(k) // before any message about the form
	}
	r := c.Request()
	expiry, err := account.ParseExpiry(r.PostFormValue("expires"), r.PostFormValue("expires_date"), s.cfg.Now())
	if err == nil && expiry.At.IsZero() {
		err = errors.New("choose when the key expires: 7 days, 30 days, 90 days, 1 year, or a date")
	}
	if err != nil {
		return &httpError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Title: "Choose an expiry",
			Message: "Nothing was changed: " + err.Error() + "."}
	}
	updated, err := s.changeKeySettings(c, u.ID, k, account.KeySettings{Label: k.Label, Policy: k.Policy, Expiry: expiry})
	if err != nil {
		return settingsChangeRefused(err, k)
	}
	msg := "“" + templates.KeyLabel(updated) + "” now expires on " + templates.ExactTime(updated.ExpiresAt) + "."
	back := "/account/api-keys"
	if r.PostFormValue("next") == "key" {
		back = keyPath(k.ID)
	}
	return s.redirectWithFlash(c, back, templates.FlashSuccess, msg)
}
