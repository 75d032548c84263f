package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

func (s *Server) handleAPIKeys(c echo.Context) error {
	if c.QueryParam("part") == "list" && wantsPartial(c) {
		return s.renderKeyList(c)
	}
	var reveal *templates.Reveal
	pr, err := s.takeReveal(c)
	if err != nil {
		return err
	}
	if pr != nil {
		if reveal, err = s.revealFor(c, pr.Key, pr.KeyID, pr.ReplacedID); err != nil {
			return err
		}
	}
	return s.renderAPIKeys(c, http.StatusOK, reveal, templates.CreateKeyForm{})
}

// renderKeyList answers the list's refresh when the tab comes back into
// view (usage moved while the person was away, or another tab changed the
// keys), with key health as it now is. keep is the key whose value the page still shows: its row is kept
// where it is, since the value itself is gone from the server.
func (s *Server) renderKeyList(c echo.Context) error {
	props, err := s.apiKeysProps(c, nil, templates.CreateKeyForm{})
	if err != nil {
		return err
	}
	if keep, err := strconv.ParseInt(c.QueryParam("keep"), 10, 64); err == nil {
		props.KeepReveal = keep
	}
	return s.render(c, http.StatusOK, templates.KeyListRefresh(props))
}

// revealFor describes a just-created key, and the key it replaced.
func (s *Server) revealFor(c echo.Context, key string, keyID, replacedID int64) (*templates.Reveal, error) {
	r := &templates.Reveal{Key: key, KeyID: keyID}
	if replacedID != 0 {
		old, err := s.store.APIKey(c.Request().Context(), currentUser(c).ID, replacedID)
		if err != nil && !errors.Is(err, account.ErrNotFound) {
			return nil, err
		}
		if err == nil {
			r.Replaced = &old
		}
	}
	return r, nil
}

// apiKeysProps loads the tab's keys (one query) with unflushed usage.
func (s *Server) apiKeysProps(c echo.Context, reveal *templates.Reveal, form templates.CreateKeyForm) (templates.APIKeysProps, error) {
	keys, err := s.keysWithUsage(c, currentUser(c).ID)
	if err != nil {
		return templates.APIKeysProps{}, err
	}
	if form.Policy.RateMax == 0 {
		form.Policy.RateMax, form.Policy.Today = s.cfg.RateLimit, s.cfg.Now()
	}
	now := s.cfg.Now()
	ips, err := s.store.KeyIPsPerDay(c.Request().Context(), currentUser(c).ID, now.Add(-account.ManyIPsWithin), account.ManyIPs)
	if err != nil {
		return templates.APIKeysProps{}, err
	}
	leaks, err := s.leakReports(c)
	if err != nil {
		return templates.APIKeysProps{}, err
	}
	return templates.APIKeysProps{
		CSRF: s.csrf(c), Keys: keys, Now: now, Reveal: reveal, Create: form, BaseURL: baseURL(c.Request()),
		Findings: account.Health(keys, ips, leaks, now),
	}, nil
}

func (s *Server) renderAPIKeys(c echo.Context, status int, reveal *templates.Reveal, form templates.CreateKeyForm) error {
	props, err := s.apiKeysProps(c, reveal, form)
	if err != nil {
		return err
	}
	if reveal != nil {
		noStore(c)
	}
	return s.renderTab(c, status, templates.TabAPIKeys, templates.APIKeysPanel(props))
}

// renderKeysPanel answers an htmx action with the whole panel.
func (s *Server) renderKeysPanel(c echo.Context, status int, reveal *templates.Reveal, form templates.CreateKeyForm, flashes ...templates.Flash) error {
	props, err := s.apiKeysProps(c, reveal, form)
	if err != nil {
		return err
	}
	if reveal != nil {
		noStore(c)
	}
	return s.render(c, status, templates.KeysPanelUpdate(props, flashes))
}

func (s *Server) handleCreateAPIKey(c echo.Context) error {
	u := currentUser(c)
	r := c.Request()
	in := policyInput(r)
	rawLabel := r.PostFormValue("label")
	ks, msg, errs := s.keySettingsOf(rawLabel, in, nil)
	if msg != "" || errs != nil {
		form := templates.CreateKeyForm{Label: displayable(rawLabel), Error: msg, Policy: s.policyForm(in, errs, false, account.Expiry{})}
		if msg == "" {
			form.Label = ks.Label
		}
		return s.createKeyFailed(c, form)
	}
	key, k, err := s.createKey(c, u.ID, ks)
	if errors.Is(err, account.ErrKeyLimit) {
		return s.createKeyFailed(c, templates.CreateKeyForm{Label: ks.Label, Policy: s.policyForm(in, nil, false, account.Expiry{}),
			Error: "You've reached the limit of " + strconv.Itoa(account.MaxAPIKeys) + " API keys. Delete a key you no longer use to create another."})
	}
	if err != nil {
		return err
	}
	return s.showNewKey(c, key, k.ID, 0, "")
}

