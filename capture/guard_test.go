package capture

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver answers from a map, so no test asks real DNS.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ss, ok := f[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, errors.New("lookup " + host + " on 10.0.0.53:53: no such host")
	}
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func testResolver() fakeResolver {
	return fakeResolver{
		"example.com":        {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"public.test":        {"8.8.8.8"},
		"example.internal":   {"10.0.0.5"},
		"mixed.test":         {"8.8.8.8", "192.168.1.10"},
		"mixed6.test":        {"8.8.8.8", "fd12::1"},
		"metadata.test":      {"169.254.169.254"},
		"rebind.test":        {"127.0.0.1"},
		"xn--bcher-kva.test": {"1.1.1.1"},
	}
}

type outcome int

const (
	allowed outcome = iota
	forbidden
	invalid
	unreachable
)

func (o outcome) String() string {
	return [...]string{"allowed", "forbidden", "invalid", "unreachable"}[o]
}

func classify(err error) outcome {
	var oe *OptionError
	switch {
	case err == nil:
		return allowed
	case errors.Is(err, ErrForbiddenTarget):
		return forbidden
	case errors.As(err, &oe):
		return invalid
	case errors.Is(err, ErrTargetUnreachable):
		return unreachable
	}
	return -1
}

func TestGuardCheckURL(t *testing.T) {
	g := NewGuard(GuardConfig{Resolver: testResolver()})
	tests := []struct {
		url  string
		want outcome
	}{
		// Public targets pass.
		{"https://example.com/", allowed},
		{"http://example.com:8080/path?q=1#f", allowed},
		{"HTTPS://EXAMPLE.COM", allowed},
		{"http://public.test", allowed},
		{"http://8.8.8.8/", allowed},
		{"http://[2606:4700:4700::1111]/", allowed},
		{"http://example.com./", allowed},
		{"http://user:pass@example.com/", allowed},
		{"http://bücher.test/", allowed},
		{"http:example.com", allowed},
		{"  http://example.com/  ", allowed},
		{"http://[::ffff:8.8.8.8]/", allowed},
		{"http://[64:ff9b::808:808]/", allowed},
		{"http://[2002:808:808::1]/", allowed},

		// Loopback in every spelling Chromium accepts.
		{"http://127.0.0.1/", forbidden},
		{"http://127.0.0.1:8080/", forbidden},
		{"http://127.1/", forbidden},
		{"http://127.0.1/", forbidden},
		{"http://0x7f000001/", forbidden},
		{"http://0X7F000001/", forbidden},
		{"http://2130706433/", forbidden},
		{"http://0177.0.0.1/", forbidden},
		{"http://0x7f.0.0.1/", forbidden},
		{"http://017700000001/", forbidden},
		{"http://127.0.0.1./", forbidden},
		{"http://%31%32%37.0.0.1/", forbidden},
		{"http://１２７.０.０.１/", forbidden},
		{"http://127。0。0。1/", forbidden},
		{"http://[::1]/", forbidden},
		{"http://[0:0:0:0:0:0:0:1]/", forbidden},
		{"http://[::ffff:127.0.0.1]/", forbidden},
		{"http://[::ffff:7f00:1]/", forbidden},
		{"http://[::127.0.0.1]/", forbidden},
		{"http://[64:ff9b::7f00:1]/", forbidden},
		{"http://[2002:7f00:1::]/", forbidden},
		{"http://localhost/", forbidden},
		{"http://LOCALHOST./", forbidden},
		{"http://foo.localhost/", forbidden},
		{"http://example.com@127.0.0.1/", forbidden},
		{"http://example.com:80@127.0.0.1/", forbidden},
		{"http://a@b@127.0.0.1/", forbidden},
		{`http:\\127.0.0.1\x`, forbidden},
		{"http:/127.0.0.1/", forbidden},
		{"http://127.0.0.1\t/", forbidden},
		{"http://12\n7.0.0.1/", forbidden},
		{"http://rebind.test/", forbidden},

		// Private, link-local, metadata and friends.
		{"http://10.0.0.1/", forbidden},
		{"http://172.16.0.1/", forbidden},
		{"http://172.31.255.255/", forbidden},
		{"http://192.168.0.1/", forbidden},
		{"http://169.254.169.254/latest/meta-data/", forbidden},
		{"http://169.254.1.1/", forbidden},
		{"http://100.64.0.1/", forbidden},
		{"http://100.100.100.200/", forbidden},
		{"http://0.0.0.0/", forbidden},
		{"http://0/", forbidden},
		{"http://255.255.255.255/", forbidden},
		{"http://224.0.0.1/", forbidden},
		{"http://240.0.0.1/", forbidden},
		{"http://192.0.0.170/", forbidden},
		{"http://192.0.2.1/", forbidden},
		{"http://198.18.0.1/", forbidden},
		{"http://[fd00:ec2::254]/", forbidden},
		{"http://[fc00::1]/", forbidden},
		{"http://[fe80::1]/", forbidden},
		{"http://[ff02::1]/", forbidden},
		{"http://[::]/", forbidden},
		{"http://[2001::1]/", forbidden},
		{"http://[2001:db8::1]/", forbidden},
		{"http://[::ffff:169.254.169.254]/", forbidden},
		{"http://[::ffff:a00:1]/", forbidden},
		{"http://example.internal/", forbidden},
		{"http://metadata.test/", forbidden},
		{"http://mixed.test/", forbidden},
		{"http://mixed6.test/", forbidden},

		// Not a URL Chromium would load, or not http(s).
		{"", invalid},
		{"example.com", invalid},
		{"//example.com/", invalid},
		{"ftp://example.com/", invalid},
		{"file:///etc/passwd", invalid},
		{"javascript:alert(1)", invalid},
		{"chrome://settings", invalid},
		{"data:text/html,hi", invalid},
		{"http://", invalid},
		{"http://user@/", invalid},
		{"http://1.2.3.4.5/", invalid},
		{"http://256.0.0.1/", invalid},
		{"http://0x100000000/", invalid},
		{"http://example.com:99999/", invalid},
		{"http://example.com:8o/", invalid},
		{"http://[::1/", invalid},
		{"http://[fe80::1%25eth0]/", invalid},
		{"http://exa mple.com/", invalid},
		{"http://foo.0x/", invalid},

		// Hosts that do not resolve.
		{"http://nowhere.test/", unreachable},
		{"http:///nowhere.test", unreachable}, // extra slashes are skipped, as in Chromium
	}
	if len(tests) < 40 {
		t.Fatalf("only %d rows", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := g.CheckURL(context.Background(), tt.url)
			if got := classify(err); got != tt.want {
				t.Fatalf("CheckURL(%q) = %v (%v), want %v", tt.url, got, err, tt.want)
			}
		})
	}
}

