package sqlstore

import (
	"context"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
)

// CreateUser creates an account with its sign-up credits, recorded in the
// ledger in the same transaction.
func (db *DB) CreateUser(ctx context.Context, nu account.NewUser) (account.User, error) {
	var u account.User
	err := db.inTx(ctx, "create user", func(t *tx) error {
		u = account.User{Email: nu.Email, Name: nu.Name, PasswordHash: nu.PasswordHash, CreatedAt: time.Unix(t.now.Unix(), 0)}
		err := t.row(`INSERT INTO users (email, name, password_hash, credits, created_at) VALUES (?, ?, ?, 0, ?) RETURNING id`,
			nu.Email, nu.Name, nu.PasswordHash, t.now.Unix()).Scan(&u.ID)
		if db.d.IsUniqueViolation(err) {
			return account.ErrEmailTaken
		}
		if err != nil {
			return err
		}
		if u.Credits, err = addCredits(t, u.ID, account.SignupCredits, ledgerEntry{reason: "signup"}); err != nil {
			return err
		}
		return t.log(u.ID, account.EventAccountCreated, nil, "")
	})
	if err != nil {
		return account.User{}, err
	}
	return u, nil
}

const userColumns = `id, email, name, password_hash, credits, created_at`

func scanUser(row interface{ Scan(...any) error }) (account.User, error) {
	var u account.User
	var created int64
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Credits, &created)
	u.CreatedAt = time.Unix(created, 0)
	return u, noRows(err)
}

// UserByEmail finds an account by its normalised email.
func (db *DB) UserByEmail(ctx context.Context, email string) (account.User, error) {
	u, err := scanUser(db.row(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	if err != nil {
		return account.User{}, db.fail("user by email", err)
	}
	return u, nil
}

// UserByID finds an account.
func (db *DB) UserByID(ctx context.Context, id int64) (account.User, error) {
	u, err := scanUser(db.row(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return account.User{}, db.fail("user by id", err)
	}
	return u, nil
}

// EmailAndCredits reads what GET /api/v1/me tells a key's owner, and no
// more.
func (db *DB) EmailAndCredits(ctx context.Context, userID int64) (email string, credits int64, err error) {
	err = noRows(db.row(ctx, `SELECT email, credits FROM users WHERE id = ?`, userID).Scan(&email, &credits))
	if err != nil {
		return "", 0, db.fail("email and credits", err)
	}
	return email, credits, nil
}

// UpdateUserName changes the display name.
func (db *DB) UpdateUserName(ctx context.Context, userID int64, name string) error {
	return db.inTx(ctx, "update name", func(t *tx) error {
		if err := expectOne(t.exec(`UPDATE users SET name = ? WHERE id = ?`, name, userID)); err != nil {
			return err
		}
		return t.log(userID, account.EventProfileChanged, nil, "name")
	})
}

// ChangePassword stores a new password hash and ends every session of the
// user except keep (the one that made the change), in one transaction, so
// a stolen session dies with the old password.
func (db *DB) ChangePassword(ctx context.Context, userID int64, passwordHash string, keep account.SessionID) error {
	return db.inTx(ctx, "change password", func(t *tx) error {
		if err := expectOne(t.exec(`UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID)); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?`, userID, keep.Hash()); err != nil {
			return err
		}
		return t.log(userID, account.EventPasswordChanged, nil, "other sessions ended")
	})
}

// DeleteUser removes an account with its keys, sessions, ledger and
// redemptions (by cascade), so its keys stop working at once.
func (db *DB) DeleteUser(ctx context.Context, userID int64) error {
	return db.inTx(ctx, "delete user", func(t *tx) error {
		if err := expectOne(t.exec(`DELETE FROM users WHERE id = ?`, userID)); err != nil {
			return err
		}
		return t.notify(store.Change{UserID: userID, AllKeys: true})
	})
}
