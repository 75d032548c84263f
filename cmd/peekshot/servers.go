package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// runningServer is a `peekshot serve` process on this machine.
type runningServer struct {
	pid int
	db  string // absolute path of its database
}

// runningServers finds the `peekshot serve` processes of this machine and
// the database each one uses, from /proc: their command line, working
// directory and PEEKSHOT_DB. Where /proc can't tell (another system,
// another user's process), it finds nothing, which is never an error.
func runningServers() []runningServer {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var found []runningServer
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "peekshot" || args[1] != "serve" {
			continue
		}
		cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
		if err != nil {
			continue
		}
		environ, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil {
			continue
		}
		db := filepath.Join("data", "peekshot.db")
		onPostgres := false
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("PEEKSHOT_DB=")); ok && len(v) > 0 {
				db = string(v)
			}
			if v, ok := bytes.CutPrefix(kv, []byte("PEEKSHOT_DATABASE_URL=")); ok && len(v) > 0 {
				onPostgres = true
			}
		}
		if onPostgres {
			continue // it uses no SQLite file
		}
		if !filepath.IsAbs(db) {
			db = filepath.Join(cwd, db)
		}
		found = append(found, runningServer{pid: pid, db: canonicalPath(db)})
	}
	return found
}

// canonicalPath makes two spellings of one file compare equal.
func canonicalPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	return p
}

// warnOtherServer tells the operator when no server runs on the database
// the command is about to change but one runs on another: most likely
// PEEKSHOT_DB is missing or points at an old data folder, and the running
// server would never see the change.
func warnOtherServer(w io.Writer, db string, servers []runningServer) {
	db = canonicalPath(db)
	var others []runningServer
	for _, s := range servers {
		if s.db == db {
			return
		}
		others = append(others, s)
	}
	if len(others) == 0 {
		return
	}
	if len(others) == 1 {
		fmt.Fprintf(w, "peekshot: warning: no server is running on %s, but one is (process %d) on %s.\n", db, others[0].pid, others[0].db)
		fmt.Fprintf(w, "  To work on that server's coupons and keys, run the command with PEEKSHOT_DB=%s\n", others[0].db)
		return
	}
	fmt.Fprintf(w, "peekshot: warning: no server is running on %s, but %d are on other databases:\n", db, len(others))
	for _, s := range others {
		fmt.Fprintf(w, "  process %d: PEEKSHOT_DB=%s\n", s.pid, s.db)
	}
	fmt.Fprint(w, "  To work on one's coupons and keys, run the command with its PEEKSHOT_DB.\n")
}
