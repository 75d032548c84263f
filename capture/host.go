package capture

import (
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// The guard must see a URL's host the way Chromium does, not the way Go does.
// Chromium follows the WHATWG URL standard, which accepts IPv4 hosts that
// net/url and net/netip do not treat as addresses: "127.1", "0x7f000001",
// "2130706433", "0177.0.0.1", "%31%32%37.0.0.1", full-width digits, a
// trailing dot. So this file implements the host part of that standard for
// the special schemes http and https.

// urlTarget is what the guard needs from a URL.
type urlTarget struct {
	scheme string     // "http" or "https"
	host   string     // lower-case ASCII domain, or the canonical text of addr
	addr   netip.Addr // valid when the host is an IP address literal
	port   uint16
}

// parseTargetURL extracts scheme, host and port from raw as a WHATWG URL
// parser does for http and https. It returns an *OptionError for anything a
// user must fix.
func parseTargetURL(raw string) (urlTarget, error) {
	// Leading and trailing C0 controls and spaces are stripped, and tabs and
	// newlines anywhere are removed, before parsing.
	s := strings.TrimFunc(raw, func(r rune) bool { return r <= ' ' })
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)

	colon := strings.IndexByte(s, ':')
	if colon <= 0 || !validScheme(s[:colon]) {
		return urlTarget{}, urlError("url must be an absolute http or https URL")
	}
	var t urlTarget
	t.scheme = strings.ToLower(s[:colon])
	switch t.scheme {
	case "http":
		t.port = 80
	case "https":
		t.port = 443
	default:
		return urlTarget{}, urlError("url must use http or https")
	}

	// For special schemes any run of slashes and backslashes introduces the
	// authority, which ends at the next slash, backslash, '?' or '#'.
	rest := strings.TrimLeft(s[colon+1:], `/\`)
	if end := strings.IndexAny(rest, `/\?#`); end >= 0 {
		rest = rest[:end]
	}
	// Everything up to the last '@' is user information, never the host.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}

	hostPart, portPart := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return urlTarget{}, urlError("url has an invalid host")
		}
		hostPart, portPart = rest[:end+1], rest[end+1:]
		if portPart != "" {
			if portPart[0] != ':' {
				return urlTarget{}, urlError("url has an invalid host")
			}
			portPart = portPart[1:]
		}
	} else if i := strings.IndexByte(rest, ':'); i >= 0 {
		hostPart, portPart = rest[:i], rest[i+1:]
	}
	if hostPart == "" {
		return urlTarget{}, urlError("url must have a host")
	}
	if portPart != "" {
		p, ok := parsePort(portPart)
		if !ok {
			return urlTarget{}, urlError("url has an invalid port")
		}
		t.port = p
	}

	host, addr, ok := parseHost(hostPart)
	if !ok {
		return urlTarget{}, urlError("url has an invalid host")
	}
	t.host, t.addr = host, addr
	return t, nil
}

func urlError(msg string) *OptionError { return &OptionError{Field: "url", Message: msg} }

func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// parsePort accepts ASCII digits only, leading zeros allowed, up to 65535.
func parsePort(s string) (uint16, bool) {
	var n int
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, false
		}
	}
	return uint16(n), true
}

// parseHost is the WHATWG host parser for special schemes. It returns the
// canonical host and, for an IP literal, its address. IPv6 literals come in
// brackets. ok is false where Chromium would refuse the URL.
func parseHost(input string) (host string, addr netip.Addr, ok bool) {
	if strings.HasPrefix(input, "[") {
		if !strings.HasSuffix(input, "]") {
			return "", netip.Addr{}, false
		}
		inner := input[1 : len(input)-1]
		// Zones are not part of URL syntax.
		if strings.ContainsRune(inner, '%') {
			return "", netip.Addr{}, false
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() {
			return "", netip.Addr{}, false
		}
		return a.String(), a, true
	}

	ascii, ok := domainToASCII(percentDecode(input))
	if !ok || ascii == "" {
		return "", netip.Addr{}, false
	}
	for i := 0; i < len(ascii); i++ {
		if forbiddenDomainByte(ascii[i]) {
			return "", netip.Addr{}, false
		}
	}
	if endsInNumber(ascii) {
		a, ok := parseIPv4(ascii)
		if !ok {
			return "", netip.Addr{}, false
		}
		return a.String(), a, true
	}
	return ascii, netip.Addr{}, true
}

// percentDecode decodes %XX sequences and leaves malformed ones as they are,
// as the URL standard does; the '%' left behind then fails the host.
func percentDecode(s string) string {
	if !strings.ContainsRune(s, '%') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// domainToASCII applies UTS #46 processing as the URL standard asks
// (non-transitional, no STD3 rules, no hyphen or DNS length checks). Pure
// ASCII input is only lower-cased, which is what that processing does to it.
func domainToASCII(s string) (string, bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s), true
	}
	p := idna.New(
		idna.MapForLookup(),
		idna.Transitional(false),
		idna.StrictDomainName(false),
		idna.CheckHyphens(false),
		idna.VerifyDNSLength(false),
		idna.BidiRule(),
		idna.CheckJoiners(true),
	)
	out, err := p.ToASCII(s)
	if err != nil {
		return "", false
	}
	return strings.ToLower(out), true
}

// forbiddenDomainByte reports the forbidden domain code points of the URL
// standard (ASCII part; non-ASCII is gone after domainToASCII).
func forbiddenDomainByte(c byte) bool {
	if c <= 0x20 || c == 0x7f {
		return true
	}
	return strings.IndexByte("#%/:<>?@[\\]^|", c) >= 0
}

// endsInNumber is the "ends in a number" checker: a host whose last label is
// numeric must be an IPv4 address.
func endsInNumber(s string) bool {
	parts := strings.Split(s, ".")
	if parts[len(parts)-1] == "" {
		if len(parts) == 1 {
			return false
		}
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := parseIPv4Number(last)
	return ok
}

// parseIPv4 is the WHATWG IPv4 parser: one to four parts, each decimal,
// octal (leading 0) or hex (0x), the last part filling the remaining bytes.
func parseIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := parseIPv4Number(p)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		v += n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseIPv4Number parses one part. Values are capped just above 2^32 so that
// any length of digits can be read without overflow; such values fail later.
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	const capValue = 1 << 33
	var n uint64
	for i := 0; i < len(s); i++ {
		d, ok := unhex(s[i])
		if !ok || uint64(d) >= base {
			return 0, false
		}
		if n < capValue {
			n = n*base + uint64(d)
		}
	}
	return n, true
}
