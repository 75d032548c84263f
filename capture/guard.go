package capture

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolver looks up the addresses of a host. *net.Resolver implements it;
// tests use a fake so that no real DNS is asked.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// AllowPrivate lifts the guard entirely (PEEKSHOT_ALLOW_PRIVATE_TARGETS=1).
	AllowPrivate bool
	// AllowAddrs are exact address:port pairs allowed although their address
	// is refused otherwise, such as a test's own page on loopback.
	AllowAddrs []netip.AddrPort
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
}

// Guard decides which hosts a render may reach. It is the one place that
// turns a host into addresses: the proxy dials only addresses that the guard
// returned, so a host cannot resolve to a public address for the check and to
// a private one for the connection (DNS rebinding).
type Guard struct {
	allowPrivate bool
	allowAddrs   map[netip.AddrPort]bool
	resolver     Resolver
}

// NewGuard returns a guard with cfg.
func NewGuard(cfg GuardConfig) *Guard {
	g := &Guard{
		allowPrivate: cfg.AllowPrivate,
		allowAddrs:   make(map[netip.AddrPort]bool, len(cfg.AllowAddrs)),
		resolver:     cfg.Resolver,
	}
	for _, ap := range cfg.AllowAddrs {
		g.allowAddrs[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	return g
}

// ForbiddenError says why a target was refused. Its message is meant for the
// user, e.g. "example.internal resolves to 10.0.0.5, a private address", or
// "the page went to intent://x: intent: URLs cannot be rendered".
type ForbiddenError struct {
	Host   string     // the host as the URL named it (canonical form); empty when the URL was refused for its scheme
	Addr   netip.Addr // the refused address, when one was resolved
	Reason string     // e.g. "a private address", or the whole reason when Host is empty
	// URL is where the page itself went (a redirect, a meta refresh, a
	// script, a link), when that and not the job's own URL was refused.
	URL string
}

func (e *ForbiddenError) Error() string {
	var why string
	switch {
	case e.Host == "":
		why = e.Reason
	case !e.Addr.IsValid():
		why = fmt.Sprintf("%s resolves to %s", e.Host, e.Reason)
	case e.Host == e.Addr.String():
		why = fmt.Sprintf("%s is %s", e.Host, e.Reason)
	default:
		why = fmt.Sprintf("%s resolves to %s, %s", e.Host, e.Addr, e.Reason)
	}
	if e.URL != "" {
		return fmt.Sprintf("the page went to %s: %s", truncate(e.URL, 200), why)
	}
	return why
}

func (e *ForbiddenError) Unwrap() error { return ErrForbiddenTarget }

// CheckURL checks that raw is an http or https URL with a host, and that
// every address the host resolves to is allowed. A bad URL is an
// *OptionError for the field "url"; a refused address is a *ForbiddenError
// (errors.Is ErrForbiddenTarget); a host that does not resolve wraps
// ErrTargetUnreachable.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	t, err := parseTargetURL(raw)
	if err != nil {
		return err
	}
	_, err = g.resolve(ctx, t.host, t.port)
	return err
}

// resolve returns the addresses of host (a canonical host from parseHost,
// IPv6 without brackets) after checking each of them for port. It refuses
// the host if any address is refused, because a client may use any of them.
func (g *Guard) resolve(ctx context.Context, host string, port uint16) ([]netip.Addr, error) {
	host = strings.TrimSuffix(host, ".")
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.WithZone("")}
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// Chromium and most resolvers answer these names with loopback
		// without asking DNS; do the same rather than trust the resolver.
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	} else {
		found, err := g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(found) == 0 {
			// The resolver's own message can name internal DNS servers,
			// so it is not passed on.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: %s does not resolve", ErrTargetUnreachable, host)
		}
		addrs = found
	}
	if g.allowPrivate {
		return addrs, nil
	}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if g.allowAddrs[netip.AddrPortFrom(a, port)] {
			continue
		}
		if reason, bad := ForbiddenAddr(a); bad {
			return nil, &ForbiddenError{Host: host, Addr: a, Reason: reason}
		}
	}
	return addrs, nil
}

