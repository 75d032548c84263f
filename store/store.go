// Package store is the contract between PeekShot and its database: one
// interface per entity, as the web layer and the command line use them.
// SQLite (store/sqlite, the embedded default) and PostgreSQL
// (store/postgres, for many instances) implement it, and both pass the one
// conformance suite in store/storetest.
//
// Every method takes a context and is one use case in one transaction.
// Errors are account's sentinels (errors.Is): ErrNotFound for zero rows,
// also for another user's row, ErrStorageFull when the database cannot
// grow, ErrUnavailable when it cannot be reached.
package store

import (
	"context"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// Users keeps accounts.
type Users interface {
	// CreateUser creates an account with its sign-up credits, recorded in
	// the ledger in the same transaction; a taken email is ErrEmailTaken.
	CreateUser(ctx context.Context, nu account.NewUser) (account.User, error)
	UserByEmail(ctx context.Context, email string) (account.User, error)
	UserByID(ctx context.Context, id int64) (account.User, error)
	// EmailAndCredits reads what GET /api/v1/me tells a key's owner.
	EmailAndCredits(ctx context.Context, userID int64) (email string, credits int64, err error)
	UpdateUserName(ctx context.Context, userID int64, name string) error
	// ChangePassword stores a new hash and ends every session of the user
	// but keep (the one that made the change).
	ChangePassword(ctx context.Context, userID int64, passwordHash string, keep account.SessionID) error
	// DeleteUser removes an account with its keys, sessions, ledger and
	// redemptions: its keys stop working at once.
	DeleteUser(ctx context.Context, userID int64) error
}

// Sessions keeps signed-in sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s account.Session) error
	// SessionByID loads a session; a revoked or unknown id is ErrNotFound.
	SessionByID(ctx context.Context, id account.SessionID) (account.Session, error)
	// UpdateSession stores data and last-seen time; a session revoked
	// meanwhile stays revoked (ErrNotFound).
	UpdateSession(ctx context.Context, s account.Session) error
	DeleteSession(ctx context.Context, id account.SessionID) error
	// DeleteStaleSessions removes sessions idle since before idleBefore or
	// created before createdBefore, and returns how many went.
	DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error)
	UserSessionCount(ctx context.Context, userID int64) (int, error)
}

// Logins throttles password checks.
type Logins interface {
	// AdmitLoginAttempt counts one more password check for email unless
	// limit were checked since `since`, atomically, so racing requests
	// cannot all be admitted.
	AdmitLoginAttempt(ctx context.Context, email string, since time.Time, limit int) (bool, error)
	// LoginFailures counts the checks for email since `since`.
	LoginFailures(ctx context.Context, email string, since time.Time) (int, error)
}

