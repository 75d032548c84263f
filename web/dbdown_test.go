package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/store/storetest"
)

// cuttableProxy forwards TCP to a database server until it is cut: then it
// refuses new connections and breaks the open ones, as a database that went
// away would look to PeekShot.
type cuttableProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func newCuttableProxy(t *testing.T, target string) *cuttableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cuttableProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *cuttableProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// When PostgreSQL goes away, every instance answers 503 for what needs it
// (never a stale answer from its cache), /healthz stays up and /readyz says
// why not; when it is back, everything works again without a restart.
func TestDatabaseGoesAway(t *testing.T) {
	dbURL := storetest.FreshPostgres(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCuttableProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	st := storetest.OpenPostgres(t, u.String(), nil)
	cached := store.NewCached(st, nil)
	waitLive(t, cached)
	t.Cleanup(func() { cached.Close() })
	srv, err := NewServer(Config{SessionSecret: []byte("0123456789abcdef0123456789abcdef-test"), PasswordCost: bcrypt.MinCost},
		cached, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close(context.Background()) })
	e := &testEnv{t: t, store: st, srv: srv, http: hs, clock: storetest.NewClock(time.Now()), logs: &logBuffer{}}

	b, _ := e.signUp()
	key, id := createKeyHTMX(t, b, "through the outage")
	expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK)
	expectStatus(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusOK) // now cached

	proxy.setCut(true)
	// The cache is bypassed within the heartbeat's deadline; from then on
	// the API says the database is unreachable rather than answer from it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.apiCall("GET", "/api/v1/me", key, "")
		if r.StatusCode == http.StatusServiceUnavailable {
			expectAPIError(t, r, http.StatusServiceUnavailable, "service_unavailable")
			if r.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			break
		}
		if r.StatusCode != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("with the database gone the API answers %d: %s", r.StatusCode, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cached.Live() {
		t.Fatal("the cache is still trusted with the database gone")
	}
	if r := b.get("/account/api-keys"); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "reach its database") {
		t.Fatalf("the dashboard with the database gone: %d", r.StatusCode)
	}
	if r := b.get("/healthz"); r.StatusCode != http.StatusOK {
		t.Fatalf("/healthz answered %d: it must not need the database", r.StatusCode)
	}
	if r := b.get("/readyz"); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "database: unreachable") {
		t.Fatalf("/readyz with the database gone: %d %q", r.StatusCode, r.body)
	}

	proxy.setCut(false)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r := e.apiCall("GET", "/api/v1/me", key, ""); r.StatusCode == http.StatusOK && cached.Live() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PeekShot did not recover when the database came back")
		}
	}
	// And a change made now is seen at once.
	expectStatus(t, b.htmx("POST", "/account/api-keys/"+strconv.FormatInt(id, 10)+"/deactivate", url.Values{}), http.StatusOK)
	expectAPIError(t, e.apiCall("GET", "/api/v1/me", key, ""), http.StatusForbidden, "api_key_inactive")
}
