package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// contender is one way of rendering in the peers section: PeekShot through
// its API, or a peer's screenshot server. Each runs as a process tree of
// its own, which the run measures.
type contender struct {
	name    string
	version string // the browser, as it reports itself
	root    int    // the process whose tree is measured
	render  func(ctx context.Context, job renderJob) ([]byte, error)
}

// peerClient sends every render request of the peers section: keep-alive
// connections, enough for the most clients.
var peerClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// postPNG posts body to url and returns the PNG of a 200 answer.
func postPNG(ctx context.Context, url, key string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	res, err := peerClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	switch {
	case err != nil:
		return nil, err
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("POST %s: %s: %.200s", url, res.Status, data)
	case res.Header.Get("Content-Type") != "image/png" || len(data) == 0:
		return nil, fmt.Errorf("POST %s: %d bytes of %s", url, len(data), res.Header.Get("Content-Type"))
	}
	return data, nil
}

// peekshotContender renders through srv's API with key.
func peekshotContender(name string, srv *server, key string) *contender {
	return &contender{name: name, version: srv.browser, root: srv.pid(), render: func(ctx context.Context, job renderJob) ([]byte, error) {
		path, field, value := "/api/v1/html-to-image", "html", job.HTML
		if job.URL != "" {
			path, field, value = "/api/v1/screenshots", "url", job.URL
		}
		body, _ := json.Marshal(map[string]any{field: value, "width": job.Width, "height": job.Height, "format": "png"})
		return postPNG(ctx, srv.url+path, key, body)
	}}
}

// peerServer is a peer's screenshot server in a process of its own: it
// prints {"port": N, "version": "..."} when it listens on 127.0.0.1:N and
// answers POST /render with a renderJob as JSON with a PNG. The direct
// chromedp peer (this program, serve-direct) and the Playwright peer
// (playwright/server.js) both speak it.
type peerServer struct {
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
}

// startPeer starts cmd and waits for its first line.
func startPeer(ctx context.Context, name string, cmd *exec.Cmd) (*contender, *peerServer, error) {
	p := &peerServer{cmd: cmd, exited: make(chan struct{}), stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start the %s peer: %w", name, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out) //nolint:errcheck // nothing more is expected
	}()
	go func() { cmd.Wait(); close(p.exited) }() //nolint:errcheck // reported through stderr
	var hello struct {
		Port    int
		Version string
	}
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Port == 0 {
			p.stop()
			return nil, nil, fmt.Errorf("the %s peer said %q", name, line)
		}
	case <-p.exited:
		return nil, nil, fmt.Errorf("the %s peer exited: %s", name, strings.TrimSpace(p.stderr.String()))
	case <-time.After(time.Minute):
		p.stop()
		return nil, nil, fmt.Errorf("the %s peer did not start within a minute: %s", name, strings.TrimSpace(p.stderr.String()))
	case <-ctx.Done():
		p.stop()
		return nil, nil, ctx.Err()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/render", hello.Port)
	c := &contender{name: name, version: hello.Version, root: cmd.Process.Pid, render: func(ctx context.Context, job renderJob) ([]byte, error) {
		body, _ := json.Marshal(job)
		return postPNG(ctx, url, "", body)
	}}
	return c, p, nil
}

// stop ends the peer (SIGTERM, then SIGKILL).
func (p *peerServer) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck // as above
		<-p.exited
	}
}

// startDirectPeer runs this program as the direct chromedp peer's server,
// with chrome and flags.
func startDirectPeer(ctx context.Context, chrome string, flags []string) (*contender, *peerServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	encoded, _ := json.Marshal(flags)
	cmd := exec.Command(self, "serve-direct", "-chrome", chrome, "-flags", string(encoded))
	return startPeer(ctx, "direct chromedp", cmd)
}

// serveDirect is the direct chromedp peer's server (peekshot-load
// serve-direct): a directRenderer behind the peer protocol.
func serveDirect(ctx context.Context, chrome, flagsJSON string, stdout io.Writer) error {
	var flags []string
	if err := json.Unmarshal([]byte(flagsJSON), &flags); err != nil {
		return fmt.Errorf("-flags: %w", err)
	}
	d, err := newDirectRenderer(chrome, flags)
	if err != nil {
		return fmt.Errorf("start Chromium: %w", err)
	}
	defer d.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var job renderJob
		if err := json.NewDecoder(r.Body).Decode(&job); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		png, err := d.render(r.Context(), job)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(png) //nolint:errcheck // the client may be gone
	})}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed after Shutdown
	hello, _ := json.Marshal(map[string]any{"port": ln.Addr().(*net.TCPAddr).Port, "version": d.version})
	fmt.Fprintf(stdout, "%s\n", hello)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// startPlaywrightPeer installs playwright-core into dir/node_modules when
// it is missing (npm ci, from dir's lock file) and starts dir/server.js
// with chrome.
func startPlaywrightPeer(ctx context.Context, dir, chrome string) (*contender, *peerServer, error) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, nil, fmt.Errorf("the Playwright peer needs Node.js and npm: install them (apt-get install nodejs npm), or run with -sections without peers")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); errors.Is(err, os.ErrNotExist) {
		install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		install.Dir = dir
		if out, err := install.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("npm ci in %s: %w: %s", dir, err, out)
		}
	}
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROME="+chrome)
	return startPeer(ctx, "Playwright", cmd)
}
