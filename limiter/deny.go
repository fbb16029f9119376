package limiter

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// DenyEntry is one run-time deny-list entry, as added by AddDeny.
type DenyEntry struct {
	Prefix  netip.Prefix
	Expires time.Time // zero: never
	Reason  string    // free text for operators; never sent to clients
}

// denyList is the immutable run-time deny list; writers copy it (AddDeny,
// RemoveDeny) and swap the pointer, readers Load it once per request. Lookup
// is one map probe per distinct prefix length, so a ban list of 100k single
// addresses costs two probes.
type denyList struct {
	m      map[netip.Prefix]denyItem
	v4, v6 []int // distinct prefix lengths, longest first
}

type denyItem struct {
	expires int64 // unix ns; 0 = never
	reason  string
}

// contains reports whether a is denied by an unexpired entry at now (unix ns).
func (dl *denyList) contains(a netip.Addr, now int64) bool {
	if len(dl.m) == 0 {
		return false
	}
	lens := dl.v6
	if a.Is4() {
		lens = dl.v4
	}
	for _, bits := range lens {
		p, _ := a.Prefix(bits)
		if it, ok := dl.m[p]; ok && (it.expires == 0 || now < it.expires) {
			return true
		}
	}
	return false
}

// AddDeny denies prefix at run time (403 before any rule) until expires (zero
// time: until removed or the process restarts; run-time entries are not
// persisted). Adding an existing prefix replaces its expiry and reason.
// Entries expired at the time of the call are pruned.
func (l *Limiter) AddDeny(prefix netip.Prefix, expires time.Time, reason string) error {
	if !prefix.IsValid() || prefix.Addr().Zone() != "" {
		return fmt.Errorf("limiter: deny prefix %q is not a valid CIDR", prefix)
	}
	it := denyItem{reason: reason}
	if !expires.IsZero() {
		it.expires = expires.UnixNano()
	}
	l.editDeny(func(m map[netip.Prefix]denyItem) { m[normPrefix(prefix)] = it })
	return nil
}

// RemoveDeny removes a run-time deny entry, reporting whether it existed.
// Entries from Config.Deny cannot be removed this way (reload the config).
func (l *Limiter) RemoveDeny(prefix netip.Prefix) bool {
	p := normPrefix(prefix)
	var found bool
	l.editDeny(func(m map[netip.Prefix]denyItem) {
		_, found = m[p]
		delete(m, p)
	})
	return found
}

// DenyList returns the run-time deny entries, sorted by prefix; Config.Deny
// entries are in Config().
func (l *Limiter) DenyList() []DenyEntry {
	dl := l.deny.Load()
	out := make([]DenyEntry, 0, len(dl.m))
	for p, it := range dl.m {
		e := DenyEntry{Prefix: p, Reason: it.reason}
		if it.expires != 0 {
			e.Expires = time.Unix(0, it.expires)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b DenyEntry) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

// editDeny copies the deny list, applies edit, prunes expired entries and
// publishes the result.
func (l *Limiter) editDeny(edit func(map[netip.Prefix]denyItem)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.deny.Load()
	m := make(map[netip.Prefix]denyItem, len(old.m)+1)
	now := time.Now().UnixNano() // pruning only; Check uses the caller's clock
	for p, it := range old.m {
		if it.expires == 0 || it.expires > now {
			m[p] = it
		}
	}
	edit(m)
	next := &denyList{m: m}
	for p := range m {
		if p.Addr().Is4() {
			next.v4 = append(next.v4, p.Bits())
		} else {
			next.v6 = append(next.v6, p.Bits())
		}
	}
	for _, l := range []*[]int{&next.v4, &next.v6} {
		slices.Sort(*l)
		slices.Reverse(*l)
		*l = slices.Compact(*l)
	}
	l.deny.Store(next)
}
