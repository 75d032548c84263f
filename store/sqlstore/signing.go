package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/peekshot/peekshot/account"
)

// SetSigningSecret gives one of the user's keys a new signing secret,
// replacing the one it had (replaced): links signed with the old one stop
// verifying on every instance once the change is announced.
func (db *DB) SetSigningSecret(ctx context.Context, userID, keyID int64, ns account.NewSigningSecret) (out account.SigningSecret, replaced bool, err error) {
	err = db.inTx(ctx, "set signing secret", func(t *tx) error {
		k, err := ownKey(t, userID, keyID)
		if err != nil {
			return err
		}
		if k.Status(t.now) == account.KeyExpired {
			return account.ErrKeyExpired
		}
		old, err := scanSigningSecret(t.row(`SELECT `+signingColumns+` FROM key_signing_secrets WHERE api_key_id = ?`, keyID))
		replaced = err == nil
		if err != nil && !errors.Is(err, errNotFound) {
			return err
		}
		out = account.SigningSecret{KeyID: keyID, Prefix: ns.Prefix, Last4: ns.Last4, Sealed: ns.Sealed, CreatedAt: time.Unix(t.now.Unix(), 0)}
		if _, err := t.exec(`INSERT INTO key_signing_secrets (api_key_id, prefix, last4, sealed, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (api_key_id) DO UPDATE SET prefix = excluded.prefix, last4 = excluded.last4, sealed = excluded.sealed, created_at = excluded.created_at`,
			keyID, ns.Prefix, ns.Last4, ns.Sealed, t.now.Unix()); err != nil {
			return err
		}
		detail := "signing secret " + out.Masked() + " created for signed links"
		if replaced {
			detail = "signing secret rotated to " + out.Masked() + ": links signed with " + old.Masked() + " stop working"
		}
		if err := t.log(userID, account.EventKeySettingsChanged, &k, detail); err != nil {
			return err
		}
		return t.notify(changeOfKey(k))
	})
	return out, replaced, err
}

const signingColumns = `api_key_id, prefix, last4, sealed, created_at`

func scanSigningSecret(row interface{ Scan(...any) error }) (account.SigningSecret, error) {
	var s account.SigningSecret
	var created int64
	if err := row.Scan(&s.KeyID, &s.Prefix, &s.Last4, &s.Sealed, &created); err != nil {
		return account.SigningSecret{}, noRows(err)
	}
	s.CreatedAt = time.Unix(created, 0)
	return s, nil
}

// SigningSecret is one of the user's keys' signing secret.
func (db *DB) SigningSecret(ctx context.Context, userID, keyID int64) (account.SigningSecret, error) {
	s, err := scanSigningSecret(db.row(ctx, `SELECT `+prefixed("s", signingColumns)+`
		FROM key_signing_secrets s JOIN api_keys k ON k.id = s.api_key_id WHERE s.api_key_id = ? AND k.user_id = ?`, keyID, userID))
	if err != nil {
		return account.SigningSecret{}, db.fail("signing secret", err)
	}
	return s, nil
}

// authKeyColumns are what API authentication reads of a key.
const authKeyColumns = `id, user_id, label, prefix, last4, active, expires_at, retires_at, ` + policyColumns

// authRow is what scanAuthKey reads into, in one allocation: every
// destination escapes to the driver, so a variable each was a dozen
// allocations on the path of every API request.
type authRow struct {
	k                account.APIKey
	expires, retires sql.NullInt64
	pr               policyRow
	dest             [14]any
}

// scanAuthKey reads authKeyColumns, then extra.
func scanAuthKey(row interface{ Scan(...any) error }, extra ...any) (account.APIKey, error) {
	r := new(authRow)
	k := &r.k
	dest := r.pr.appendDest(append(r.dest[:0], &k.ID, &k.UserID, &k.Label, &k.Prefix, &k.Last4, &k.Active, &r.expires, &r.retires))
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return account.APIKey{}, noRows(err)
	}
	k.ExpiresAt, k.RetiresAt = unix(r.expires), unix(r.retires)
	k.Policy = r.pr.policy()
	return *k, nil
}

// SignedLinkKey finds a key by its id, with its sealed signing secret, in
// one query: what a signed link is checked with.
func (db *DB) SignedLinkKey(ctx context.Context, keyID int64) (account.SignedLinkKey, error) {
	var out account.SignedLinkKey
	k, err := scanAuthKey(db.row(ctx, `SELECT `+prefixed("k", authKeyColumns)+`, s.sealed
		FROM api_keys k JOIN key_signing_secrets s ON s.api_key_id = k.id WHERE k.id = ?`, keyID), &out.Sealed)
	if err != nil {
		return account.SignedLinkKey{}, db.fail("signed link key", err)
	}
	out.Key = k
	return out, nil
}