// ForbiddenAddr reports whether a render may not connect to a, and why. It
// refuses everything that is not a globally reachable unicast address:
// loopback, private, link-local, shared (CGNAT), multicast, unspecified,
// broadcast, reserved, benchmarking and documentation ranges, cloud metadata
// addresses, and IPv6 forms that carry a refused IPv4 address (mapped,
// compatible, NAT64, 6to4) or an unknowable one (Teredo).
func ForbiddenAddr(a netip.Addr) (reason string, forbidden bool) {
	if !a.IsValid() {
		return "an invalid address", true
	}
	a = a.WithZone("")
	if a.Is4() {
		return forbiddenV4(a.As4())
	}
	if a.Is4In6() {
		if r, bad := forbiddenV4(a.Unmap().As4()); bad {
			return "an IPv4-mapped form of " + r, true
		}
		return "", false
	}
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified():
		return "an unspecified address", true
	case a == netip.IPv6Loopback():
		return "a loopback address", true
	case allZero(b[:12]):
		// IPv4-compatible (::a.b.c.d), deprecated: judge the embedded address.
		if r, bad := forbiddenV4([4]byte(b[12:])); bad {
			return "an IPv4-compatible form of " + r, true
		}
		return "", false
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && allZero(b[4:12]):
		// NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4.
		if r, bad := forbiddenV4([4]byte(b[12:])); bad {
			return "a NAT64 form of " + r, true
		}
		return "", false
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1:
		return "a local-use NAT64 address", true
	case a == netip.AddrFrom16([16]byte{0xfd, 0x00, 0x0e, 0xc2, 15: 0x54}):
		return "the cloud metadata address", true
	case b[0]&0xfe == 0xfc:
		return "a private address", true
	case b[0] == 0xfe && b[1]&0xc0 == 0x80:
		return "a link-local address", true
	case b[0] == 0xfe && b[1]&0xc0 == 0xc0:
		return "a site-local address", true
	case b[0] == 0xff:
		return "a multicast address", true
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00:
		// Teredo hides the client's IPv4 address; nothing to judge it by.
		return "a Teredo address", true
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8,
		b[0] == 0x3f && b[1] == 0xff && b[2]&0xf0 == 0x00:
		return "a documentation address", true
	case b[0] == 0x20 && b[1] == 0x01 && b[2]&0xfe == 0x00:
		// 2001::/23: IETF protocol assignments, benchmarking, ORCHID.
		return "a reserved address", true
	case b[0] == 0x20 && b[1] == 0x02:
		// 6to4 reaches the IPv4 address in bytes 2–5.
		if r, bad := forbiddenV4([4]byte(b[2:6])); bad {
			return "a 6to4 form of " + r, true
		}
		return "", false
	case b[0]&0xe0 != 0x20, b[0] == 0x5f:
		// Outside 2000::/3 nothing is global unicast; 5f00::/16 is SRv6.
		return "a reserved address", true
	}
	return "", false
}

func forbiddenV4(b [4]byte) (string, bool) {
	switch {
	case b[0] == 0:
		return "an unspecified address", true
	case b[0] == 10:
		return "a private address", true
	case b == [4]byte{100, 100, 100, 200}:
		return "the cloud metadata address", true
	case b[0] == 100 && b[1]&0xc0 == 64:
		return "a shared (carrier-grade NAT) address", true
	case b[0] == 127:
		return "a loopback address", true
	case b == [4]byte{169, 254, 169, 254}:
		return "the cloud metadata address", true
	case b[0] == 169 && b[1] == 254:
		return "a link-local address", true
	case b[0] == 172 && b[1]&0xf0 == 16:
		return "a private address", true
	case b[0] == 192 && b[1] == 0 && b[2] == 2,
		b[0] == 198 && b[1] == 51 && b[2] == 100,
		b[0] == 203 && b[1] == 0 && b[2] == 113:
		return "a documentation address", true
	case b[0] == 192 && b[1] == 0 && b[2] == 0:
		return "a reserved address", true
	case b[0] == 192 && b[1] == 88 && b[2] == 99:
		return "a reserved address", true
	case b[0] == 192 && b[1] == 168:
		return "a private address", true
	case b[0] == 198 && b[1]&0xfe == 18:
		return "a benchmarking address", true
	case b[0] >= 224 && b[0] < 240:
		return "a multicast address", true
	case b == [4]byte{255, 255, 255, 255}:
		return "the broadcast address", true
	case b[0] >= 240:
		return "a reserved address", true
	}
	return "", false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
