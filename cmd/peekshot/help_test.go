package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelpStartsNothing runs the real binary as a newcomer would, asking
// each command for help: it prints the usage (with the environment for the
// server and the top level), exits 0, starts no server and creates no data
// folder, whatever the environment says.
func TestHelpStartsNothing(t *testing.T) {
	bin := peekshotBinary(t)
	for _, tc := range []struct {
		args    []string
		want    string
		withEnv bool
	}{
		{[]string{"help"}, "peekshot serve", true},
		{[]string{"--help"}, "peekshot serve", true},
		{[]string{"-h"}, "peekshot serve", true},
		{[]string{"serve", "--help"}, "Usage: peekshot serve", true},
		{[]string{"serve", "-h"}, "Usage: peekshot serve", true},
		{[]string{"serve", "help"}, "Usage: peekshot serve", true},
		{[]string{"coupon", "--help"}, "peekshot coupon create", false},
		{[]string{"coupon", "help"}, "peekshot coupon create", false},
		{[]string{"coupon", "create", "--help"}, "peekshot coupon create", false},
		{[]string{"coupon", "create", "help"}, "peekshot coupon create", false},
		{[]string{"coupon", "list", "-h"}, "peekshot coupon list", false},
		{[]string{"coupon", "disable", "--help"}, "peekshot coupon disable", false},
		{[]string{"keys", "--help"}, "peekshot keys list --email EMAIL", false},
		{[]string{"keys", "help"}, "peekshot keys deactivate --id ID", false},
		{[]string{"keys", "list", "-h"}, "peekshot keys list --email EMAIL", false},
		{[]string{"keys", "deactivate", "--help"}, "peekshot keys deactivate --id ID", false},
		{[]string{"keys", "deactivate", "help"}, "peekshot keys deactivate --id ID", false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Dir = dir
			// A free port, so that a server started by mistake collides
			// with nothing; a bad variable, so that help can't depend on
			// the configuration.
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PEEKSHOT_ADDR=127.0.0.1:0", "PEEKSHOT_RATE_LIMIT=lots"}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 20 s: it started something\n%s%s", stdout.String(), stderr.String())
			}
			if err != nil {
				t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.want) || stderr.Len() > 0 {
				t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
			for _, v := range envVars {
				if tc.withEnv && !strings.Contains(stdout.String(), v.name) {
					t.Fatalf("%s is not listed:\n%s", v.name, stdout.String())
				}
			}
			if !tc.withEnv && !strings.Contains(stdout.String(), "PEEKSHOT_DB") {
				t.Fatalf("the command's help doesn't say which database it uses:\n%s", stdout.String())
			}
			if tc.withEnv && !strings.Contains(stdout.String(), "127.0.0.1:8080") {
				t.Fatalf("the default address is not shown:\n%s", stdout.String())
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) > 0 {
				t.Fatalf("help left %v in its folder", entries)
			}
		})
	}
}

// TestHelpListsEveryVariable: each PEEKSHOT_ variable the configuration
// reads is in the help's list, and the list names no other.
func TestHelpListsEveryVariable(t *testing.T) {
	read := map[string]bool{}
	if _, err := loadConfig(func(name string) string { read[name] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, v := range envVars {
		listed[v.name] = true
		if !read[v.name] {
			t.Errorf("help lists %s, which the configuration doesn't read", v.name)
		}
	}
	for name := range read {
		if !listed[name] {
			t.Errorf("the configuration reads %s, which help doesn't list", name)
		}
	}
}

// TestServeRefusesArguments: serve takes its settings from the
// environment; an argument is a mistake, said as such, before anything
// starts.
func TestServeRefusesArguments(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--addr", ":9000"}, env("PEEKSHOT_DB", filepath.Join(dir, "data", "peekshot.db")), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "peekshot serve --help") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("serve with a bad argument created its data folder")
	}
}
