package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SignupCredits is the free balance every new account starts with.
const SignupCredits = 100

// User is an account.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string
	Credits      int64
	CreatedAt    time.Time
}

// NewUser is what sign-up knows about a person. Email must already be
// normalised and PasswordHash already hashed.
type NewUser struct {
	Email        string
	Name         string
	PasswordHash string
}

// CreateUser creates an account with its sign-up credits, recorded in the
// ledger in the same transaction.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	now := s.now().Unix()
	u := User{Email: nu.Email, Name: nu.Name, PasswordHash: nu.PasswordHash, Credits: SignupCredits, CreatedAt: time.Unix(now, 0)}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO users (email, name, password_hash, credits, created_at) VALUES (?, ?, ?, 0, ?)`,
			nu.Email, nu.Name, nu.PasswordHash, now)
		if isUniqueViolation(err) {
			return ErrEmailTaken
		}
		if err != nil {
			return err
		}
		if u.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return addCredits(ctx, tx, u.ID, SignupCredits, ledgerEntry{reason: "signup", at: now})
	})
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

const userColumns = `id, email, name, password_hash, credits, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Credits, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	u.CreatedAt = time.Unix(created, 0)
	return u, err
}

// UserByEmail finds an account by its normalised email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	if err != nil {
		return User{}, fmt.Errorf("user by email: %w", err)
	}
	return u, nil
}

// UserByID finds an account.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return User{}, fmt.Errorf("user by id: %w", err)
	}
	return u, nil
}

// EmailAndCredits reads what GET /api/v1/me tells a key's owner, and no
// more: that request is made often and should cost as little as a read can.
func (s *Store) EmailAndCredits(ctx context.Context, userID int64) (email string, credits int64, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT email, credits FROM users WHERE id = ?`, userID).Scan(&email, &credits)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return "", 0, fmt.Errorf("email and credits: %w", err)
	}
	return email, credits, nil
}

// UpdateUserName changes the display name.
func (s *Store) UpdateUserName(ctx context.Context, userID int64, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return expectOne(tx.ExecContext(ctx, `UPDATE users SET name = ? WHERE id = ?`, name, userID))
	})
	if err != nil {
		return fmt.Errorf("update name: %w", err)
	}
	return nil
}

// ChangePassword stores a new password hash and ends every session of the
// user except keepSessionHash (the one that made the change), in one
// transaction, so a stolen session dies with the old password.
func (s *Store) ChangePassword(ctx context.Context, userID int64, passwordHash string, keepSession SessionID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := expectOne(tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?`, userID, keepSession.hash())
		return err
	})
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	return nil
}

// DeleteUser removes an account with its keys, sessions, ledger and
// redemptions (by cascade), so its keys stop working at once.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return expectOne(tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, userID))
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// expectOne turns "no row changed" into ErrNotFound.
func expectOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
