package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
)

func changeOfKey(k account.APIKey) store.Change { return store.Change{KeyID: k.ID, UserID: k.UserID} }

func changeOfUser(userID int64) store.Change { return store.Change{UserID: userID} }

const apiKeyColumns = `id, user_id, label, prefix, last4, active, created_at, expires_at, expiry_lifetime, rotated_at, retires_at, replaced_by, auto_retire, first_used_at, last_used_at, last_ip, last_user_agent, request_count, ` + policyColumns

func scanAPIKey(row interface{ Scan(...any) error }) (account.APIKey, error) {
	var k account.APIKey
	var created int64
	var expires, lifetime, rotated, retires, replaced, first, used sql.NullInt64
	var pr policyRow
	err := row.Scan(pr.appendDest([]any{&k.ID, &k.UserID, &k.Label, &k.Prefix, &k.Last4, &k.Active, &created,
		&expires, &lifetime, &rotated, &retires, &replaced, &k.AutoRetire, &first, &used, &k.LastIP, &k.LastUserAgent, &k.RequestCount})...)
	if err != nil {
		return account.APIKey{}, noRows(err)
	}
	k.CreatedAt = time.Unix(created, 0)
	k.ExpiresAt, k.ExpiryLifetime = unix(expires), time.Duration(lifetime.Int64)*time.Second
	k.RotatedAt, k.RetiresAt = unix(rotated), unix(retires)
	k.FirstUsedAt, k.LastUsedAt, k.ReplacedBy = unix(first), unix(used), replaced.Int64
	k.Policy = pr.policy()
	return k, nil
}

// CreateAPIKey stores a new key for its user, refusing the one past
// MaxAPIKeys live keys.
func (db *DB) CreateAPIKey(ctx context.Context, nk account.NewAPIKey) (account.APIKey, error) {
	var k account.APIKey
	err := db.inTx(ctx, "create API key", func(t *tx) error {
		if err := t.lockUser(nk.UserID); err != nil {
			return err
		}
		var err error
		if k, err = insertAPIKey(t, nk); err != nil {
			return err
		}
		return t.log(k.UserID, account.EventKeyCreated, &k, "")
	})
	return k, err
}

// insertAPIKey adds a key under the user's limit of live keys; the caller
// holds the user's lock.
func insertAPIKey(t *tx, nk account.NewAPIKey) (account.APIKey, error) {
	keys, err := userKeys(t, nk.UserID)
	if err != nil {
		return account.APIKey{}, err
	}
	if account.LiveKeys(keys, t.now) >= account.MaxAPIKeys {
		return account.APIKey{}, account.ErrKeyLimit
	}
	hash := apikey.HashOf(nk.Key)
	if nk.Policy.Scopes == nil {
		nk.Policy.Scopes = account.DefaultPolicy().Scopes
	}
	k := account.APIKey{
		UserID: nk.UserID, Label: nk.Label, Active: true, CreatedAt: time.Unix(t.now.Unix(), 0),
		Prefix: apikey.DisplayPrefix(nk.Key), Last4: apikey.Last4(nk.Key),
		ExpiresAt: nk.Expiry.At, ExpiryLifetime: nk.Expiry.Lifetime, Policy: nk.Policy,
	}
	if k.ID, err = t.db.d.NextAPIKeyID(t.ctx, t.Tx); err != nil {
		return account.APIKey{}, err
	}
	_, err = t.exec(`INSERT INTO api_keys (id, user_id, label, key_hash, prefix, last4, active, created_at, expires_at, expiry_lifetime, `+policyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		append([]any{k.ID, k.UserID, k.Label, hash[:], k.Prefix, k.Last4, true, t.now.Unix(), nullUnix(k.ExpiresAt), lifetimeArg(nk.Expiry)},
			policyArgs(k.Policy)...)...)
	return k, err
}

// userKeys loads every key of a user inside t, newest first.
func userKeys(t *tx, userID int64) ([]account.APIKey, error) {
	rows, err := t.rows(`SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = ? ORDER BY id DESC`, userID)
	if err != nil {
		return nil, err
	}
	return scanAPIKeys(rows)
}

