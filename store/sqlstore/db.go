// Package sqlstore is PeekShot's store written once in plain SQL, which
// SQLite and PostgreSQL both run through database/sql. Where the two say a
// thing differently (placeholders, locking, error codes, id sequences,
// notifications, index hints) a Dialect says it; store/sqlite and
// store/postgres each provide one, with their own migrations.
//
// Rules about accounts, keys and coupons are account's: a use case loads
// what it needs inside its transaction and asks account, so each rule is
// written once.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
)

var errNotFound = account.ErrNotFound

// Dialect is what one database says its own way.
type Dialect interface {
	// Placeholders turns a query written with ? into the database's own.
	Placeholders(query string) string
	// Classify wraps a driver error in account.ErrStorageFull or
	// account.ErrUnavailable where one applies, and returns any other
	// error as it is.
	Classify(err error) error
	IsUniqueViolation(err error) bool
	IsCheckViolation(err error) bool
	// LockUser makes the transaction the only one that reads and then
	// writes this user's rows until it ends (keys under the limit, credits
	// not yet reserved). SQLite's write transactions already are.
	LockUser(ctx context.Context, tx *sql.Tx, userID int64) error
	// LockEmail does the same for the sign-in attempts of one email.
	LockEmail(ctx context.Context, tx *sql.Tx, email string) error
	// NextAPIKeyID draws an id for a new key that no key ever had.
	NextAPIKeyID(ctx context.Context, tx *sql.Tx) (int64, error)
	// Greatest is the SQL function of the larger of two values.
	Greatest() string
	// APIKeyByHashFrom is the FROM clause of the hot key lookup, naming
	// the index that answers it where the planner needs telling.
	APIKeyByHashFrom() string
	// Notify tells every process watching the database about a change,
	// when (and only if) tx commits.
	Notify(ctx context.Context, tx *sql.Tx, c store.Change, at time.Time) error
	// Sweep deletes, inside tx, what the dialect keeps that has outlived
	// its use at now.
	Sweep(ctx context.Context, tx *sql.Tx, now time.Time) error
}

// DB is the store on one database. It implements every part of
// store.Store but Watch, which each database does its own way.
type DB struct {
	write *sql.DB // every write transaction
	read  *sql.DB // reads outside a transaction (may be write)
	d     Dialect
	now   func() time.Time

	mu      sync.RWMutex
	queries map[string]string // ? queries in the dialect's placeholders

	// byHash is the query of every API request (APIKeyByHash), in the
	// dialect's placeholders, made once; keys runs it instead of read,
	// when the store has a KeyReader.
	byHash string
	keys   KeyReader

	subMu sync.RWMutex
	subs  map[int]func(store.Change)
	subN  int
}

// A KeyReader runs the key lookup of every API request (APIKeyByHash) for
// a store whose driver does it more cheaply than database/sql: it reads
// the row that KeyByHashQuery finds for hash into dest, or returns
// sql.ErrNoRows. dest holds *int64, *string, *bool and sql.Scanner values.
type KeyReader interface {
	ReadKey(ctx context.Context, hash []byte, dest ...any) error
}

// KeyByHashQuery is the key lookup in d's placeholders, with one: the
// key's hash.
func KeyByHashQuery(d Dialect) string {
	return d.Placeholders(`SELECT ` + authKeyColumns + ` FROM ` + d.APIKeyByHashFrom() + ` WHERE key_hash = ?`)
}

// New is the store on write and read (which may be the same pool), with d
// and a clock (nil: time.Now). keys, when not nil, runs the key lookup
// instead of read.
func New(write, read *sql.DB, keys KeyReader, d Dialect, now func() time.Time) *DB {
	if now == nil {
		now = time.Now
	}
	return &DB{write: write, read: read, keys: keys, d: d, now: now, queries: make(map[string]string), subs: make(map[int]func(store.Change)),
		byHash: KeyByHashQuery(d)}
}