// APIKeys keeps API keys. Every method that changes a key is a Change for
// caches (see Watcher).
type APIKeys interface {
	// CreateAPIKey stores a new key, refusing the one past MaxAPIKeys live
	// keys (ErrKeyLimit).
	CreateAPIKey(ctx context.Context, nk account.NewAPIKey) (account.APIKey, error)
	// APIKeys lists a user's keys, newest first, in one query.
	APIKeys(ctx context.Context, userID int64) ([]account.APIKey, error)
	// APIKey is one of the user's keys, with what it spent this month, in
	// one query; another user's key is ErrNotFound.
	APIKey(ctx context.Context, userID, keyID int64) (account.APIKey, error)
	// APIKeyByID finds any user's key, for the operator's command line,
	// which acts on every account (peekshot keys deactivate --id N). A
	// request never uses it: what a user reads and changes is theirs by
	// the methods that take their user id.
	APIKeyByID(ctx context.Context, keyID int64) (account.APIKey, error)
	// APIKeyByHash finds a key for API authentication; it reads only what
	// authentication and /api/v1/me need (no usage).
	APIKeyByHash(ctx context.Context, hash apikey.Hash) (account.APIKey, error)
	// SetAPIKeyActive deactivates or activates one of the user's keys and
	// returns it as it now is; an expired key can't be activated
	// (ErrKeyExpired).
	SetAPIKeyActive(ctx context.Context, userID, keyID int64, active bool) (account.APIKey, error)
	// RotateAPIKey replaces a key by next (same label and policy): the old
	// key works for the grace period, then retires. It returns the old key
	// as it now is and the replacement.
	RotateAPIKey(ctx context.Context, userID, keyID int64, next string, grace account.Grace) (old, replacement account.APIKey, err error)
	// UpdateAPIKeySettings changes a key's label, policy and expiry; an
	// expired key can't be changed (ErrKeyExpired).
	UpdateAPIKeySettings(ctx context.Context, userID, keyID int64, ks account.KeySettings) (account.APIKey, error)
	DeleteAPIKey(ctx context.Context, userID, keyID int64) error
	// RecordAPIKeyUsage adds usage counted by one server to what is
	// stored (the keys' counts, last client, and their days); keys deleted
	// meanwhile are skipped.
	RecordAPIKeyUsage(ctx context.Context, usage []account.KeyUsage) error
	// KeyUsageDays is a key's usage per day from `from` on, oldest first.
	KeyUsageDays(ctx context.Context, userID, keyID int64, from time.Time) ([]account.KeyDay, error)
	// KeyIPsPerDay is, for the user's keys seen from more than min client
	// addresses in one day since `since`, the most in a day.
	KeyIPsPerDay(ctx context.Context, userID int64, since time.Time, min int) (map[int64]int, error)
	// UpdateKeyLifecycles moves auto-grace retirements and logs keys that
	// expired or retired; idempotent, for every instance to run.
	UpdateKeyLifecycles(ctx context.Context) (ended int, err error)
	// CountActiveAPIKeys counts a user's keys that work right now.
	CountActiveAPIKeys(ctx context.Context, userID int64) (int, error)
}

// Credits keeps balances, their ledger, and the credits reserved for
// renders in progress.
type Credits interface {
	// AdmitRender admits one render or says why not: over the key's rate
	// limit (*account.RateLimitedError), over its monthly budget
	// (*account.BudgetExhaustedError), or no credit left that another
	// admitted render has not reserved (ErrInsufficientCredits). An
	// admitted render holds a reservation until ChargeRender or
	// ReleaseRender, or until it expires when its server died.
	AdmitRender(ctx context.Context, a account.RenderAdmission) (account.Reservation, error)
	// ChargeRender takes the reserved credit for a successful render, with
	// its ledger row, and returns the new balance. A signed link's render
	// takes it only the first time in the link's lifetime, across every
	// instance: a link paid for meanwhile gives the reservation back.
	ChargeRender(ctx context.Context, r account.Reservation) (account.Charge, error)
	// ReleaseRender gives the reserved credit back: the render failed.
	ReleaseRender(ctx context.Context, r account.Reservation) error
	Credits(ctx context.Context, userID int64) (int64, error)
	// Ledger is a user's ledger, oldest first.
	Ledger(ctx context.Context, userID int64) ([]account.LedgerEntry, error)
	// LedgerMismatches lists users whose balance is not the sum of their
	// ledger: empty is the invariant holding.
	LedgerMismatches(ctx context.Context) ([]int64, error)
	// LiveReservations counts reservations that have not expired (for
	// operators and tests).
	LiveReservations(ctx context.Context) (int, error)
}

// Coupons keeps coupons and their redemptions.
type Coupons interface {
	// CreateCoupon stores a coupon; a code in use is ErrCouponExists, one
	// that could never work ErrCouponInvalid.
	CreateCoupon(ctx context.Context, nc account.NewCoupon) (account.Coupon, error)
	// Coupons lists every coupon, newest first.
	Coupons(ctx context.Context) ([]account.Coupon, error)
	DisableCoupon(ctx context.Context, code string) (account.Coupon, error)
	// RedeemCoupon adds a coupon's credits to a balance, with its ledger
	// row, and returns the coupon and the new balance; unknown, disabled,
	// expired, exhausted and already-redeemed codes change nothing.
	RedeemCoupon(ctx context.Context, userID int64, code string) (account.Coupon, int64, error)
	Redemptions(ctx context.Context, userID int64) ([]account.Redemption, error)
}

