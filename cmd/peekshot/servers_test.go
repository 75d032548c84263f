package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCouponWarnsAboutAnotherServer runs the real server on one database
// and the coupon commands on another, as a newcomer who forgot PEEKSHOT_DB
// beside an old data/ folder would: the commands still work, and say that
// the running server uses another database and how to reach it. On the
// server's own database they say nothing.
func TestCouponWarnsAboutAnotherServer(t *testing.T) {
	tmp := t.TempDir()
	serverDBPath := filepath.Join(tmp, "live", "peekshot.db")
	p := startProcess(t, testDB{path: serverDBPath}, filepath.Join(tmp, "tmp"))
	oldDB, _ := serverDB(t)

	out, stderr, err := cli(t, oldDB, "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "No coupons yet") {
		t.Fatalf("list on the old database: %q", out)
	}
	want := "PEEKSHOT_DB=" + canonicalPath(serverDBPath)
	if !strings.Contains(stderr, "no server is running on "+canonicalPath(oldDB)) || !strings.Contains(stderr, want) {
		t.Fatalf("no warning naming the server's database (pid %d):\n%s", p.cmd.Process.Pid, stderr)
	}

	// The same database, also through a symlink, is the server's: no
	// warning.
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(filepath.Dir(serverDBPath), link); err != nil {
		t.Fatal(err)
	}
	for i, db := range []string{serverDBPath, filepath.Join(link, "peekshot.db")} {
		if _, stderr, err := cli(t, db, "create", "--code", "LIVE-"+strconv.Itoa(i), "--credits", "5"); err != nil || stderr != "" {
			t.Fatalf("%s: err %v, stderr %q", db, err, stderr)
		}
	}
}

func TestWarnOtherServer(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	for _, tc := range []struct {
		name    string
		servers []runningServer
		warns   bool
	}{
		{"NoServer", nil, false},
		{"OnThisDatabase", []runningServer{{pid: 7, db: canonicalPath(a)}}, false},
		{"OnAnother", []runningServer{{pid: 7, db: canonicalPath(b)}}, true},
		{"OnBoth", []runningServer{{pid: 7, db: canonicalPath(b)}, {pid: 8, db: canonicalPath(a)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w strings.Builder
			warnOtherServer(&w, a, tc.servers)
			if got := w.Len() > 0; got != tc.warns {
				t.Fatalf("warned %v, want %v: %q", got, tc.warns, w.String())
			}
		})
	}
}
