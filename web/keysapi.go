package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
)

// The keys API (SPEC §8): with keys_read a key lists and reads its
// account's keys; with keys_write it creates, changes, rotates and deletes
// them, through the same functions as the dashboard (keyrules.go), so the
// key limit, the expiry rules and the activity log are the dashboard's.
// The activity log names the acting key. A key never gives a key (a new
// one, itself, a replacement) a scope it lacks itself.

// keyJSON is a key as the keys API shows it: never its value.
type keyJSON struct {
	ID             int64         `json:"id"`
	Label          string        `json:"label"`
	Masked         string        `json:"masked"`
	Status         string        `json:"status"`
	Active         bool          `json:"active"`
	CreatedAt      time.Time     `json:"created_at"`
	ExpiresAt      *time.Time    `json:"expires_at"`
	LastUsedAt     *time.Time    `json:"last_used_at"`
	LastIP         *string       `json:"last_ip"`
	LastUserAgent  *string       `json:"last_user_agent"`
	RequestCount   int64         `json:"request_count"`
	SpentThisMonth int64         `json:"spent_this_month"`
	Scopes         []string      `json:"scopes"`
	AllowedIPs     []string      `json:"allowed_ips"`
	AllowedTargets []string      `json:"allowed_targets"`
	RateLimit      *int          `json:"rate_limit"`
	MonthlyBudget  *int64        `json:"monthly_budget"`
	Rotation       *rotationJSON `json:"rotation"`
}

// rotationJSON is what became of a rotated key.
type rotationJSON struct {
	ReplacedBy int64     `json:"replaced_by"`
	RotatedAt  time.Time `json:"rotated_at"`
	RetiresAt  time.Time `json:"retires_at"`
	Auto       bool      `json:"auto"`
}

// newKeyJSON is a key just made, with its value: shown this once.
type newKeyJSON struct {
	Key     string `json:"key"`
	keyJSON `json:",inline"`
}

var statusNames = map[account.KeyStatus]string{
	account.KeyActive: "active", account.KeyInactive: "inactive", account.KeyExpiring: "expiring",
	account.KeyRetiring: "retiring", account.KeyExpired: "expired",
}

func keyJSONOf(k account.APIKey, now time.Time) keyJSON {
	out := keyJSON{
		ID: k.ID, Label: k.Label, Masked: k.Masked(), Status: statusNames[k.Status(now)], Active: k.Active,
		CreatedAt: k.CreatedAt.UTC(), RequestCount: k.RequestCount, SpentThisMonth: k.SpentThisMonth,
		Scopes: []string{}, AllowedIPs: []string{}, AllowedTargets: slices.Clone(k.Policy.AllowedTargets),
	}
	if out.AllowedTargets == nil {
		out.AllowedTargets = []string{}
	}
	for _, sc := range k.Policy.Scopes {
		out.Scopes = append(out.Scopes, string(sc))
	}
	for _, p := range k.Policy.AllowedIPs {
		if p.IsSingleIP() {
			out.AllowedIPs = append(out.AllowedIPs, p.Addr().String())
		} else {
			out.AllowedIPs = append(out.AllowedIPs, p.String())
		}
	}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt.UTC()
		out.LastUsedAt, out.LastIP, out.LastUserAgent = &t, &k.LastIP, &k.LastUserAgent
	}
	if k.Policy.RateLimit > 0 {
		out.RateLimit = &k.Policy.RateLimit
	}
	if k.Policy.MonthlyBudget > 0 {
		out.MonthlyBudget = &k.Policy.MonthlyBudget
	}
	if k.Rotated() {
		out.Rotation = &rotationJSON{ReplacedBy: k.ReplacedBy, RotatedAt: k.RotatedAt.UTC(), RetiresAt: k.RetiresAt.UTC(), Auto: k.AutoRetire}
	}
	return out
}

// writeAPIJSON answers v as JSON, kept out of every cache.
func writeAPIJSON(c echo.Context, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSONBlob(status, body)
}

func (s *Server) handleListKeys(c echo.Context) error {
	k := currentKey(c)
	keys, err := s.keysWithUsage(c, k.UserID)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	out := struct {
		Keys []keyJSON `json:"keys"`
	}{Keys: []keyJSON{}}
	for _, key := range keys {
		out.Keys = append(out.Keys, keyJSONOf(key, now))
	}
	return writeAPIJSON(c, http.StatusOK, out)
}