// showNewKey shows a new key once: in the htmx response itself, or, for a
// plain form post, on the page the 303 leads to, whichever instance serves
// it (held sealed in the store until then).
func (s *Server) showNewKey(c echo.Context, key string, keyID, replacedID int64, msg string) error {
	if isHTMX(c) {
		r, err := s.revealFor(c, key, keyID, replacedID)
		if err != nil {
			return err
		}
		var flashes []templates.Flash
		if msg != "" {
			flashes = append(flashes, templates.Flash{Kind: templates.FlashSuccess, Message: msg})
		}
		return s.renderKeysPanel(c, http.StatusOK, r, templates.CreateKeyForm{}, flashes...)
	}
	sess := session(c)
	err := s.holdReveal(c, pendingReveal{KeyID: keyID, Key: key, ReplacedID: replacedID})
	if err == nil {
		if msg != "" {
			addFlash(sess, templates.Flash{Kind: templates.FlashSuccess, Message: msg})
		}
		err = sess.Save(c.Request(), c.Response())
	}
	if errors.Is(err, account.ErrStorageFull) {
		// The key is stored, but it can't be carried across the redirect
		// (the disk is full): show it in this response, once, rather than
		// a 507 over a key nobody would ever see.
		delete(sess.Values, keyReveal)
		delete(sess.Values, keyFlash)
		s.log.Warn("storage full: new key shown without a redirect", "request_id", c.Get(ctxReqID))
		r, err := s.revealFor(c, key, keyID, replacedID)
		if err != nil {
			return err
		}
		return s.renderAPIKeys(c, http.StatusOK, r, templates.CreateKeyForm{})
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/api-keys")
}

func (s *Server) createKeyFailed(c echo.Context, form templates.CreateKeyForm) error {
	if isHTMX(c) {
		return s.renderKeysPanel(c, http.StatusUnprocessableEntity, nil, form)
	}
	return s.renderAPIKeys(c, http.StatusUnprocessableEntity, nil, form)
}

// keyID parses the :id path parameter; anything else is a 404.
func keyID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errKeyNotFound
	}
	return id, nil
}

// ownKey loads one of the signed-in user's keys, or 404.
func (s *Server) ownKey(c echo.Context) (account.APIKey, error) {
	id, err := keyID(c)
	if err != nil {
		return account.APIKey{}, err
	}
	k, err := s.store.APIKey(c.Request().Context(), currentUser(c).ID, id)
	if errors.Is(err, account.ErrNotFound) {
		return account.APIKey{}, errKeyNotFound
	}
	return k, err
}

func (s *Server) handleSetAPIKeyActive(active bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := currentUser(c)
		id, err := keyID(c)
		if err != nil {
			return err
		}
		k, err := s.setKeyActive(c, u.ID, id, active)
		switch {
		case errors.Is(err, account.ErrNotFound):
			return errKeyNotFound
		case errors.Is(err, account.ErrKeyExpired):
			return &httpError{Status: http.StatusConflict, Code: "conflict", Title: "Key expired",
				Message: "“" + templates.KeyLabel(k) + "” has expired and can't be turned back on. Use its replacement or create a new key."}
		case err != nil:
			return err
		}
		msg := "“" + templates.KeyLabel(k) + "” deactivated. Requests with it are refused until you activate it again."
		if active {
			msg = "“" + templates.KeyLabel(k) + "” activated. It works again right away."
		}
		if !isHTMX(c) {
			back := "/account/api-keys"
			if c.Request().PostFormValue("next") == "key" {
				back = keyPath(k.ID)
			}
			return s.redirectWithFlash(c, back, templates.FlashSuccess, msg)
		}
		// Key health changes with the key: it is sent again.
		props, err := s.apiKeysProps(c, nil, templates.CreateKeyForm{})
		if err != nil {
			return err
		}
		return s.render(c, http.StatusOK, templates.KeyRowUpdate(props, s.usage.overlayKey(k),
			templates.Flash{Kind: templates.FlashSuccess, Message: msg}))
	}
}

