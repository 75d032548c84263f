// Package store owns PeekShot's data: users, server-side sessions, API keys,
// the credits ledger and coupons, kept in one SQLite database. Methods are
// named for use cases and run one transaction each; ownership is part of
// every query, and zero rows is ErrNotFound.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Sentinel errors; callers use errors.Is.
var (
	ErrNotFound            = errors.New("not found")
	ErrEmailTaken          = errors.New("email already registered")
	ErrKeyLimit            = errors.New("API key limit reached")
	ErrAlreadyRotated      = errors.New("API key already rotated")
	ErrInsufficientCredits = errors.New("insufficient credits")
	ErrCouponExists        = errors.New("coupon code already exists")
	ErrCouponUnknown       = errors.New("unknown coupon")
	ErrCouponExpired       = errors.New("coupon expired")
	ErrCouponExhausted     = errors.New("coupon fully redeemed")
	ErrCouponRedeemed      = errors.New("coupon already redeemed by this user")
	ErrCouponDisabled      = errors.New("coupon disabled")
	// ErrStorageFull means the database could not grow (disk or quota full).
	ErrStorageFull = errors.New("storage full")
)

// Store is PeekShot's database. Writes go through a single connection with
// immediate transactions, so concurrent writers queue in Go instead of
// failing with "database is locked"; reads use a pool of their own.
type Store struct {
	write *sql.DB
	read  *sql.DB
	now   func() time.Time
	path  string
	// created is set when this Open made the schema: a fresh database.
	created bool
}

// Options tune Open; the zero value is right for production.
type Options struct {
	// Now replaces the clock, for tests.
	Now func() time.Time
	// ReadConns is the size of the read pool (default 4).
	ReadConns int
	// Driver is the database/sql driver name (default "sqlite3"). Tests
	// register a wrapper of the SQLite driver to count queries.
	Driver string
	// MaxPageCount caps the database at this many pages (PRAGMA
	// max_page_count on the writer), so tests can make the disk "full";
	// 0 leaves SQLite's default. See SetMaxPageCount.
	MaxPageCount int
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns a ready Store.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: create data folder: %w", err)
		}
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		q.Set("_txlock", txlock)
		q.Set("_busy_timeout", "10000")
		q.Set("_foreign_keys", "on")
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		// Each connection keeps its prepared statements, so a hot query
		// (an API key or user lookup) is not parsed and planned again
		// every time: that was half its cost.
		q.Set("_stmt_cache_size", "64")
		return "file:" + path + "?" + q.Encode()
	}
	driver := cmp.Or(opts.Driver, "sqlite3")
	write, err := sql.Open(driver, dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	s := &Store{write: write, now: opts.Now, path: path}
	if s.now == nil {
		s.now = time.Now
	}
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	if opts.MaxPageCount > 0 {
		if _, err := s.SetMaxPageCount(ctx, opts.MaxPageCount); err != nil {
			write.Close()
			return nil, err
		}
	}
	// Readers keep up to 16 MB of pages each (SQLite's default is 2 MB), so
	// the API key index of a large install stays in memory; only pages
	// actually read take memory.
	read, err := sql.Open(driver, dsn("deferred")+"&mode=ro&_cache_size=-16384")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	n := opts.ReadConns
	if n <= 0 {
		n = 4
	}
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)
	s.read = read
	return s, nil
}

// Close closes both connection pools. It checkpoints the WAL so the file
// on disk is complete on its own.
func (s *Store) Close() error {
	errRead := s.read.Close()
	_, _ = s.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	errWrite := s.write.Close()
	return errors.Join(errRead, errWrite)
}

// SetMaxPageCount caps the database at pages pages and returns the cap
// SQLite applied (never below the current size). The pragma belongs to a
// connection; the writer is one long-lived connection, so it holds for
// every write until changed. Reliability tests use it to fill the "disk"
// and to give the space back without a restart.
func (s *Store) SetMaxPageCount(ctx context.Context, pages int) (int, error) {
	var applied int
	if err := s.write.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)).Scan(&applied); err != nil {
		return 0, fmt.Errorf("set max page count: %w", err)
	}
	return applied, nil
}

// PageCount is the database's current size in pages.
func (s *Store) PageCount(ctx context.Context) (int, error) {
	var n int
	if err := s.write.QueryRowContext(ctx, "PRAGMA page_count").Scan(&n); err != nil {
		return 0, fmt.Errorf("page count: %w", err)
	}
	return n, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Created reports whether this Open created the schema, that is whether
// the database was new; serve greets a fresh install with it.
func (s *Store) Created() bool { return s.created }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.read.PingContext(ctx) }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		var version int
		if _, err := fmt.Sscanf(base, "%04d_", &version); err != nil {
			return fmt.Errorf("migrate: bad migration name %q", base)
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				version, strings.TrimSuffix(base, ".sql"), s.now().Unix())
			if err == nil && version == 1 {
				s.created = true
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
	}
	return nil
}

// inTx runs fn in one immediate write transaction, committing when fn
// returns nil. Disk-full errors come back as ErrStorageFull.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return storageErr(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return storageErr(err)
	}
	return storageErr(tx.Commit())
}

// storageErr marks errors that mean the database cannot grow, so the web
// layer can answer with a clear 507-class message instead of a generic one.
func storageErr(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.Code == sqlite3.ErrIoErr) {
		return fmt.Errorf("%w: %w", ErrStorageFull, err)
	}
	return err
}

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

func isCheckViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintCheck
}

// unix converts a nullable column to a time; NULL is the zero time.
func unix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0)
}
