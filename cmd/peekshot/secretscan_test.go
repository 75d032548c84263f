package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadSecretScanningKeys: a key file that can't be read or
// is not GitHub's format stops serve at once, saying which variable is
// wrong and why, before it creates or starts anything.
func TestServeRefusesBadSecretScanningKeys(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(bad, []byte(`{"public_keys": [{"key_identifier": "k1", "key": "not a PEM block"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"Missing", filepath.Join(dir, "nowhere.json"), "no such file"},
		{"NotAKey", bad, "PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(dir, tc.name, "data")
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"serve"}, env(
				"PEEKSHOT_DB", filepath.Join(data, "peekshot.db"), "PEEKSHOT_ADDR", "127.0.0.1:0",
				"PEEKSHOT_SECRET_SCANNING_KEYS", tc.path), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "PEEKSHOT_SECRET_SCANNING_KEYS") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v", err)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("serve created its data folder before reading the key file")
			}
		})
	}
}
