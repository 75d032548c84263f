package account

import "time"

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
