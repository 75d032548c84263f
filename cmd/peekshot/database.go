package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/postgres"
	"github.com/peekshot/peekshot/store/sqlite"
)

// database is the store the configuration names, and whether opening it
// created its schema (a fresh install).
type database struct {
	store.Store
	created bool
	// where names the database for people, without a password.
	where string
}

// openDatabase opens PostgreSQL when PEEKSHOT_DATABASE_URL is set, else
// the SQLite file in PEEKSHOT_DB. mustExist refuses to create a SQLite
// file: the command line works on the server's database, and a mistyped
// PEEKSHOT_DB should be an error, not a new empty database.
func openDatabase(ctx context.Context, cfg config, mustExist bool) (*database, error) {
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
		if err != nil {
			return nil, err
		}
		return &database{Store: st, created: st.Created(), where: "PostgreSQL (PEEKSHOT_DATABASE_URL)"}, nil
	}
	if mustExist {
		if _, err := os.Stat(cfg.DB); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s: start the server once (peekshot serve) to create it, or set PEEKSHOT_DB to the server's database", cfg.DB)
		} else if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
	}
	st, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	return &database{Store: st, created: st.Created(), where: cfg.DB}, nil
}