// Activities is the append-only log of what happened to accounts and
// their keys. Every change of the store writes its own entry, by the actor
// account.WithActor puts in the change's context.
type Activities interface {
	// LogActivity appends an entry no change writes (a sign-in), about
	// no key.
	LogActivity(ctx context.Context, userID int64, ev account.Event, detail string) error
	// Activity is a page of a user's log, newest first.
	Activity(ctx context.Context, userID int64, f account.ActivityFilter) ([]account.Activity, error)
}

// Reveals hands a new key across the redirect that shows it, whichever
// server answers: sealed by the caller, read once, short-lived.
type Reveals interface {
	PutReveal(ctx context.Context, token []byte, userID int64, sealed []byte, expires time.Time) error
	// TakeReveal returns the sealed key once, to its user, before it
	// expires; otherwise ErrNotFound. It is deleted either way.
	TakeReveal(ctx context.Context, token []byte, userID int64) ([]byte, error)
}

// SigningSecrets keeps each key's secret for signed links (SPEC §8),
// sealed by the caller so that the database never holds it in clear.
// Setting one is a Change of its key, so that a rotated secret stops
// verifying on every instance (see Watcher).
type SigningSecrets interface {
	// SetSigningSecret gives one of the user's keys a new signing secret,
	// replacing the one it had, and logs key.settings_changed; an expired
	// key can't have one (ErrKeyExpired).
	SetSigningSecret(ctx context.Context, userID, keyID int64, ns account.NewSigningSecret) (secret account.SigningSecret, replaced bool, err error)
	// SigningSecret is one of the user's keys' secret; none is ErrNotFound.
	SigningSecret(ctx context.Context, userID, keyID int64) (account.SigningSecret, error)
	// SignedLinkKey finds a key by its id for a signed link: what
	// APIKeyByHash reads, and its sealed secret. An unknown key and a key
	// without a secret are ErrNotFound.
	SignedLinkKey(ctx context.Context, keyID int64) (account.SignedLinkKey, error)
}

// LeakReports keeps what secret scanners report of keys found in public.
type LeakReports interface {
	// ReportLeakedKey deactivates the key whose hash a scanner found, at
	// once, keeps where it was found, and logs key.leak_reported (by the
	// actor in ctx); a key reported again keeps the latest report. No key
	// with that hash is ErrNotFound, and nothing changes.
	ReportLeakedKey(ctx context.Context, hash apikey.Hash, leak account.Leak) (account.LeakReport, error)
	// LeakReports lists the user's keys reported leaked that the owner has
	// not dealt with yet (rotated, deleted, or dismissed), newest first.
	LeakReports(ctx context.Context, userID int64) ([]account.LeakReport, error)
	// DismissLeakReport marks one of the user's keys' report dealt with;
	// a key without a report is ErrNotFound.
	DismissLeakReport(ctx context.Context, userID, keyID int64) error
}

// Change is a committed write that a cache may hold a copy of: one key
// (KeyID, with its UserID), or a user's account (UserID alone: their email
// or credits), or with AllKeys every key of the user too (the account was
// deleted).
type Change struct {
	KeyID   int64
	UserID  int64
	AllKeys bool
}

// Watcher tells caches about the changes every process commits.
type Watcher interface {
	// Watch calls changed for every change committed by any process that
	// shares the database, until ctx ends. It calls live(false) when
	// changes may go unseen (the feed is down) and live(true) once every
	// later change will be seen again; a cache must not be trusted in
	// between. The first call is live(true) once watching started.
	Watch(ctx context.Context, changed func(Change), live func(bool))
}

// Store is all of the contract, as one database.
type Store interface {
	Users
	Sessions
	Logins
	APIKeys
	Credits
	Coupons
	Activities
	Reveals
	SigningSecrets
	LeakReports
	Watcher
	// Sweep deletes what has outlived its use: stale sessions' siblings
	// (expired reveals and reservations, old change records).
	Sweep(ctx context.Context) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}
