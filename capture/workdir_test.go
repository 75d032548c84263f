package capture

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A killed browser, and a PeekShot that was killed itself, leave nothing
// behind for long: each browser's profile and temporary files go when it
// stops, this process's folder goes on Close, and the folders of dead
// PeekShot processes are swept at the next start. Both browsers PeekShot
// may run with are checked: full Chromium also leaves a socket folder.
func TestChromiumFilesAreCleanedUp(t *testing.T) {
	for _, chrome := range []string{HeadlessShellPath, FullChromiumPath} {
		t.Run(filepath.Base(chrome), func(t *testing.T) { filesAreCleanedUp(t, chrome) })
	}
}

func filesAreCleanedUp(t *testing.T, chrome string) {
	requireBrowser(t, chrome)
	// A folder as a killed PeekShot would leave it: its pid no longer runs.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(workRoot(), strconv.Itoa(dead.Process.Pid)+"-stale")
	if err := os.MkdirAll(filepath.Join(stale, "browser-x", "profile"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A folder of a live process stays.
	live := filepath.Join(workRoot(), strconv.Itoa(os.Getppid())+"-live")
	if err := os.MkdirAll(live, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)

	c, url := newRenderer(t, Config{ChromePath: chrome, Concurrency: 1}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<p>hello</p>"))
	}))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the folder of a dead PeekShot was not swept: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the folder of a live process was removed: %v", err)
	}
	if _, err := c.Render(t.Context(), Job{URL: url}); err != nil {
		t.Fatal(err)
	}
	browserDirs := func() []string {
		m, _ := filepath.Glob(filepath.Join(c.workDir, "browser-*"))
		return m
	}
	first := browserDirs()
	if len(first) != 1 {
		t.Fatalf("browser folders %v", first)
	}
	// Full Chromium's profile links to its socket folder in TMPDIR; the
	// headless shell keeps no process singleton.
	sockDir := ""
	if sock, err := os.Readlink(filepath.Join(first[0], "profile", "SingletonSocket")); err == nil {
		sockDir = filepath.Dir(sock)
		if _, err := os.Stat(sockDir); err != nil {
			t.Fatal(err)
		}
	} else if chrome == FullChromiumPath {
		t.Fatalf("no SingletonSocket link in the profile: %v", err)
	}

	// kill -9 the browser: the next render runs on a new one, and the old
	// one's folder is gone.
	if err := syscall.Kill(c.BrowserPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.Render(t.Context(), Job{URL: url}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no render after the browser was killed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(first[0]); !os.IsNotExist(err) {
		t.Fatalf("the killed browser's folder is still there: %v", err)
	}
	if _, err := os.Stat(sockDir); sockDir != "" && !os.IsNotExist(err) {
		t.Fatalf("the killed browser's socket folder %s is still there: %v", sockDir, err)
	}
	if n := len(browserDirs()); n != 1 {
		t.Fatalf("%d browser folders after the restart", n)
	}
	work := c.workDir
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Fatalf("Close left %s: %v", work, err)
	}
}