func scanAPIKeys(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}) ([]account.APIKey, error) {
	defer rows.Close()
	keys := make([]account.APIKey, 0, 8)
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// APIKeys lists a user's keys, newest first, with what each spent this
// month, in one query.
func (db *DB) APIKeys(ctx context.Context, userID int64) ([]account.APIKey, error) {
	rows, err := db.rows(ctx, `SELECT `+prefixed("k", apiKeyColumns)+`, coalesce(m.credits, 0)
		FROM api_keys k
		LEFT JOIN (SELECT api_key_id, sum(credits) AS credits FROM key_usage_days WHERE day >= ? GROUP BY api_key_id) m ON m.api_key_id = k.id
		WHERE k.user_id = ? ORDER BY k.id DESC`, account.MonthStart(db.now()).Unix(), userID)
	if err != nil {
		return nil, db.fail("list API keys", err)
	}
	defer rows.Close()
	keys := make([]account.APIKey, 0, 8)
	for rows.Next() {
		var spent int64
		k, err := scanAPIKey(scanWith(rows, &spent))
		if err != nil {
			return nil, db.fail("list API keys", err)
		}
		k.SpentThisMonth = spent
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("list API keys", err)
	}
	return keys, nil
}

// prefixed qualifies every column of a list with a table alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, c := range parts {
		parts[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// scanWith is a row whose Scan also fills extra, after what the caller
// scans.
func scanWith(row interface{ Scan(...any) error }, extra ...any) interface{ Scan(...any) error } {
	return scanFunc(func(dest ...any) error { return row.Scan(append(dest, extra...)...) })
}

type scanFunc func(...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// APIKey returns one of the user's keys, with what it spent this month;
// another user's key is ErrNotFound.
func (db *DB) APIKey(ctx context.Context, userID, keyID int64) (account.APIKey, error) {
	var spent int64
	k, err := scanAPIKey(scanWith(db.row(ctx, `SELECT `+prefixed("k", apiKeyColumns)+`,
		coalesce((SELECT sum(credits) FROM key_usage_days d WHERE d.api_key_id = k.id AND d.day >= ?), 0)
		FROM api_keys k WHERE k.id = ? AND k.user_id = ?`, account.MonthStart(db.now()).Unix(), keyID, userID), &spent))
	if err != nil {
		return account.APIKey{}, db.fail("API key", err)
	}
	k.SpentThisMonth = spent
	return k, nil
}

// APIKeyByID returns any user's key, for operators; its UserID says whose.
func (db *DB) APIKeyByID(ctx context.Context, keyID int64) (account.APIKey, error) {
	k, err := scanAPIKey(db.row(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, keyID))
	if err != nil {
		return account.APIKey{}, db.fail("API key by id", err)
	}
	return k, nil
}

// ownKey loads one of the user's keys inside t.
func ownKey(t *tx, userID, keyID int64) (account.APIKey, error) {
	return scanAPIKey(t.row(`SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID))
}

// APIKeyByHash finds a key by the SHA-256 of the whole key, for API
// authentication. It reads only what authentication and /api/v1/me need
// (no usage, creation time or rotation link), from an index that holds
// them all, so the table itself is not read.
func (db *DB) APIKeyByHash(ctx context.Context, hash apikey.Hash) (account.APIKey, error) {
	var row interface{ Scan(...any) error }
	if db.keys != nil {
		row = scanFunc(func(dest ...any) error { return db.keys.ReadKey(ctx, hash[:], dest...) })
	} else {
		row = db.read.QueryRowContext(ctx, db.byHash, hash[:])
	}
	k, err := scanAuthKey(row)
	if err != nil {
		return account.APIKey{}, db.fail("API key by hash", err)
	}
	return k, nil
}

// SetAPIKeyActive deactivates or reactivates one of the user's keys and
// returns it as it now is. An expired key cannot be reactivated.
func (db *DB) SetAPIKeyActive(ctx context.Context, userID, keyID int64, active bool) (account.APIKey, error) {
	var k account.APIKey
	err := db.inTx(ctx, "set API key active", func(t *tx) error {
		var err error
		if k, err = ownKey(t, userID, keyID); err != nil {
			return err
		}
		if active {
			if err := k.CanActivate(t.now); err != nil {
				return err
			}
		}
		if _, err := t.exec(`UPDATE api_keys SET active = ? WHERE id = ?`, active, keyID); err != nil {
			return err
		}
		k.Active = active
		ev := account.EventKeyDeactivated
		if active {
			ev = account.EventKeyActivated
		}
		if err := t.log(userID, ev, &k, ""); err != nil {
			return err
		}
		return t.notify(changeOfKey(k))
	})
	return k, err
}

// RotateAPIKey replaces one of the user's keys with next (same label and
// policy): the old key keeps working for the grace period, then retires
// and is refused as expired. A key that was already rotated or has
// expired cannot be rotated. It returns the old key as it now is and the
// new key.
func (db *DB) RotateAPIKey(ctx context.Context, userID, keyID int64, next string, grace account.Grace) (old, replacement account.APIKey, err error) {
	err = db.inTx(ctx, "rotate API key", func(t *tx) error {
		if err := t.lockUser(userID); err != nil {
			return err
		}
		k, err := ownKey(t, userID, keyID)
		if err != nil {
			return err
		}
		if err := k.CanRotate(t.now); err != nil {
			return err
		}
		now := t.now.Unix()
		retires := now + int64(grace.For/time.Second)
		// Retire the old key first so that, with grace "now", the
		// replacement takes its place under the key limit.
		if _, err := t.exec(`UPDATE api_keys SET rotated_at = ?, retires_at = ?, auto_retire = ? WHERE id = ?`, now, retires, grace.Auto, keyID); err != nil {
			return err
		}
		// The replacement does what the old key did: same label and
		// policy, and a lifetime chosen at creation counts again from now.
		replacement, err = insertAPIKey(t, account.NewAPIKey{UserID: userID, Label: k.Label, Key: next,
			Policy: k.Policy, Expiry: k.RotatedExpiry(t.now)})
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE api_keys SET replaced_by = ? WHERE id = ?`, replacement.ID, keyID); err != nil {
			return err
		}
		old = k
		old.RotatedAt, old.RetiresAt, old.ReplacedBy, old.AutoRetire = time.Unix(now, 0), time.Unix(retires, 0), replacement.ID, grace.Auto
		detail := "replaced by " + replacement.Masked() + ", " + graceText(grace)
		if err := t.log(userID, account.EventKeyRotated, &old, detail); err != nil {
			return err
		}
		if err := t.log(userID, account.EventKeyCreated, &replacement, "to replace "+old.Masked()); err != nil {
			return err
		}
		return t.notify(changeOfKey(k))
	})
	if err != nil {
		return account.APIKey{}, account.APIKey{}, err
	}
	return old, replacement, nil
}

// graceText says how a rotated key retires, for the log.
func graceText(g account.Grace) string {
	switch {
	case g.Auto:
		return "retires an hour after its last use once the new key is used, in 7 days at the latest"
	case g.For == 0:
		return "stopped at once"
	}
	return "works for another " + g.Period()
}

// UpdateAPIKeySettings changes one of the user's keys' label, policy and
// expiry, and returns the key as it now is. An expired key can't be
// changed: nothing about it would work again.
func (db *DB) UpdateAPIKeySettings(ctx context.Context, userID, keyID int64, ks account.KeySettings) (account.APIKey, error) {
	var k account.APIKey
	err := db.inTx(ctx, "update API key settings", func(t *tx) error {
		var err error
		if k, err = ownKey(t, userID, keyID); err != nil {
			return err
		}
		if k.Status(t.now) == account.KeyExpired {
			return account.ErrKeyExpired
		}
		if ks.Policy.Scopes == nil {
			ks.Policy.Scopes = account.DefaultPolicy().Scopes
		}
		detail := settingsChanged(k, ks)
		if detail == "" {
			return nil // saved as it was: nothing to write, log or announce
		}
		_, err = t.exec(`UPDATE api_keys SET label = ?, expires_at = ?, expiry_lifetime = ?,
			scopes = ?, allowed_ips = ?, allowed_targets = ?, rate_limit = ?, monthly_budget = ? WHERE id = ?`,
			append(append([]any{ks.Label, nullUnix(ks.Expiry.At), lifetimeArg(ks.Expiry)}, policyArgs(ks.Policy)...), keyID)...)
		if err != nil {
			return err
		}
		k.Label, k.ExpiresAt, k.ExpiryLifetime, k.Policy = ks.Label, ks.Expiry.At, ks.Expiry.Lifetime, ks.Policy
		if err := t.log(userID, account.EventKeySettingsChanged, &k, detail); err != nil {
			return err
		}
		return t.notify(changeOfKey(k))
	})
	return k, err
}

// DeleteAPIKey removes one of the user's keys for good.
func (db *DB) DeleteAPIKey(ctx context.Context, userID, keyID int64) error {
	return db.inTx(ctx, "delete API key", func(t *tx) error {
		k, err := ownKey(t, userID, keyID)
		if err != nil {
			return err
		}
		if err := expectOne(t.exec(`DELETE FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID)); err != nil {
			return err
		}
		if err := t.log(userID, account.EventKeyDeleted, &k, ""); err != nil {
			return err
		}
		return t.notify(store.Change{KeyID: keyID, UserID: userID})
	})
}

// CountActiveAPIKeys counts a user's keys that work right now.
func (db *DB) CountActiveAPIKeys(ctx context.Context, userID int64) (int, error) {
	keys, err := db.APIKeys(ctx, userID)
	if err != nil {
		return 0, err
	}
	now := db.now()
	n := 0
	for _, k := range keys {
		if k.Works(now) {
			n++
		}
	}
	return n, nil
}

// settingsChanged names what a settings change changes, for the log; ""
// when it changes nothing.
func settingsChanged(k account.APIKey, ks account.KeySettings) string {
	var changed []string
	p, q := k.Policy, ks.Policy
	if k.Label != ks.Label {
		changed = append(changed, "label")
	}
	if !k.ExpiresAt.Equal(ks.Expiry.At) || k.ExpiryLifetime != ks.Expiry.Lifetime {
		changed = append(changed, "expiration")
	}
	if !slices.Equal(p.Scopes, q.Scopes) {
		changed = append(changed, "scopes")
	}
	if !slices.Equal(p.AllowedIPs, q.AllowedIPs) {
		changed = append(changed, "allowed IPs")
	}
	if !slices.Equal(p.AllowedTargets, q.AllowedTargets) {
		changed = append(changed, "allowed sites")
	}
	if p.RateLimit != q.RateLimit {
		changed = append(changed, "rate limit")
	}
	if p.MonthlyBudget != q.MonthlyBudget {
		changed = append(changed, "monthly budget")
	}
	return strings.Join(changed, ", ") // "" when nothing changed
}
