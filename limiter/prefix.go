package limiter

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// linearMax is the size up to which a prefixSet scans a slice: a handful of
// Contains calls beat hashing a netip.Prefix per distinct prefix length.
const linearMax = 8

// prefixSet answers "is this address inside any of these CIDRs". It is
// immutable once built and safe for concurrent use.
type prefixSet struct {
	list []netip.Prefix            // all prefixes, used when small
	m    map[netip.Prefix]struct{} // masked prefixes, used when large
	v4   []int                     // distinct IPv4 lengths, longest first
	v6   []int                     // distinct IPv6 lengths, longest first
}

func newPrefixSet(ps []netip.Prefix) prefixSet {
	s := prefixSet{list: ps}
	if len(ps) <= linearMax {
		return s
	}
	s.m = make(map[netip.Prefix]struct{}, len(ps))
	for _, p := range ps {
		s.m[p.Masked()] = struct{}{}
		if p.Addr().Is4() {
			s.v4 = append(s.v4, p.Bits())
		} else {
			s.v6 = append(s.v6, p.Bits())
		}
	}
	for _, l := range []*[]int{&s.v4, &s.v6} {
		slices.Sort(*l)
		slices.Reverse(*l)
		*l = slices.Compact(*l)
	}
	return s
}

// contains reports whether a (already unmapped) is inside the set.
func (s *prefixSet) contains(a netip.Addr) bool {
	if s.m == nil {
		for _, p := range s.list {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	lens := s.v6
	if a.Is4() {
		lens = s.v4
	}
	for _, bits := range lens {
		p, _ := a.Prefix(bits)
		if _, ok := s.m[p]; ok {
			return true
		}
	}
	return false
}

// parsePrefix accepts a CIDR ("10.0.0.0/8") or a bare address (one host).
// IPv4-mapped IPv6 forms are turned into IPv4 so they match unmapped clients.
func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return p, fmt.Errorf("%q is not a CIDR or IP address", s)
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("%q: zones are not allowed", s)
	}
	return normPrefix(p), nil
}

// normPrefix unmaps ::ffff:a.b.c.d/N (N >= 96) to a.b.c.d/(N-96) and masks.
func normPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// parsePrefixes parses a config list, naming each bad entry as key[i].
func parsePrefixes(key string, in []string) ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var errs []error
	for i, s := range in {
		p, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			continue
		}
		out = append(out, p)
	}
	return out, errs
}