// apiKeyOf is the key the path names, in the acting key's account, with
// its usage; 404 for any other.
func (s *Server) apiKeyOf(c echo.Context) (account.APIKey, error) {
	return s.pathKeyWithUsage(c, currentKey(c).UserID)
}

func (s *Server) handleGetKey(c echo.Context) error {
	k, err := s.apiKeyOf(c)
	if err != nil {
		return err
	}
	return writeAPIJSON(c, http.StatusOK, keyJSONOf(k, s.cfg.Now()))
}

// The members each body may have.
var (
	// createKeyFields are also the order messages name a policy's wrong
	// fields in.
	createKeyFields = []string{"label", "expires", "scopes", "allowed_ips", "allowed_targets", "rate_limit", "monthly_budget"}
	patchKeyFields  = append(slices.Clone(createKeyFields), "active")
	rotateKeyFields = []string{"grace"}
)

func (s *Server) handleCreateKey(c echo.Context) error {
	actor := currentKey(c)
	b, err := decodeKeyBody(c, createKeyFields, `{"label": "CI", "scopes": ["screenshots"]}`)
	if err != nil {
		return err
	}
	label, in, _, err := b.settingsInput()
	if err != nil {
		return err
	}
	ks, labelMsg, errs := s.keySettingsOf(label, in, nil)
	if err := settingsRefused(labelMsg, errs); err != nil {
		return err
	}
	if err := grantable(actor, ks.Policy.Scopes); err != nil {
		return err
	}
	key, k, err := s.createKey(c, actor.UserID, ks)
	if err != nil {
		return keyChangeRefused(err)
	}
	c.Response().Header().Set("Location", "/api/v1/keys/"+strconv.FormatInt(k.ID, 10))
	return writeAPIJSON(c, http.StatusCreated, newKeyJSON{Key: key, keyJSON: keyJSONOf(k, s.cfg.Now())})
}

func (s *Server) handlePatchKey(c echo.Context) error {
	actor := currentKey(c)
	k, err := s.apiKeyOf(c)
	if err != nil {
		return err
	}
	b, err := decodeKeyBody(c, patchKeyFields, `{"active": false}`)
	if err != nil {
		return err
	}
	label, in, given, err := b.settingsInput()
	if err != nil {
		return err
	}
	active, activeGiven, err := b.boolean("active")
	if err != nil {
		return err
	}
	if !given["label"] {
		label = k.Label
	}
	if activeGiven && active {
		if err := k.CanActivate(s.cfg.Now()); err != nil {
			return keyChangeRefused(err) // before anything else changes
		}
	}
	current := account.Expiry{At: k.ExpiresAt, Lifetime: k.ExpiryLifetime}
	ks, labelMsg, errs := s.keySettingsOf(label, in, &current)
	if err := settingsRefused(labelMsg, errs); err != nil {
		return err
	}
	// What was not sent stays as it is.
	if !given["scopes"] {
		ks.Policy.Scopes = k.Policy.Scopes
	}
	if !given["allowed_ips"] {
		ks.Policy.AllowedIPs = k.Policy.AllowedIPs
	}
	if !given["allowed_targets"] {
		ks.Policy.AllowedTargets = k.Policy.AllowedTargets
	}
	if !given["rate_limit"] {
		ks.Policy.RateLimit = k.Policy.RateLimit
	}
	if !given["monthly_budget"] {
		ks.Policy.MonthlyBudget = k.Policy.MonthlyBudget
	}
	var added []account.Scope
	for _, sc := range ks.Policy.Scopes {
		if !k.Policy.HasScope(sc) {
			added = append(added, sc)
		}
	}
	if err := grantable(actor, added); err != nil {
		return err
	}
	if len(given) > 0 {
		if k, err = s.changeKeySettings(c, k.UserID, k, ks); err != nil {
			return keyChangeRefused(err)
		}
	}
	if activeGiven && active != k.Active {
		if _, err := s.setKeyActive(c, k.UserID, k.ID, active); err != nil {
			return keyChangeRefused(err)
		}
	}
	if k, err = s.keyWithUsage(c, k.UserID, k.ID); err != nil {
		return keyChangeRefused(err)
	}
	return writeAPIJSON(c, http.StatusOK, keyJSONOf(k, s.cfg.Now()))
}

