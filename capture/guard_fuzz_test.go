package capture

import (
	"context"
	"net/netip"
	"net/url"
	"testing"
)

// FuzzCheckURL feeds arbitrary URLs (and arbitrary hosts inside an http URL)
// to the guard. It must never panic, must only answer with the four known
// outcomes, and must refuse whatever spells a loopback address, whichever
// parser (ours or net/url) reads the address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1/", "127.1", "0x7f000001", "2130706433", "0177.0.0.1",
		"[::ffff:127.0.0.1]", "localhost", "localhost.", "127.0.0.1.", "example.com@127.0.0.1",
		"%31%32%37.0.0.1", "１２７.０.０.１", "[::1]", "0x7f.0x0.0.1", "017700000001",
		"http://example.com/", "https://[2606:4700::1]:443/x", "http:\\\\127.1", "example.com",
		"0x7f.1.", "127.0.0.1:80", "user:pw@127.1:8080", "[64:ff9b::7f00:1]", "1.2.3.4.5",
	} {
		f.Add(s)
	}
	g := NewGuard(GuardConfig{Resolver: testResolver()})
	f.Fuzz(func(t *testing.T, s string) {
		for _, raw := range []string{s, "http://" + s + "/"} {
			err := g.CheckURL(context.Background(), raw)
			got := classify(err)
			if got < allowed || got > unreachable {
				t.Fatalf("CheckURL(%q) returned an unknown error: %v", raw, err)
			}
			if tg, perr := parseTargetURL(raw); perr == nil && tg.addr.IsValid() {
				if _, bad := ForbiddenAddr(tg.addr); bad && got != forbidden {
					t.Fatalf("CheckURL(%q) = %v for refused address %v", raw, got, tg.addr)
				}
				if tg.addr.Unmap().Is4() && tg.addr.Unmap().As4()[0] == 127 && got != forbidden {
					t.Fatalf("CheckURL(%q) = %v for loopback %v", raw, got, tg.addr)
				}
			}
			// Where Go's own parser sees a loopback IP, so must we.
			if u, perr := url.Parse(raw); perr == nil && (u.Scheme == "http" || u.Scheme == "https") {
				if a, aerr := netip.ParseAddr(u.Hostname()); aerr == nil && a.Unmap().IsLoopback() && got == allowed {
					t.Fatalf("CheckURL(%q) allowed, but net/url reads loopback %v", raw, a)
				}
			}
		}
	})
}

// FuzzForbiddenAddr checks that ForbiddenAddr never panics and judges every
// IPv6 form that carries an IPv4 address like the address itself.
func FuzzForbiddenAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "8.8.8.8", "10.0.0.1", "::1", "::ffff:127.0.0.1", "2002:7f00:1::", "fe80::1"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		_, bad := ForbiddenAddr(a)
		if !ok {
			if !bad {
				t.Fatalf("invalid address %x allowed", b)
			}
			return
		}
		if a.Is4() {
			v4 := a.As4()
			if v4[0] == 127 && !bad {
				t.Fatalf("loopback %v allowed", a)
			}
			mapped := netip.AddrFrom16(a.As16())
			if _, mbad := ForbiddenAddr(mapped); mbad != bad {
				t.Fatalf("%v refused=%v but its mapped form %v refused=%v", a, bad, mapped, mbad)
			}
			if !bad {
				return
			}
			nat64 := netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 12: v4[0], v4[1], v4[2], v4[3]})
			sixToFour := netip.AddrFrom16([16]byte{0x20, 0x02, v4[0], v4[1], v4[2], v4[3]})
			compat := netip.AddrFrom16([16]byte{12: v4[0], v4[1], v4[2], v4[3]})
			for _, form := range []netip.Addr{nat64, sixToFour, compat} {
				if _, fbad := ForbiddenAddr(form); !fbad {
					t.Fatalf("%v is refused but %v, which reaches it, is allowed", a, form)
				}
			}
		}
	})
}
