package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Chromium writes a profile, and a folder in TMPDIR for the socket that
// makes it a single instance (TMPDIR because a socket path must be short;
// the profile links to it as SingletonSocket). A browser that is killed, or
// a PeekShot that is (kill -9), leaves both behind. So every PeekShot
// process keeps its browsers' profiles in one folder of its own,
// <TMPDIR>/peekshot-chromium/<pid>-<random>, removes a browser's files when
// it stops and the whole folder on Close, and at start-up sweeps the
// folders of PeekShot processes that are gone.

// workRoot holds the folders of every PeekShot process on the machine.
func workRoot() string { return filepath.Join(os.TempDir(), "peekshot-chromium") }

// newWorkDir sweeps folders left by dead processes and makes this one's.
func newWorkDir() (string, error) {
	root := workRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("create Chromium work folder: %w", err)
	}
	sweepWorkDirs(root)
	dir, err := os.MkdirTemp(root, strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("create Chromium work folder: %w", err)
	}
	return dir, nil
}

// sweepWorkDirs removes the folders whose owner process no longer runs.
func sweepWorkDirs(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.SplitN(e.Name(), "-", 2)[0])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		browsers, _ := filepath.Glob(filepath.Join(dir, "browser-*"))
		for _, b := range browsers {
			removeBrowserDir(b)
		}
		_ = os.RemoveAll(dir)
	}
}

// removeBrowserDir removes a browser's profile and the socket folder its
// SingletonSocket link points to, if that is one of Chromium's in TMPDIR.
func removeBrowserDir(dir string) {
	if target, err := os.Readlink(filepath.Join(dir, "profile", "SingletonSocket")); err == nil {
		sock := filepath.Dir(target)
		if filepath.Dir(sock) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(sock), "org.chromium.") {
			_ = os.RemoveAll(sock)
		}
	}
	_ = os.RemoveAll(dir)
}

// processAlive reports whether pid names a running process (one we may not
// own counts as running).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// newBrowserDir makes the folder of one browser process, with its profile.
func newBrowserDir(workDir string) (dir string, err error) {
	dir, err = os.MkdirTemp(workDir, "browser-")
	if err != nil {
		return "", fmt.Errorf("create Chromium profile folder: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "profile"), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create Chromium profile folder: %w", err)
	}
	return dir, nil
}
