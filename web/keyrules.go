package web

import (
	"errors"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/templates"
)

// The changes of a key's life, which the dashboard (API Keys tab, the
// key's page) and the keys API both make through these functions: what a
// label and a policy may be, and the changes themselves. The store holds
// the rules that need the database (the key limit, what an expired or
// rotated key may still do) and writes the activity log with each change,
// as done by the actor in the request's context (a session or a key).

// graces are the rotation grace periods a user can pick.
var graces = map[string]account.Grace{
	"now": {}, "1h": {For: time.Hour}, "24h": {For: 24 * time.Hour}, "7d": {For: 7 * 24 * time.Hour},
	"auto": account.AutoGrace,
}

// keySettingsOf checks a key's label and policy as typed or sent. current
// is the expiry of the key being changed (kept unless the input sets
// another), nil for a new key. labelMsg and errs say what is wrong.
func (s *Server) keySettingsOf(rawLabel string, in account.PolicyInput, current *account.Expiry) (ks account.KeySettings, labelMsg string, errs templates.FieldErrors) {
	label, labelMsg := cleanText("Label", rawLabel, maxLabelLen)
	policy, expiry, errs := s.parsePolicy(in, current)
	return account.KeySettings{Label: label, Policy: policy, Expiry: expiry}, labelMsg, errs
}

// createKey makes a key for the user and returns it with its value,
// which is shown once and never again. The store refuses the one past
// account.MaxAPIKeys with account.ErrKeyLimit.
func (s *Server) createKey(c echo.Context, userID int64, ks account.KeySettings) (string, account.APIKey, error) {
	key, err := apikey.Generate()
	if err != nil {
		return "", account.APIKey{}, err
	}
	k, err := s.store.CreateAPIKey(actingContext(c), account.NewAPIKey{UserID: userID, Label: ks.Label, Key: key, Policy: ks.Policy, Expiry: ks.Expiry})
	if err != nil {
		return "", account.APIKey{}, err
	}
	s.log.Info("API key created", "user_id", userID, "api_key_id", k.ID, "request_id", c.Get(ctxReqID))
	return key, k, nil
}

// changeKeySettings gives one of the user's keys a new label, policy and
// expiry, from its very next request on. The store refuses an expired key
// (account.ErrKeyExpired): nothing about it would work again.
func (s *Server) changeKeySettings(c echo.Context, userID int64, k account.APIKey, ks account.KeySettings) (account.APIKey, error) {
	updated, err := s.store.UpdateAPIKeySettings(actingContext(c), userID, k.ID, ks)
	if err != nil {
		return account.APIKey{}, err
	}
	s.log.Info("API key settings changed", "user_id", userID, "api_key_id", k.ID, "request_id", c.Get(ctxReqID))
	return updated, nil
}

// setKeyActive deactivates or activates one of the user's keys, at once;
// an expired key can't be activated (account.ErrKeyExpired).
func (s *Server) setKeyActive(c echo.Context, userID, keyID int64, active bool) (account.APIKey, error) {
	k, err := s.store.SetAPIKeyActive(actingContext(c), userID, keyID, active)
	if err != nil {
		return k, err
	}
	s.log.Info("API key status changed", "user_id", userID, "api_key_id", k.ID, "active", active, "request_id", c.Get(ctxReqID))
	return k, nil
}

// rotateKey replaces one of the user's keys by a new one with the same
// label and policy, and returns the new key's value (shown once), the old
// key as it now is and its replacement. The old key works for the grace
// period. An expired key (account.ErrKeyExpired) or one already rotated
// (account.ErrAlreadyRotated) can't be; nor one past the key limit
// (account.ErrKeyLimit) while the old key still counts.
func (s *Server) rotateKey(c echo.Context, userID, keyID int64, grace account.Grace) (string, account.APIKey, account.APIKey, error) {
	next, err := apikey.Generate()
	if err != nil {
		return "", account.APIKey{}, account.APIKey{}, err
	}
	old, repl, err := s.store.RotateAPIKey(actingContext(c), userID, keyID, next, grace)
	if err != nil {
		return "", account.APIKey{}, account.APIKey{}, err
	}
	s.log.Info("API key rotated", "user_id", userID, "api_key_id", old.ID, "replacement_id", repl.ID, "request_id", c.Get(ctxReqID))
	return next, old, repl, nil
}

// deleteKey removes one of the user's keys for good, refused by the API
// from the next request on.
func (s *Server) deleteKey(c echo.Context, userID, keyID int64) error {
	if err := s.store.DeleteAPIKey(actingContext(c), userID, keyID); err != nil {
		return err
	}
	s.log.Info("API key deleted", "user_id", userID, "api_key_id", keyID, "request_id", c.Get(ctxReqID))
	return nil
}

// keyWithUsage is one of the user's keys as the list shows it: with what
// it spent this month and its usage not yet flushed; account.ErrNotFound
// for a key that isn't the user's.
func (s *Server) keyWithUsage(c echo.Context, userID, keyID int64) (account.APIKey, error) {
	k, err := s.store.APIKey(c.Request().Context(), userID, keyID)
	if err != nil {
		return account.APIKey{}, err
	}
	return s.usage.overlayKey(k), nil
}

// pathKeyWithUsage is the key the path's :id names among the user's,
// with its usage; errKeyNotFound for any other.
func (s *Server) pathKeyWithUsage(c echo.Context, userID int64) (account.APIKey, error) {
	id, err := keyID(c)
	if err != nil {
		return account.APIKey{}, err
	}
	k, err := s.keyWithUsage(c, userID, id)
	if errors.Is(err, account.ErrNotFound) {
		return account.APIKey{}, errKeyNotFound
	}
	return k, err
}

// keysWithUsage lists the user's keys, newest first, with what each spent
// this month and its usage not yet flushed.
func (s *Server) keysWithUsage(c echo.Context, userID int64) ([]account.APIKey, error) {
	keys, err := s.store.APIKeys(c.Request().Context(), userID)
	if err != nil {
		return nil, err
	}
	s.usage.overlay(keys)
	return keys, nil
}