func (s *Server) handleRotateKey(c echo.Context) error {
	actor := currentKey(c)
	k, err := s.apiKeyOf(c)
	if err != nil {
		return err
	}
	b, err := decodeKeyBody(c, rotateKeyFields, `{"grace": "24h"}`)
	if err != nil {
		return err
	}
	name, given, err := b.str("grace")
	if err != nil {
		return err
	}
	grace, ok := graces[name]
	if !given || !ok {
		return fieldError("grace", `grace must be "now", "1h", "24h", "7d" or "auto": how long the old key keeps working.`)
	}
	// The replacement gets every scope of the old key, and its value goes
	// to the caller.
	if err := grantable(actor, k.Policy.Scopes); err != nil {
		return err
	}
	next, old, repl, err := s.rotateKey(c, k.UserID, k.ID, grace)
	if err != nil {
		return keyChangeRefused(err)
	}
	now := s.cfg.Now()
	old.RequestCount, old.LastUsedAt, old.LastIP, old.LastUserAgent, old.SpentThisMonth = k.RequestCount, k.LastUsedAt, k.LastIP, k.LastUserAgent, k.SpentThisMonth
	c.Response().Header().Set("Location", "/api/v1/keys/"+strconv.FormatInt(repl.ID, 10))
	return writeAPIJSON(c, http.StatusCreated, struct {
		Replacement newKeyJSON `json:"replacement"`
		Old         keyJSON    `json:"old"`
	}{newKeyJSON{Key: next, keyJSON: keyJSONOf(repl, now)}, keyJSONOf(old, now)})
}

