package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// keyReader runs the key lookup of every API request not in the key cache
// (sqlstore.KeyReader) on read-only connections of its own, each holding
// the query prepared. Through database/sql and the driver's statement
// cache the lookup alone cost 1.3 × as much (300,000 keys): taking the
// statement from the driver's cache and putting it back (with a finalizer
// set each time), and database/sql's bookkeeping of the connection and
// the row. The connections are opened through the store's driver, so a
// driver that wraps SQLite's sees these queries too.
type keyReader struct {
	drv   driver.Driver
	dsn   string
	query string // sqlstore.KeyByHashQuery

	idle   chan *keyConn // connections not in use
	slots  chan struct{} // one per connection that may still be opened
	mu     sync.Mutex    // orders put against Close
	closed atomic.Bool
}

// keyConn is one of the reader's connections with its prepared lookup.
type keyConn struct {
	conn  driver.Conn
	stmt  driver.Stmt
	query driver.StmtQueryContext // stmt
	args  [1]driver.NamedValue
	vals  []driver.Value
}

var errKeyReaderClosed = errors.New("sqlite: the store is closed")

// newKeyReader runs query through drv on dsn, with at most n connections.
func newKeyReader(drv driver.Driver, dsn, query string, n int) *keyReader {
	r := &keyReader{drv: drv, dsn: dsn, query: query, idle: make(chan *keyConn, n), slots: make(chan struct{}, n)}
	for range n {
		r.slots <- struct{}{}
	}
	return r
}

// ReadKey reads the row the reader's query finds for hash into dest.
func (r *keyReader) ReadKey(ctx context.Context, hash []byte, dest ...any) error {
	c, err := r.get(ctx)
	if err != nil {
		return err
	}
	err = c.read(ctx, hash, dest)
	r.put(c, err)
	return err
}

// get takes an idle connection, opens one if the reader has fewer than
// its maximum, or waits for one to be put back.
func (r *keyReader) get(ctx context.Context) (*keyConn, error) {
	if r.closed.Load() {
		return nil, errKeyReaderClosed
	}
	select {
	case c := <-r.idle:
		return c, nil
	default:
	}
	select {
	case c := <-r.idle:
		return c, nil
	case <-r.slots:
		c, err := r.dial(ctx)
		if err != nil {
			r.slots <- struct{}{}
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dial opens a connection and prepares the query on it. A connection
// opened while the reader closes is closed when it is put back.
func (r *keyReader) dial(ctx context.Context) (*keyConn, error) {
	if r.closed.Load() {
		return nil, errKeyReaderClosed
	}
	conn, err := r.drv.Open(r.dsn)
	if err != nil {
		return nil, fmt.Errorf("open a key reader: %w", err)
	}
	c := &keyConn{conn: conn}
	if err := c.prepare(ctx, r.query); err != nil {
		conn.Close() //nolint:errcheck // refused
		return nil, fmt.Errorf("key reader: %w", err)
	}
	return c, nil
}

// put gives c back, or closes it when the reader is closed or c failed in
// a way that leaves it unusable.
func (r *keyReader) put(c *keyConn, err error) {
	r.mu.Lock()
	if !r.closed.Load() && !errors.Is(err, driver.ErrBadConn) {
		r.idle <- c // never blocks: at most cap(idle) connections exist
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	c.close() //nolint:errcheck // the connection is dropped either way
	r.slots <- struct{}{}
}

// Close closes every connection, the ones in use as they are put back. A
// lookup waiting for a connection then gets its slot, and an error.
func (r *keyReader) Close() error {
	r.mu.Lock()
	r.closed.Store(true)
	r.mu.Unlock()
	var errs []error
	for {
		select {
		case c := <-r.idle:
			errs = append(errs, c.close())
			r.slots <- struct{}{}
		default:
			return errors.Join(errs...)
		}
	}
}

// prepare prepares query on c.
func (c *keyConn) prepare(ctx context.Context, query string) error {
	prep, ok := c.conn.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("the driver's connection %T can't prepare with a context", c.conn)
	}
	stmt, err := prep.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	q, ok := stmt.(driver.StmtQueryContext)
	if !ok {
		stmt.Close() //nolint:errcheck // refused
		return fmt.Errorf("the driver's statement %T can't query with a context", stmt)
	}
	c.stmt, c.query = stmt, q
	return nil
}

// read runs the query for hash and scans its one row into dest.
func (c *keyConn) read(ctx context.Context, hash []byte, dest []any) error {
	c.args[0] = driver.NamedValue{Ordinal: 1, Value: hash}
	rows, err := c.query.QueryContext(ctx, c.args[:])
	c.args[0].Value = nil
	if err != nil {
		return err
	}
	if n := len(rows.Columns()); n != len(dest) {
		rows.Close() //nolint:errcheck // refused
		return fmt.Errorf("key reader: %d columns for %d destinations", n, len(dest))
	}
	if cap(c.vals) < len(dest) {
		c.vals = make([]driver.Value, len(dest))
	}
	vals := c.vals[:len(dest)]
	err = rows.Next(vals)
	if errors.Is(err, io.EOF) {
		err = sql.ErrNoRows
	}
	if err == nil {
		err = assign(dest, vals)
	}
	clear(vals) // the row's bytes are not kept past the call
	return errors.Join(err, rows.Close())
}

func (c *keyConn) close() error { return errors.Join(c.stmt.Close(), c.conn.Close()) }

// assign stores a row's values in dest as database/sql's Scan would, for
// the destinations a key lookup has.
func assign(dest []any, vals []driver.Value) error {
	for i, d := range dest {
		v := vals[i]
		var ok bool
		switch d := d.(type) {
		case *int64:
			*d, ok = v.(int64)
		case *string:
			switch v := v.(type) {
			case string:
				*d, ok = v, true
			case []byte:
				*d, ok = string(v), true
			}
		case *bool:
			switch v := v.(type) {
			case bool:
				*d, ok = v, true
			case int64:
				*d, ok = v != 0, true
			}
		case sql.Scanner:
			if err := d.Scan(v); err != nil {
				return fmt.Errorf("key reader: column %d: %w", i, err)
			}
			ok = true
		default:
			return fmt.Errorf("key reader: column %d: can't scan into %T", i, d)
		}
		if !ok {
			return fmt.Errorf("key reader: column %d: can't scan %T into %T", i, v, d)
		}
	}
	return nil
}
