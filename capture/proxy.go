package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// refusedHeader marks the proxy's own 403 answers, so that the renderer can
// tell "the guard refused the page" from "the page answered 403". Its value
// is a random token per proxy, which a target server cannot guess.
const refusedHeader = "X-Peekshot-Refused"

// unreachableHeader marks the proxy's own 502 answers in the same way.
const unreachableHeader = "X-Peekshot-Unreachable"

// proxyHost is the proxy's address, the only host Chromium connects to.
const proxyHost = "127.0.0.1"

const (
	proxyDialTimeout = 10 * time.Second
	// proxyCloseWait bounds how long Close waits for handlers to return.
	proxyCloseWait = 5 * time.Second
)

// proxy is the forward proxy that Chromium must use for every request,
// loopback included. Enforcing the guard here, rather than only in the
// browser, covers redirects, sub-resources, workers, iframes and WebSockets
// alike, and it closes the DNS-rebinding gap: the proxy resolves the host
// once, checks every address and dials exactly the address it checked.
type proxy struct {
	guard *Guard
	log   *slog.Logger
	token string

	ln        net.Listener
	srv       *http.Server
	transport *http.Transport
	forward   *httputil.ReverseProxy

	mu       sync.Mutex
	closed   bool
	tunnels  map[net.Conn]struct{}
	handlers sync.WaitGroup
}

// startProxy listens on a random loopback port and serves until Close.
func startProxy(g *Guard, log *slog.Logger) (*proxy, error) {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("proxy token: %w", err)
	}
	ln, err := net.Listen("tcp", proxyHost+":0")
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	p := &proxy{
		guard:   g,
		log:     log,
		token:   hex.EncodeToString(tok),
		ln:      ln,
		tunnels: make(map[net.Conn]struct{}),
	}
	p.transport = &http.Transport{
		Proxy:               nil,
		DialContext:         p.dial,
		DisableCompression:  true, // pass the encoding through untouched
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: proxyDialTimeout,
	}
	p.forward = &httputil.ReverseProxy{
		// The incoming request already carries the absolute URL; Rewrite
		// only exists so that no X-Forwarded-For header reveals anything.
		Rewrite:       func(*httputil.ProxyRequest) {},
		Transport:     p.transport,
		FlushInterval: -1,
		ErrorHandler:  p.fail,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go p.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed after Close.
	return p, nil
}

// URL is the value for Chromium's --proxy-server flag.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy and cuts every open tunnel.
func (p *proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.tunnels {
		c.Close()
	}
	p.mu.Unlock()
	err := p.srv.Close()
	p.transport.CloseIdleConnections()

	done := make(chan struct{})
	go func() { p.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(proxyCloseWait):
		p.log.Warn("proxy handlers still running after close")
	}
	p.transport.CloseIdleConnections()
	return err
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handlers.Add(1)
	defer p.handlers.Done()
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" {
		http.Error(w, "this is a forward proxy", http.StatusBadRequest)
		return
	}
	p.forward.ServeHTTP(w, r)
}

// fail answers a request that could not be forwarded.
func (p *proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *ForbiddenError
	switch {
	case errors.As(err, &fe):
		p.refuse(w, r.Host, fe)
	case errors.Is(err, context.Canceled):
		// The browser gave up on the request; nobody reads an answer.
	default:
		p.log.Debug("proxy: upstream failed", "host", r.Host, "url", r.URL.String(), "err", err)
		w.Header().Set(unreachableHeader, p.token)
		http.Error(w, "upstream unreachable", http.StatusBadGateway)
	}
}

func (p *proxy) refuse(w http.ResponseWriter, host string, fe *ForbiddenError) {
	p.log.Info("proxy refused a request", "host", host, "reason", fe.Error())
	w.Header().Set(refusedHeader, p.token)
	http.Error(w, "PeekShot refused this request: "+fe.Error(), http.StatusForbidden)
}

// tunnel serves CONNECT, which carries HTTPS and WebSocket traffic.
func (p *proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := p.dial(r.Context(), "tcp", r.Host)
	if err != nil {
		var fe *ForbiddenError
		if errors.As(err, &fe) {
			p.refuse(w, r.Host, fe)
			return
		}
		p.log.Debug("proxy: tunnel dial failed", "host", r.Host, "err", err)
		http.Error(w, "upstream unreachable", http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "tunnel not supported", http.StatusInternalServerError)
		return
	}
	client, rw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if !p.track(client, upstream) {
		client.Close()
		upstream.Close()
		return
	}
	defer p.untrack(client, upstream)

	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		// Bytes the client sent right after CONNECT may sit in rw's buffer.
		copyThenCloseWrite(upstream, rw.Reader)
		close(done)
	}()
	copyThenCloseWrite(client, upstream)
	<-done
}

func copyThenCloseWrite(dst net.Conn, src io.Reader) {
	io.Copy(dst, src) //nolint:errcheck // a broken tunnel just ends.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.tunnels, c)
		c.Close()
	}
}

// dial resolves address through the guard and connects to one of the
// addresses it checked, never resolving the name again.
func (p *proxy) dial(ctx context.Context, network, address string) (net.Conn, error) {
	hostText, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("proxy dial %q: %w", address, err)
	}
	port, ok := parsePort(portText)
	if !ok || port == 0 {
		return nil, fmt.Errorf("proxy dial %q: bad port", address)
	}
	if strings.Contains(hostText, ":") {
		hostText = "[" + hostText + "]"
	}
	host, _, ok := parseHost(hostText)
	if !ok {
		return nil, fmt.Errorf("proxy dial %q: bad host", address)
	}
	addrs, err := p.guard.resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: proxyDialTimeout}
	var lastErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), port).String())
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
