package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/storetest"
)

// keysCLI runs `peekshot keys …` in-process on db.
func keysCLI(t *testing.T, db testDB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	vars := []string{"PEEKSHOT_DB", db.path}
	if db.url != "" {
		vars = []string{"PEEKSHOT_DATABASE_URL", db.url}
	}
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"keys"}, args...), env(vars...), &out, &errOut)
	return out.String(), withoutServerWarning(errOut.String()), err
}

// newCLIKey creates a key for u in st and returns it with its plaintext.
func newCLIKey(t *testing.T, st store.Store, u account.User, label string) (account.APIKey, string) {
	t.Helper()
	plain := storetest.MustKey(t)
	k, err := st.CreateAPIKey(context.Background(), account.NewAPIKey{UserID: u.ID, Label: label, Key: plain})
	if err != nil {
		t.Fatal(err)
	}
	return k, plain
}

var keyRow = regexp.MustCompile(`^(\d+)\s{2,}(.+?)\s{2,}(psk_\S+)\s{2,}(.+?)\s{2,}(\S+)\s{2,}(\d{4}-\d\d-\d\d \d\d:\d\d)\s{2,}(never|\d{4}-\d\d-\d\d \d\d:\d\d)\s{2,}(\d+)$`)

// TestKeysCLI is the operator's incident response on either database:
// list an account's keys, masked, and deactivate one by its id, with a
// message and an exit for every case.
func TestKeysCLI(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		st := db.open(t)
		ctx := context.Background()
		alice, err := st.CreateUser(ctx, account.NewUser{Email: "alice@example.com", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		nobody, err := st.CreateUser(ctx, account.NewUser{Email: "nokeys@example.com", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		prod, prodPlain := newCLIKey(t, st, alice, "Production\x1b[2J\tserver")
		used := time.Now().UTC().Truncate(time.Minute)
		if err := st.RecordAPIKeyUsage(ctx, []account.KeyUsage{{KeyID: prod.ID, Day: used.Truncate(24 * time.Hour),
			Requests: 7, Accepted: 7, FirstUsed: used, LastUsed: used, LastIP: "203.0.113.9", LastAgent: "curl/8"}}); err != nil {
			t.Fatal(err)
		}
		off, offPlain := newCLIKey(t, st, alice, "")
		if _, err := st.SetAPIKeyActive(ctx, alice.ID, off.ID, false); err != nil {
			t.Fatal(err)
		}
		old, oldPlain := newCLIKey(t, st, alice, "old")
		_, replacement, err := st.RotateAPIKey(ctx, alice.ID, old.ID, storetest.MustKey(t), account.Grace{})
		if err != nil {
			t.Fatal(err)
		}
		all := []string{prodPlain, offPlain, oldPlain}

		t.Run("List", func(t *testing.T) {
			out, stderr, err := keysCLI(t, db, "list", "--email", " Alice@Example.com ")
			if err != nil || stderr != "" {
				t.Fatalf("%v, stderr %q", err, stderr)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if lines[0] != fmt.Sprintf("alice@example.com (account %d) has 4 API keys; times are UTC.", alice.ID) || lines[1] != "" {
				t.Fatalf("heading:\n%s", out)
			}
			if !regexp.MustCompile(`^ID\s+LABEL\s+KEY\s+STATUS\s+SCOPES\s+CREATED\s+LAST USED\s+REQUESTS$`).MatchString(lines[2]) {
				t.Fatalf("header %q", lines[2])
			}
			want := [][]string{ // newest first
				{strconv.FormatInt(replacement.ID, 10), `"old"`, replacement.Masked(), "active", "screenshots,html_to_image", "never", "0"},
				{strconv.FormatInt(old.ID, 10), `"old"`, old.Masked(), "expired", "screenshots,html_to_image", "never", "0"},
				{strconv.FormatInt(off.ID, 10), "(untitled)", off.Masked(), "inactive", "screenshots,html_to_image", "never", "0"},
				// The label's escape sequence and tab are not written to the terminal.
				{strconv.FormatInt(prod.ID, 10), `"Production[2Jserver"`, prod.Masked(), "active", "screenshots,html_to_image", minuteText(used), "7"},
			}
			if len(lines) != 3+len(want) {
				t.Fatalf("%d lines:\n%s", len(lines), out)
			}
			for i, w := range want {
				m := keyRow.FindStringSubmatch(lines[3+i])
				if m == nil {
					t.Fatalf("row %d %q is not a row of the table:\n%s", i, lines[3+i], out)
				}
				got := []string{m[1], m[2], m[3], m[4], m[5], m[7], m[8]}
				if strings.Join(got, "|") != strings.Join(w, "|") {
					t.Fatalf("row %d: %q, want %q", i, got, w)
				}
			}
			if strings.ContainsRune(out, '\x1b') {
				t.Fatal("the list writes an escape sequence to the terminal")
			}
			for _, plain := range all {
				hash := apikey.HashOf(plain)
				if strings.Contains(out, plain) || strings.Contains(out, plain[4:12]) || strings.Contains(out, hex.EncodeToString(hash[:])) {
					t.Fatalf("the list shows a key or its hash:\n%s", out)
				}
			}
		})
		t.Run("ListNoKeys", func(t *testing.T) {
			out, _, err := keysCLI(t, db, "list", "--email", nobody.Email)
			if err != nil || out != fmt.Sprintf("nokeys@example.com (account %d) has no API keys.\n", nobody.ID) {
				t.Fatalf("%q %v", out, err)
			}
		})

		// Deactivations log what they did; the count tells a second one.
		deactivations := func(k account.APIKey) []account.Activity {
			t.Helper()
			log, err := st.Activity(ctx, alice.ID, account.ActivityFilter{KeyID: k.ID, Event: account.EventKeyDeactivated, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return log
		}
		t.Run("Deactivate", func(t *testing.T) {
			out, stderr, err := keysCLI(t, db, "deactivate", "--id", strconv.FormatInt(prod.ID, 10))
			if err != nil || stderr != "" {
				t.Fatalf("%v, stderr %q", err, stderr)
			}
			want := fmt.Sprintf("Key %d (%s, \"Production[2Jserver\") of alice@example.com is deactivated: every running server refuses it within a second (403 api_key_inactive).\n", prod.ID, prod.Masked())
			if !strings.HasPrefix(out, want) || !strings.Contains(out, "the owner can activate it again in Account → API Keys") {
				t.Fatalf("output %q, want it to begin %q", out, want)
			}
			k, err := st.APIKeyByHash(ctx, apikey.HashOf(prodPlain))
			if err != nil || k.Active {
				t.Fatalf("the key is still active: %+v %v", k, err)
			}
			log := deactivations(prod)
			if len(log) != 1 || log[0].Actor.Kind != account.ActorOperator || log[0].KeyMasked != prod.Masked() {
				t.Fatalf("activity %+v", log)
			}
		})
		t.Run("AlreadyInactive", func(t *testing.T) {
			for _, k := range []account.APIKey{prod, off} {
				out, _, err := keysCLI(t, db, "deactivate", "--id", strconv.FormatInt(k.ID, 10))
				if err != nil || !strings.HasSuffix(out, "was already deactivated: nothing changed.\n") {
					t.Fatalf("%q %v", out, err)
				}
			}
			if n := len(deactivations(prod)); n != 1 {
				t.Fatalf("%d deactivations logged, want the first alone", n)
			}
		})
		t.Run("Expired", func(t *testing.T) {
			out, _, err := keysCLI(t, db, "deactivate", "--id", strconv.FormatInt(old.ID, 10))
			if err != nil || !regexp.MustCompile(`^Key \d+ \(psk_.{4}….{4}, "old"\) of alice@example\.com has been expired since \d{4}-\d\d-\d\d \d\d:\d\d and is refused for good: nothing changed\.\n$`).MatchString(out) {
				t.Fatalf("%q %v", out, err)
			}
			if n := len(deactivations(old)); n != 0 {
				t.Fatalf("an expired key's deactivation was logged %d times", n)
			}
			if k, _ := st.APIKey(ctx, alice.ID, replacement.ID); !k.Active {
				t.Fatal("the replacement was deactivated")
			}
		})

		for _, tc := range []struct {
			name  string
			args  []string
			msg   string
			usage bool // the usage follows a mistake in how the command was called
		}{
			{"UnknownEmail", []string{"list", "--email", "nobody@example.com"}, `keys list: there is no account with the email "nobody@example.com"`, false},
			{"NoEmail", []string{"list"}, "keys list: --email is required", false},
			{"UnknownID", []string{"deactivate", "--id", "999999"}, "keys deactivate: there is no API key with the id 999999", false},
			{"NoID", []string{"deactivate"}, "keys deactivate: --id is required", false},
			{"WordID", []string{"deactivate", "--id", "abc"}, `--id must be a key's id, a whole number greater than 0, not "abc"`, false},
			{"ZeroID", []string{"deactivate", "--id", "0"}, "greater than 0", false},
			{"NegativeID", []string{"deactivate", "--id=-3"}, "greater than 0", false},
			{"UnknownFlag", []string{"deactivate", "--id", "1", "--force"}, "keys deactivate: flag provided but not defined: -force", true},
			{"FlagWithoutValue", []string{"list", "--email"}, "flag needs an argument: -email", true},
			{"Positional", []string{"deactivate", "12"}, `keys deactivate: unexpected argument "12"`, true},
			{"UnknownCommand", []string{"revoke", "--id", "1"}, `keys: unknown command "revoke"`, true},
			{"NoCommand", nil, "keys: say what to do", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, stderr, err := keysCLI(t, db, tc.args...)
				if err == nil || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, tc.msg)
				}
				if out != "" {
					t.Fatalf("a failed command printed %q", out)
				}
				if got := strings.Contains(stderr, "peekshot keys deactivate --id ID"); got != tc.usage {
					t.Fatalf("usage shown %v, want %v: %q", got, tc.usage, stderr)
				}
			})
		}
		if k, _ := st.APIKey(ctx, alice.ID, replacement.ID); !k.Active {
			t.Fatal("a refused command deactivated a key")
		}
	})
}

// TestKeysNeedExistingDatabase: a mistyped PEEKSHOT_DB is an error, not a
// new empty database.
func TestKeysNeedExistingDatabase(t *testing.T) {
	db := testDB{path: filepath.Join(t.TempDir(), "typo", "peekshot.db")}
	for _, args := range [][]string{{"list", "--email", "a@example.com"}, {"deactivate", "--id", "1"}} {
		if _, _, err := keysCLI(t, db, args...); err == nil || !strings.Contains(err.Error(), "no database at "+db.path) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Dir(db.path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the command created a database where none was")
	}
}

// TestKeysDeactivateReachesRunningServer runs the real server and the real
// binary's keys deactivate on its database: the server refuses the key
// within a second (SPEC §9), its cache notwithstanding, and the binary's
// exit status says what happened.
func TestKeysDeactivateReachesRunningServer(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		p := startProcess(t, db, filepath.Join(t.TempDir(), "tmp"))
		st := db.open(t)
		u, err := st.CreateUser(context.Background(), account.NewUser{Email: "leaky@example.com", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		k, plain := newCLIKey(t, st, u, "leaked")
		me := func() (int, string) {
			t.Helper()
			req, _ := http.NewRequest("GET", p.base+"/api/v1/me", nil)
			req.Header.Set("x-api-key", plain)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(body)
		}
		for range 2 { // the second answer comes from the server's cache
			if code, body := me(); code != http.StatusOK {
				t.Fatalf("before: %d %s", code, body)
			}
		}
		exe := func(args ...string) (string, string, int) {
			t.Helper()
			cmd := exec.Command(peekshotBinary(t), args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, db.env()...)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			return out.String(), withoutServerWarning(errOut.String()), cmd.ProcessState.ExitCode()
		}
		id := strconv.FormatInt(k.ID, 10)
		out, stderr, code := exe("keys", "deactivate", "--id", id)
		changed := time.Now()
		if code != 0 || !strings.Contains(out, "is deactivated") || stderr != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		for {
			code, body := me()
			if code == http.StatusForbidden && strings.Contains(body, `"api_key_inactive"`) {
				t.Logf("refused %v after the deactivation", time.Since(changed).Round(time.Millisecond))
				break
			}
			if time.Since(changed) > time.Second {
				t.Fatalf("the running server still answers %d %s %v after the deactivation", code, body, time.Since(changed))
			}
			time.Sleep(5 * time.Millisecond)
		}
		if out, _, code := exe("keys", "deactivate", "--id", id); code != 0 || !strings.Contains(out, "nothing changed") {
			t.Fatalf("again: exit %d, %q", code, out)
		}
		out, stderr, code = exe("keys", "deactivate", "--id", "999999")
		if code != 1 || out != "" || !strings.HasSuffix(stderr, "peekshot: keys deactivate: there is no API key with the id 999999 (it may have been deleted); peekshot keys list --email EMAIL shows an account's keys\n") {
			t.Fatalf("unknown id: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		out, stderr, code = exe("keys", "list", "--email", "leaky@example.com")
		if code != 0 || !strings.Contains(out, k.Masked()) || !strings.Contains(out, "inactive") || strings.Contains(out, plain) || stderr != "" {
			t.Fatalf("list: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
	})
}
