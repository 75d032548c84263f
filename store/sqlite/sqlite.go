// Package sqlite is PeekShot's store in one SQLite file, the embedded
// default: the SQL of store/sqlstore with SQLite's dialect, its schema
// migrated by goose, writes through a single connection and reads from a
// pool of their own (WAL), the key lookup of API requests from
// connections of its own, and changes made by other processes (the
// command line) seen by polling a table of them.
package sqlite

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
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"

	"github.com/peekshot/peekshot/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune Open; the zero value is right for production.
type Options struct {
	// Now replaces the clock, for tests.
	Now func() time.Time
	// ReadConns is the size of the read pool, and the number of the key
	// lookup's connections beside it (default 4 each).
	ReadConns int
	// Driver is the database/sql driver name (default "sqlite3"); tests
	// register a wrapper of it to count queries.
	Driver string
}

// Store is the store on one SQLite file.
type Store struct {
	*sqlstore.DB
	write *sql.DB
	read  *sql.DB
	keys  *keyReader // the key lookup's connections
	path  string
	// created is set when this Open made the schema: a fresh database.
	created bool
}

// Open opens (creating if needed) the database at path, migrates it and
// returns a ready Store.
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
		return DSN(path, q.Encode())
	}
	driver := cmp.Or(opts.Driver, "sqlite3")
	// One writer, with immediate transactions: concurrent writers queue in
	// Go instead of failing with "database is locked".
	write, err := sql.Open(driver, dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	created, err := migrate(ctx, write)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	// Readers keep up to 16 MB of pages each (SQLite's default is 2 MB);
	// only pages actually read take memory. A reader drops all of them when
	// another connection has committed since its last read (the usage
	// flush does every second), so they save re-reading within a second;
	// beyond that the operating system's cache holds the file and a page
	// costs a pread. (Mapping the file, PRAGMA mmap_size, saved that copy,
	// a tenth of a lookup at a million keys, but turns an I/O error into a
	// SIGBUS that kills the process, losing the unwritten usage: not worth
	// it.)
	readDSN := dsn("deferred") + "&mode=ro&_cache_size=-16384"
	read, err := sql.Open(driver, readDSN)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	n := cmp.Or(opts.ReadConns, 4)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)
	// The key lookup has connections of its own, as many, alike.
	keys := newKeyReader(read.Driver(), readDSN, sqlstore.KeyByHashQuery(dialect{}), n)
	return &Store{
		DB:    sqlstore.New(write, read, keys, dialect{}, opts.Now),
		write: write, read: read, keys: keys, path: path, created: created,
	}, nil
}

// DSN is the driver's name for the database file at path with the query
// (driver and SQLite parameters): a "file:" URI, so the path's %, ? and #
// are escaped — unescaped, a ? would start the parameters early and a #
// would cut the path short, opening another file.
func DSN(path, query string) string {
	dsn := "file:" + uriPath.Replace(path)
	if query != "" {
		dsn += "?" + query
	}
	return dsn
}

var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// migrate brings the schema up to date with goose and reports whether it
// was made just now. A database made by the first release, which kept its
// own record of migrations, takes goose's record from here on.
func migrate(ctx context.Context, db *sql.DB) (created bool, err error) {
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'`).Scan(&tables); err != nil {
		return false, err
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return false, err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()))
	if err != nil {
		return false, err
	}
	if _, err := p.Up(ctx); err != nil {
		return false, storageErr(err)
	}
	return tables == 0, nil
}

// Close closes both connection pools. It checkpoints the WAL so the file
// on disk is complete on its own.
func (s *Store) Close() error {
	errKeys := s.keys.Close()
	errRead := s.read.Close()
	_, _ = s.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	errWrite := s.write.Close()
	return errors.Join(errKeys, errRead, errWrite)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Created reports whether this Open created the schema, that is whether
// the database was new; serve greets a fresh install with it.
func (s *Store) Created() bool { return s.created }

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

// storageErr marks errors that mean the database cannot grow, so the web
// layer can answer with a clear 507-class message instead of a generic one.
func storageErr(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.Code == sqlite3.ErrIoErr) {
		return fmt.Errorf("%w: %w", errStorageFull, err)
	}
	return err
}
