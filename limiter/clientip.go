package limiter

import (
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// ClientIP returns the address a request is limited by: the TCP peer, unless
// the peer is inside trusted, in which case X-Forwarded-For is walked right to
// left over all of its header lines (fasthttp's Peek would return only the
// first line; see FIELD-NOTES) skipping trusted hops, as nginx
// real_ip_recursive does:
//
//   - the first untrusted address found is the client;
//   - an unparsable element stops the walk: the last address reached (a
//     trusted hop) is returned, since anything left of garbage is unreliable;
//   - if every address is trusted, the leftmost one is returned.
//
// Elements may carry a port ("1.2.3.4:80", "[2001:db8::1]:80"); zones are
// rejected. IPv4-mapped IPv6 addresses are unmapped. An untrusted peer can
// never choose its own key. ClientIP allocates nothing; with many trusted
// prefixes prefer Limiter.ClientIP, which uses a compiled set.
func ClientIP(peer netip.Addr, h *fasthttp.RequestHeader, trusted []netip.Prefix) netip.Addr {
	s := prefixSet{list: trusted}
	return clientIP(peer, h, &s)
}

func clientIP(peer netip.Addr, h *fasthttp.RequestHeader, trusted *prefixSet) netip.Addr {
	addr := peer.Unmap()
	if !addr.IsValid() || !trusted.contains(addr) {
		return addr
	}
	return walkXFF(addr, h.PeekAll(fasthttp.HeaderXForwardedFor), trusted)
}

// walkXFF does the right-to-left walk described on ClientIP; addr is the
// trusted peer. lines are borrowed and only read.
func walkXFF(addr netip.Addr, lines [][]byte, trusted *prefixSet) netip.Addr {
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for len(line) > 0 {
			elem := line
			line = nil
			for j := len(elem) - 1; j >= 0; j-- {
				if elem[j] == ',' {
					elem, line = elem[j+1:], elem[:j]
					break
				}
			}
			elem = trimOWS(elem)
			if len(elem) == 0 {
				continue // "a,,b" or a trailing comma: nothing was appended
			}
			a, ok := parseHop(elem)
			if !ok {
				return addr
			}
			addr = a
			if !trusted.contains(a) {
				return a
			}
		}
	}
	return addr
}

// parseHop parses one X-Forwarded-For element without allocating.
func parseHop(b []byte) (netip.Addr, bool) {
	// unsafe.String avoids the copy string(b) would make (netip.ParseAddr's
	// argument escapes). It is safe: ParseAddr keeps no reference to its input
	// (a zone is cloned by unique.Make, and we reject zones anyway), and b is
	// not modified during the call.
	s := unsafe.String(unsafe.SliceData(b), len(b))
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