// Subscribe calls fn with every change this process commits, right after
// the commit and before the use case returns, so that this process's
// caches never serve what it changed itself. The returned func ends it.
// (Changes made by other processes reach a Watch of the dialect.)
func (db *DB) Subscribe(fn func(store.Change)) (unsubscribe func()) {
	db.subMu.Lock()
	defer db.subMu.Unlock()
	id := db.subN
	db.subN++
	db.subs[id] = fn
	return func() {
		db.subMu.Lock()
		defer db.subMu.Unlock()
		delete(db.subs, id)
	}
}

func (db *DB) publish(changes []store.Change) {
	if len(changes) == 0 {
		return
	}
	db.subMu.RLock()
	defer db.subMu.RUnlock()
	for _, fn := range db.subs {
		for _, c := range changes {
			fn(c)
		}
	}
}

// Now is the store's clock.
func (db *DB) Now() time.Time { return db.now() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return db.fail("ping", err)
	}
	return nil
}

// q is query in the dialect's placeholders, rewritten once.
func (db *DB) q(query string) string {
	db.mu.RLock()
	out, ok := db.queries[query]
	db.mu.RUnlock()
	if ok {
		return out
	}
	out = db.d.Placeholders(query)
	db.mu.Lock()
	db.queries[query] = out
	db.mu.Unlock()
	return out
}

// fail wraps err with what failed, classified once.
func (db *DB) fail(op string, err error) error {
	return fmt.Errorf("%s: %w", op, db.d.Classify(err))
}

// row runs a one-row read outside a transaction.
func (db *DB) row(ctx context.Context, query string, args ...any) *sql.Row {
	return db.read.QueryRowContext(ctx, db.q(query), args...)
}

// rows runs a read outside a transaction.
func (db *DB) rows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.read.QueryContext(ctx, db.q(query), args...)
}

// tx is one use case's transaction; private helpers take it.
type tx struct {
	*sql.Tx
	ctx context.Context
	db  *DB
	now time.Time // the use case's one moment
	// changes are published to this process's subscribers on commit.
	changes []store.Change
}

func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	return t.ExecContext(t.ctx, t.db.q(query), args...)
}

func (t *tx) row(query string, args ...any) *sql.Row {
	return t.QueryRowContext(t.ctx, t.db.q(query), args...)
}

func (t *tx) rows(query string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(t.ctx, t.db.q(query), args...)
}

// notify announces c to every process, this one as soon as t commits.
func (t *tx) notify(c store.Change) error {
	t.changes = append(t.changes, c)
	return t.db.d.Notify(t.ctx, t.Tx, c, t.now)
}

func (t *tx) lockUser(userID int64) error { return t.db.d.LockUser(t.ctx, t.Tx, userID) }

// inTx runs fn in one write transaction, committing when fn returns nil.
func (db *DB) inTx(ctx context.Context, op string, fn func(t *tx) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return db.fail(op, err)
	}
	t := &tx{Tx: sqlTx, ctx: ctx, db: db, now: db.now()}
	if err := fn(t); err != nil {
		_ = sqlTx.Rollback()
		return db.fail(op, err)
	}
	if err := sqlTx.Commit(); err != nil {
		// The commit may have happened all the same: caches forget.
		db.publish(t.changes)
		return db.fail(op, err)
	}
	db.publish(t.changes)
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
		return errNotFound
	}
	return nil
}

// unix converts a nullable column of Unix seconds to a time; NULL is the
// zero time.
func unix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0)
}

// nullUnix is a time as a nullable column; the zero time is NULL.
func nullUnix(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.Unix(), Valid: true}
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// noRows maps sql.ErrNoRows to ErrNotFound.
func noRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errNotFound
	}
	return err
}

// PlaceholdersNumbered rewrites ? as $1, $2, …, for dialects that number
// their placeholders. Queries here have no ? inside string literals.
func PlaceholdersNumbered(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