func (s *Server) handleDeleteKey(c echo.Context) error {
	id, err := keyID(c)
	if err != nil {
		return err
	}
	if err := s.deleteKey(c, currentKey(c).UserID, id); err != nil {
		return keyChangeRefused(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// grantable refuses to give a key any scope the acting key lacks itself.
func grantable(actor *account.APIKey, scopes []account.Scope) error {
	for _, sc := range scopes {
		if !actor.Policy.HasScope(sc) {
			e := apiErr(http.StatusForbidden, codeScopeNotAllowed, "This key lacks the scope "+string(sc)+
				", so it can't give it to a key. Nothing was changed: use a key that has "+string(sc)+", or leave it out.")
			e.Field = "scopes"
			return e
		}
	}
	return nil
}

// keyChangeRefused says why the store refused a change of a key.
func keyChangeRefused(err error) error {
	switch {
	case errors.Is(err, account.ErrNotFound):
		return errKeyNotFound
	case errors.Is(err, account.ErrKeyExpired):
		return apiErr(http.StatusConflict, "conflict", "This key has expired, so it can't change, be activated or be rotated. Create a new key instead.")
	case errors.Is(err, account.ErrAlreadyRotated):
		return apiErr(http.StatusConflict, "conflict", "This key was already rotated; rotate its replacement (rotation.replaced_by) instead.")
	case errors.Is(err, account.ErrKeyLimit):
		return apiErr(http.StatusConflict, "key_limit_reached", "This account has "+strconv.Itoa(account.MaxAPIKeys)+
			" keys, the most it can hold. Delete a key you no longer use (or rotate with grace \"now\") first.")
	}
	return err
}

// settingsRefused turns what is wrong with a key's settings into one
// error naming every wrong field; nil when nothing is.
func settingsRefused(labelMsg string, errs map[string]string) error {
	if labelMsg == "" && len(errs) == 0 {
		return nil
	}
	all := map[string]string{}
	for f, msg := range errs {
		if f == "expires_date" { // the form's date input; the API sends the date in expires
			f = "expires"
		}
		all[f] = msg
	}
	if labelMsg != "" {
		all["label"] = labelMsg
	}
	var parts []string
	first := ""
	for _, f := range createKeyFields {
		if msg, ok := all[f]; ok {
			if first == "" {
				first = f
			}
			parts = append(parts, f+": "+sentence(msg))
		}
	}
	return fieldError(first, "Nothing was changed. "+strings.Join(parts, " "))
}

// fieldError is a 400 invalid_request about one field.
func fieldError(field, msg string) error {
	e := invalidRequest(msg)
	e.Field = field
	return e
}

// keyBody is a JSON object's members, each decoded when asked for with
// its type checked, so that a message names the field that is wrong.
type keyBody map[string]jsontext.Value

// decodeKeyBody reads a keys API body: one JSON object of the allowed
// members, each at most once.
func decodeKeyBody(c echo.Context, allowed []string, example string) (keyBody, error) {
	body, err := readJSONBody(c, example)
	if err != nil {
		return nil, err
	}
	var b keyBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, invalidRequest(describeJSONError(err))
	}
	if b == nil {
		return nil, invalidRequest("The request body must be a JSON object.")
	}
	var unknown []string
	for name := range b {
		if !slices.Contains(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		e := invalidRequest(fmt.Sprintf("Unknown field %s. Valid fields: %s.", quoteField(unknown[0]), strings.Join(allowed, ", ")))
		if quoteField(unknown[0]) != "(name not shown)" {
			e.Field = unknown[0]
		}
		return nil, e
	}
	return b, nil
}

// str is the string member name, and whether it was sent.
func (b keyBody) str(name string) (string, bool, error) {
	v, ok := b[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if v.Kind() != '"' || json.Unmarshal(v, &s) != nil {
		return "", true, fieldError(name, name+" must be a string.")
	}
	return s, true, nil
}

// boolean is the true or false member name, and whether it was sent.
func (b keyBody) boolean(name string) (bool, bool, error) {
	v, ok := b[name]
	if !ok {
		return false, false, nil
	}
	var x bool
	if (v.Kind() != 't' && v.Kind() != 'f') || json.Unmarshal(v, &x) != nil {
		return false, true, fieldError(name, name+" must be true or false.")
	}
	return x, true, nil
}

// list is the array of strings name, each one item (no commas or line
// breaks, which the dashboard's text fields split on), and whether it
// was sent.
func (b keyBody) list(name string) ([]string, bool, error) {
	v, ok := b[name]
	if !ok {
		return nil, false, nil
	}
	var items []string
	if v.Kind() != '[' || json.Unmarshal(v, &items) != nil {
		return nil, true, fieldError(name, name+" must be an array of strings.")
	}
	for _, it := range items {
		if strings.TrimSpace(it) == "" || strings.ContainsAny(it, ",\r\n") {
			return nil, true, fieldError(name, name+" must hold one non-empty item per string, without commas or line breaks.")
		}
	}
	return items, true, nil
}

// whole is the whole-number-or-null member name as the policy parser
// reads it ("" for null), and whether it was sent.
func (b keyBody) whole(name string) (string, bool, error) {
	v, ok := b[name]
	if !ok {
		return "", false, nil
	}
	if v.Kind() == 'n' {
		return "", true, nil
	}
	var n int64
	if v.Kind() != '0' || json.Unmarshal(v, &n) != nil {
		return "", true, fieldError(name, name+" must be a whole number, or null for none.")
	}
	return strconv.FormatInt(n, 10), true, nil
}

// settingsInput reads the label and the §6 policy members as the
// dashboard's parsers take them, and which of them were sent.
func (b keyBody) settingsInput() (string, account.PolicyInput, map[string]bool, error) {
	label, ok, err := b.str("label")
	if err != nil {
		return "", account.PolicyInput{}, nil, err
	}
	given := map[string]bool{"label": ok}
	in, err := b.policyInput(given)
	if !ok {
		delete(given, "label")
	}
	return label, in, given, err
}

// policyInput reads the §6 policy members, noting in given which were
// sent.
func (b keyBody) policyInput(given map[string]bool) (account.PolicyInput, error) {
	var in account.PolicyInput
	var err error
	var ok bool
	if in.Expires, ok, err = b.str("expires"); err != nil {
		return in, err
	} else if ok {
		if in.Expires == "" || in.Expires == "keep" || in.Expires == "date" {
			return in, fieldError("expires", `expires must be "never", "7d", "30d", "90d", "1y" or a date YYYY-MM-DD.`)
		}
		given["expires"] = true
	}
	if in.Scopes, ok, err = b.list("scopes"); err != nil {
		return in, err
	} else if ok {
		in.ScopesGiven, given["scopes"] = true, true
	}
	var ips, targets []string
	if ips, ok, err = b.list("allowed_ips"); err != nil {
		return in, err
	} else if ok {
		in.AllowedIPs, given["allowed_ips"] = strings.Join(ips, "\n"), true
	}
	if targets, ok, err = b.list("allowed_targets"); err != nil {
		return in, err
	} else if ok {
		in.AllowedTargets, given["allowed_targets"] = strings.Join(targets, "\n"), true
	}
	if in.RateLimit, ok, err = b.whole("rate_limit"); err != nil {
		return in, err
	} else if ok {
		given["rate_limit"] = true
	}
	if in.MonthlyBudget, ok, err = b.whole("monthly_budget"); err != nil {
		return in, err
	} else if ok {
		given["monthly_budget"] = true
	}
	return in, nil
}