func TestGuardMixedAddressesRefused(t *testing.T) {
	g := NewGuard(GuardConfig{Resolver: testResolver()})
	err := g.CheckURL(context.Background(), "https://mixed.test/")
	var fe *ForbiddenError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want *ForbiddenError", err)
	}
	if fe.Addr != netip.MustParseAddr("192.168.1.10") {
		t.Errorf("refused address = %v, want the private one", fe.Addr)
	}
	const want = "mixed.test resolves to 192.168.1.10, a private address"
	if err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
}

func TestGuardMessages(t *testing.T) {
	g := NewGuard(GuardConfig{Resolver: testResolver()})
	tests := map[string]string{
		"http://example.internal/":   "example.internal resolves to 10.0.0.5, a private address",
		"http://0x7f000001/":         "127.0.0.1 is a loopback address",
		"http://169.254.169.254/":    "169.254.169.254 is the cloud metadata address",
		"http://nowhere.test/":       "target could not be loaded: nowhere.test does not resolve",
		"gopher://example.com/":      "url must use http or https",
		"http://[::ffff:127.0.0.1]/": "::ffff:127.0.0.1 resolves to 127.0.0.1, a loopback address",
	}
	for url, want := range tests {
		err := g.CheckURL(context.Background(), url)
		if err == nil || err.Error() != want {
			t.Errorf("CheckURL(%q) = %v, want %q", url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "10.0.0.53") {
			t.Errorf("CheckURL(%q) leaks the resolver's address: %v", url, err)
		}
	}
}

func TestGuardAllowances(t *testing.T) {
	ap := netip.MustParseAddrPort("127.0.0.1:8080")
	t.Run("AllowAddrs is exact", func(t *testing.T) {
		g := NewGuard(GuardConfig{Resolver: testResolver(), AllowAddrs: []netip.AddrPort{ap}})
		for url, want := range map[string]outcome{
			"http://127.0.0.1:8080/":          allowed,
			"http://127.1:8080/":              allowed,
			"http://[::ffff:127.0.0.1]:8080/": allowed,
			"http://127.0.0.1:8081/":          forbidden,
			"http://127.0.0.2:8080/":          forbidden,
			"http://127.0.0.1/":               forbidden,
			"http://localhost:8080/":          forbidden, // ::1 is not allowed
		} {
			if got := classify(g.CheckURL(context.Background(), url)); got != want {
				t.Errorf("%s: %v, want %v", url, got, want)
			}
		}
	})
	t.Run("AllowPrivate lifts the guard", func(t *testing.T) {
		g := NewGuard(GuardConfig{Resolver: testResolver(), AllowPrivate: true})
		for _, url := range []string{"http://127.0.0.1/", "http://example.internal/", "http://[::1]:9/"} {
			if err := g.CheckURL(context.Background(), url); err != nil {
				t.Errorf("%s: %v", url, err)
			}
		}
		if got := classify(g.CheckURL(context.Background(), "file:///etc/passwd")); got != invalid {
			t.Errorf("file URL: %v, want invalid", got)
		}
	})
}

func TestForbiddenAddr(t *testing.T) {
	tests := map[string]bool{
		"8.8.8.8": false, "1.1.1.1": false, "93.184.215.14": false, "100.63.255.255": false,
		"100.128.0.0": false, "172.15.255.255": false, "172.32.0.0": false, "192.169.0.1": false,
		"198.17.255.255": false, "198.20.0.0": false, "223.255.255.255": false,
		"2606:4700:4700::1111": false, "2a00:1450:4001::1": false, "::ffff:8.8.8.8": false,
		"127.0.0.1": true, "127.255.255.254": true, "10.1.2.3": true, "172.16.0.0": true,
		"192.168.255.255": true, "169.254.0.1": true, "100.64.0.0": true, "100.127.255.255": true,
		"0.0.0.0": true, "0.1.2.3": true, "224.0.0.251": true, "239.255.255.250": true,
		"240.0.0.0": true, "255.255.255.255": true, "192.0.0.8": true, "198.18.0.0": true,
		"198.19.255.255": true, "192.88.99.1": true, "203.0.113.9": true, "198.51.100.1": true,
		"::": true, "::1": true, "fe80::1": true, "fe80::1%eth0": true, "fec0::1": true,
		"fc00::": true, "fdff:ffff::1": true, "ff00::": true, "::ffff:127.0.0.1": true,
		"::ffff:10.0.0.1": true, "::10.0.0.1": true, "64:ff9b::a9fe:a9fe": true,
		"64:ff9b:1::1": true, "2002:a00:1::": true, "2001:0:4136:e378::1": true,
		"2001:db8::": true, "3fff::1": true, "100::1": true, "5f00::1": true, "4000::1": true,
		"fd00:ec2::254": true,
	}
	for s, want := range tests {
		_, got := ForbiddenAddr(netip.MustParseAddr(s))
		if got != want {
			t.Errorf("ForbiddenAddr(%s) = %v, want %v", s, got, want)
		}
	}
	if _, bad := ForbiddenAddr(netip.Addr{}); !bad {
		t.Error("the zero Addr must be refused")
	}
}

func TestParseIPv4(t *testing.T) {
	tests := map[string]string{
		"127.1": "127.0.0.1", "0x7f000001": "127.0.0.1", "2130706433": "127.0.0.1",
		"0177.0.0.1": "127.0.0.1", "127.0.0.1.": "127.0.0.1", "0x7f.1": "127.0.0.1",
		"0": "0.0.0.0", "0x": "0.0.0.0", "1.2.3": "1.2.0.3", "0xffffffff": "255.255.255.255",
		"00000000000000000000000127.0.0.1": "87.0.0.1", // a leading 0 means octal
		"0x0000000000000000000000007f.1":   "127.0.0.1",
		"4294967296":                       "",
		"1.256.0.0":                        "",
		"1.2.3.4.5":                        "",
		"09.0.0.1":                         "",
	}
	for in, want := range tests {
		a, ok := parseIPv4(in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("parseIPv4(%q) = %q, want %q", in, got, want)
		}
	}
}
