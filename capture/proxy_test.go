package capture

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// countingServer is a loopback server that records how often it was hit.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingServer(t *testing.T, tlsServer bool) *countingServer {
	t.Helper()
	cs := &countingServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.hits.Add(1)
		io.WriteString(w, "secret")
	})
	if tlsServer {
		cs.Server = httptest.NewTLSServer(h)
	} else {
		cs.Server = httptest.NewServer(h)
	}
	t.Cleanup(cs.Close)
	return cs
}

func addrPort(t *testing.T, rawURL string) netip.AddrPort {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

func TestProxy(t *testing.T) {
	allowedSrv := newCountingServer(t, false)
	blockedSrv := newCountingServer(t, false)
	allowedTLS := newCountingServer(t, true)
	blockedTLS := newCountingServer(t, true)

	res := testResolver()
	res["allowed.test"] = []string{"127.0.0.1"}
	g := NewGuard(GuardConfig{
		Resolver:   res,
		AllowAddrs: []netip.AddrPort{addrPort(t, allowedSrv.URL), addrPort(t, allowedTLS.URL)},
	})
	p, err := startProxy(g, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	proxyURL, _ := url.Parse(p.URL())

	newClient := func(tlsConfig *tls.Config) *http.Client {
		return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: tlsConfig}}
	}
	client := newClient(nil)
	defer client.CloseIdleConnections()

	t.Run("forwards an allowed request", func(t *testing.T) {
		resp, err := client.Get(allowedSrv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "secret" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("resolves names through the guard", func(t *testing.T) {
		port := addrPort(t, allowedSrv.URL).Port()
		resp, err := client.Get("http://allowed.test:" + strconv.Itoa(int(port)) + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("refuses a blocked request", func(t *testing.T) {
		for _, u := range []string{blockedSrv.URL, strings.Replace(blockedSrv.URL, "127.0.0.1", "localhost", 1)} {
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get(refusedHeader) != p.token {
				t.Fatalf("%s: got %d %v", u, resp.StatusCode, resp.Header)
			}
			if strings.Contains(string(body), "secret") {
				t.Fatal("blocked content leaked")
			}
		}
		if n := blockedSrv.hits.Load(); n != 0 {
			t.Fatalf("blocked server got %d hits", n)
		}
	})
	t.Run("tunnels an allowed CONNECT", func(t *testing.T) {
		c := newClient(allowedTLS.Client().Transport.(*http.Transport).TLSClientConfig)
		defer c.CloseIdleConnections()
		resp, err := c.Get(allowedTLS.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "secret" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("refuses a blocked CONNECT", func(t *testing.T) {
		c := newClient(blockedTLS.Client().Transport.(*http.Transport).TLSClientConfig)
		defer c.CloseIdleConnections()
		resp, err := c.Get(blockedTLS.URL)
		if err == nil {
			resp.Body.Close()
			t.Fatal("CONNECT to a blocked address succeeded")
		}
		if n := blockedTLS.hits.Load(); n != 0 {
			t.Fatalf("blocked TLS server got %d hits", n)
		}
	})
	t.Run("refuses requests to itself", func(t *testing.T) {
		resp, err := client.Get(p.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}
