package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a request comes from: the TCP peer, or, when
// the peer is one of the trusted proxies, the nearest address in
// X-Forwarded-For that is not (each proxy appends the address it saw, so
// the rightmost untrusted one is the client's). A header sent by anyone
// else is ignored, so it can't be spoofed from outside.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap().WithZone("")
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := []string{}
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing to its left
		}
		addr = a.Unmap().WithZone("")
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return addr
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// client is the request's client address (see clientAddr) and it as the
// activity log and usage keep it, "" when unknown.
func (s *Server) client(r *http.Request) (netip.Addr, string) {
	from := clientAddr(r, s.cfg.TrustedProxies)
	if !from.IsValid() {
		return from, ""
	}
	return from, from.String()
}