func (s *Server) handleRotateAPIKey(c echo.Context) error {
	u := currentUser(c)
	id, err := keyID(c)
	if err != nil {
		return err
	}
	grace, ok := graces[c.Request().PostFormValue("grace")]
	if !ok {
		return &httpError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Title: "Choose a grace period",
			Message: "Choose how long the old key keeps working: immediately, 1 hour, 24 hours, 7 days, or until it goes quiet (auto)."}
	}
	next, old, repl, err := s.rotateKey(c, u.ID, id, grace)
	if err != nil {
		return s.rotateRefused(c, u.ID, id, err)
	}
	msg := "“" + templates.KeyLabel(old) + "” rotated. " + graceText(grace)
	return s.showNewKey(c, next, repl.ID, old.ID, msg)
}

// rotateRefused says why a key could not be rotated.
func (s *Server) rotateRefused(c echo.Context, userID, keyID int64, err error) error {
	if errors.Is(err, account.ErrNotFound) {
		return errKeyNotFound
	}
	name := "This key"
	if k, kerr := s.store.APIKey(c.Request().Context(), userID, keyID); kerr == nil {
		name = "“" + templates.KeyLabel(k) + "”"
	}
	switch {
	case errors.Is(err, account.ErrKeyExpired):
		return &httpError{Status: http.StatusConflict, Code: "conflict", Title: "Key expired",
			Message: name + " has already expired; create a new key instead."}
	case errors.Is(err, account.ErrAlreadyRotated):
		return &httpError{Status: http.StatusConflict, Code: "conflict", Title: "Key already rotated",
			Message: name + " was already rotated; its replacement is in the list."}
	case errors.Is(err, account.ErrKeyLimit):
		return &httpError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Title: "Key limit reached",
			Message: "You have " + strconv.Itoa(account.MaxAPIKeys) + " keys, the most an account can hold. Rotate with “Stop immediately”, or delete a key first."}
	}
	return err
}

// graceText says what becomes of a rotated key.
func graceText(g account.Grace) string {
	switch {
	case g.Auto:
		return "The old key keeps working until an hour after its last use once the new key has been used, 7 days at the latest."
	case g.For == 0:
		return "The old key stopped working."
	}
	return "The old key keeps working for " + g.Period() + "."
}

func (s *Server) handleConfirmDeleteAPIKey(c echo.Context) error {
	k, err := s.ownKey(c)
	if err != nil {
		return err
	}
	return s.renderTab(c, http.StatusOK, templates.TabAPIKeys,
		templates.ConfirmDeletePanel(templates.ConfirmDeleteProps{CSRF: s.csrf(c), Key: k}))
}

func (s *Server) handleDeleteAPIKey(c echo.Context) error {
	u := currentUser(c)
	k, err := s.ownKey(c)
	if err != nil {
		return err
	}
	err = s.deleteKey(c, u.ID, k.ID)
	if errors.Is(err, account.ErrNotFound) {
		return errKeyNotFound
	}
	if err != nil {
		return err
	}
	msg := "“" + templates.KeyLabel(k) + "” deleted. Requests with it are refused from now on."
	if !isHTMX(c) {
		return s.redirectWithFlash(c, "/account/api-keys", templates.FlashSuccess, msg)
	}
	done := templates.Flash{Kind: templates.FlashSuccess, Message: msg}
	props, err := s.apiKeysProps(c, nil, templates.CreateKeyForm{})
	if err != nil {
		return err
	}
	if len(props.Keys) == 0 {
		// The last key went: the list becomes the empty state.
		retarget(c, "#api-keys-list", "innerHTML")
		return s.render(c, http.StatusOK, templates.KeysEmptyUpdate(props, done))
	}
	// The button removes the row itself (hx-swap="delete"), whichever row
	// it is; the answer takes away what else showed the key and turns
	// Create back on if this delete brought the account under the limit.
	before := props
	before.Keys = append([]account.APIKey{k}, props.Keys...)
	underLimit := before.AtLimit() && !props.AtLimit()
	return s.render(c, http.StatusOK, templates.KeyDeletedUpdate(props, k.ID, underLimit, done))
}

// displayable echoes typed text back into a form only when it is valid text.
func displayable(s string) string {
	if !validForDisplay(s) {
		return ""
	}
	return s
}

// baseURL is where this server answers, for examples shown to the user.
func baseURL(r *http.Request) string {
	scheme := "http"
	if isHTTPS(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
