package web

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peekshot/peekshot/capture"
)

// runExample runs examples/screenshot.sh against base with key, writing
// into dir; it returns stdout, stderr and whether it succeeded.
func runExample(t *testing.T, base, key, dir string) (string, string, bool) {
	t.Helper()
	script, err := filepath.Abs("../examples/screenshot.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", script, "https://example.com", "out.png")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PEEKSHOT_URL=" + base, "PEEKSHOT_API_KEY=" + key}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), err == nil
}

// TestExampleScript: examples/screenshot.sh, as the README tells people to
// run it, on a server at another port (PEEKSHOT_URL): it saves the image,
// and each failure prints PeekShot's own message and saves nothing (an
// error's JSON was once saved as the picture).
func TestExampleScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("examples/screenshot.sh needs curl: apt-get install curl")
	}
	e := newTestEnv(t, withRenderer(&fakeRenderer{}))
	b, _ := e.signUp()
	key, _ := createKeyHTMX(t, b, "script")

	noImage := func(dir string) {
		t.Helper()
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Fatalf("the script left %v", entries)
		}
	}
	t.Run("Saves", func(t *testing.T) {
		dir := t.TempDir()
		out, stderr, ok := runExample(t, e.http.URL, key, dir)
		if !ok || !strings.Contains(out, "Saved out.png") {
			t.Fatalf("stdout %q stderr %q", out, stderr)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "out.png")); !bytes.HasPrefix(data, []byte("\x89PNG")) {
			t.Fatalf("out.png holds %q", data)
		}
	})
	t.Run("BadKey", func(t *testing.T) {
		dir := t.TempDir()
		_, stderr, ok := runExample(t, e.http.URL, "psk_"+strings.Repeat("0", 38), dir)
		if ok || !strings.HasPrefix(stderr, "PeekShot refused the key: ") || !strings.Contains(stderr, "(invalid_api_key, HTTP 401)") || strings.Contains(stderr, `{"error"`) {
			t.Fatalf("stderr %q", stderr)
		}
		noImage(dir)
	})
	t.Run("RenderRefused", func(t *testing.T) {
		refusing := newTestEnv(t, withRenderer(&fakeRenderer{err: &capture.ForbiddenError{Host: "internal.example", Reason: "a private address"}}))
		b, _ := refusing.signUp()
		key, _ := createKeyHTMX(t, b, "script")
		dir := t.TempDir()
		_, stderr, ok := runExample(t, refusing.http.URL, key, dir)
		if ok || !strings.HasPrefix(stderr, "The screenshot failed: ") || !strings.Contains(stderr, "(forbidden_target, HTTP 403)") || strings.Contains(stderr, `{"error"`) {
			t.Fatalf("stderr %q", stderr)
		}
		noImage(dir)
	})
	t.Run("NoServer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String()
		ln.Close()
		dir := t.TempDir()
		_, stderr, ok := runExample(t, closed, key, dir)
		if ok || !strings.Contains(stderr, "Can't reach PeekShot at "+closed) || !strings.Contains(stderr, "PEEKSHOT_URL") {
			t.Fatalf("stderr %q", stderr)
		}
		noImage(dir)
	})
}
