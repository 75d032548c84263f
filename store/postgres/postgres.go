// Package postgres is PeekShot's store on PostgreSQL, for running many
// instances on one database: the SQL of store/sqlstore with PostgreSQL's
// dialect through pgx, its schema migrated by goose (under an advisory
// lock, so instances starting together migrate once), and changes made by
// any instance announced to the others with LISTEN/NOTIFY.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/peekshot/peekshot/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune Open; the zero value is right for production.
type Options struct {
	// Now replaces the clock, for tests.
	Now func() time.Time
	// MaxConns bounds the connection pool (default 16), besides the one
	// connection that listens for changes.
	MaxConns int
	// Tracer sees every query of the pool (pgx's tracing hook), for
	// instrumentation.
	Tracer pgx.QueryTracer
}

// Store is the store on one PostgreSQL database.
type Store struct {
	*sqlstore.DB
	db      *sql.DB
	config  *pgx.ConnConfig
	created bool
}

// Open connects to the database at url (postgres://…), migrates it and
// returns a ready Store. It fails at once when the database can't be
// reached.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	config, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("PEEKSHOT_DATABASE_URL: %w", err)
	}
	// A connection whose server went silent is noticed within seconds.
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 5 * time.Second}
	config.DialFunc = dialer.DialContext
	if config.ConnectTimeout == 0 {
		config.ConnectTimeout = 5 * time.Second
	}
	listen := config.Copy() // the listener is not traced
	if opts.Tracer != nil {
		config.Tracer = opts.Tracer
	}
	db := stdlib.OpenDB(*config)
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = 16
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", describe(config), err)
	}
	created, err := migrate(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate PostgreSQL at %s: %w", describe(config), err)
	}
	return &Store{DB: sqlstore.New(db, db, nil, dialect{}, opts.Now), db: db, config: listen, created: created}, nil
}

// describe names a database without its password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// migrate brings the schema up to date and reports whether it was made
// just now. The session lock makes instances that start at the same time
// take turns, so only the one that applied the first migration made it.
func migrate(ctx context.Context, db *sql.DB) (created bool, err error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return false, err
	}
	// Instances waiting for the lock try again every second (goose's
	// default is every 5), for the same 5 minutes in all.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return false, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker),
		goose.WithLogger(goose.NopLogger()))
	if err != nil {
		return false, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range results {
		if r.Source != nil && r.Source.Version == 1 {
			created = true
		}
	}
	return created, nil
}

// Created reports whether this Open created the schema.
func (s *Store) Created() bool { return s.created }

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }
