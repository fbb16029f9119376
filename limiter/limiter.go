// Package limiter decides, per request, whether meliproxy forwards it: deny
// and exempt lists, then rate-limit rules matched on path, method, client
// network, headers, query and user agent, each with its own GCRA bucket per
// key. See docs/rules.md for the user-facing reference.
package limiter

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ErrUnknownRule is returned by the control-plane methods for a rule id that
// is not in the current configuration; Rules lists the valid ones.
var ErrUnknownRule = errors.New("limiter: unknown rule id (see Rules for the configured ids)")

// Limiter applies a Config to requests. It is safe for concurrent use; Check
// takes no lock. Configuration is immutable and swapped whole by Update.
type Limiter struct {
	seed maphash.Seed // per process: key hashes are not predictable from outside
	set  atomic.Pointer[ruleSet]
	deny atomic.Pointer[denyList] // run-time deny entries, copy-on-write
	// cluster, once StartCluster ran, decides scope = "cluster" rules.
	cluster atomic.Pointer[cluster]

	mu      sync.Mutex            // serializes Update and deny-list writes
	stats   map[string]*ruleStats // by rule id; guarded by mu
	nextTag uint64                // guarded by mu

	denied, exempted atomic.Uint64
}

// ruleSet is one installed configuration: immutable once published.
type ruleSet struct {
	*compiled
	table *table // nil while there are no rules
}

// New validates cfg and returns a Limiter enforcing it. The key table
// (22–44 bytes × MaxKeys) is allocated once the configuration has rules.
func New(cfg Config) (*Limiter, error) {
	l := &Limiter{seed: maphash.MakeSeed(), stats: make(map[string]*ruleStats)}
	l.deny.Store(&denyList{})
	if err := l.Update(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// Update validates cfg and atomically replaces the configuration. Rules whose
// identity is unchanged (same id and every field except action and cost) keep
// their buckets: counters survive a reload. Changed or new rules start with
// full buckets. Changing max_keys replaces the table, resetting every bucket.
// On error nothing changes. Run-time deny entries are kept.
func (l *Limiter) Update(cfg Config) error {
	c, err := compile(&cfg, "limits.")
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.set.Load()
	next := &ruleSet{compiled: c}
	if len(c.rules) > 0 {
		if old != nil && old.table != nil && old.table.maxKeys == int64(c.cfg.MaxKeys) {
			next.table = old.table
		} else {
			next.table = newTable(c.cfg.MaxKeys)
			if old != nil && old.table != nil {
				next.table.evictions.Store(old.table.evictions.Load()) // keep the counter monotonic
			}
		}
	}
	stats := make(map[string]*ruleStats, len(c.rules))
	for _, r := range c.rules {
		if prev := old.rule(r.id); prev != nil && sameIdent(prev, r) && next.table == old.table {
			r.tag = prev.tag
		} else {
			l.nextTag++
			r.tag = l.nextTag
		}
		if r.stats = l.stats[r.id]; r.stats == nil {
			r.stats = new(ruleStats)
		}
		stats[r.id] = r.stats
	}
	l.stats = stats
	l.set.Store(next)
	return nil
}

// rule returns the rule with the given id, or nil; rs may be nil.
func (rs *ruleSet) rule(id string) *rule {
	if rs == nil {
		return nil
	}
	for _, r := range rs.rules {
		if r.id == id {
			return r
		}
	}
	return nil
}

// ClientIP returns the address to limit by for a request from peer: see the
// package-level ClientIP. It uses the configured trusted_proxies.
func (l *Limiter) ClientIP(peer netip.Addr, h *fasthttp.RequestHeader) netip.Addr {
	return clientIP(peer, h, &l.set.Load().trusted)
}

// Check decides req from client ip (as returned by ClientIP) at now, writing
// the outcome into d (which it resets first). Order: deny list (403), exempt
// list, then every rule in configuration order. Each matching rule takes cost
// tokens from its bucket for the request's key. The first enforcing rule that
// rejects stops the evaluation: the request is limited, and the tokens already
// taken from the other rules are refunded, so a rejected request uses up
// nothing. A shadow rule that would reject is counted and reported in
// d.Shadowed, takes nothing and never blocks.
//
// Check allocates nothing in steady state. req is only read, during the call.
func (l *Limiter) Check(now time.Time, req *fasthttp.Request, ip netip.Addr, d *Decision) {
	d.Reset()
	rs := l.set.Load()
	ns := now.UnixNano()
	d.headers, d.now = rs.headers, ns
	ip = ip.Unmap()
	if rs.deny.contains(ip) || l.deny.Load().contains(ip, ns) {
		d.Verdict = Deny
		l.denied.Add(1)
		return
	}
	if rs.exempt.contains(ip) {
		d.Verdict = Exempt
		l.exempted.Add(1)
		return
	}
	if len(rs.rules) == 0 {
		return
	}
	v := reqView{req: req, ip: ip, path: req.URI().Path(), method: req.Header.Method()}
	for _, r := range rs.rules {
		if r.match(&v) && !l.apply(rs, r, &v, ns, d) {
			return
		}
	}
	for i := 0; i < d.n; i++ {
		if st := d.state(i); st.charged {
			st.r.stats.allowed.Add(1)
		}
	}
}

// apply charges r for the request; it returns false once the request is
// limited (after refunding the other rules).
func (l *Limiter) apply(rs *ruleSet, r *rule, v *reqView, ns int64, d *Decision) bool {
	d.buf = r.appendKey(d.buf[:0], v)
	h := maphash.Bytes(l.seed, d.buf)
	st := ruleState{r: r, s: rs.table.get(h, ns), h: h, inc: r.inc}
	if cl := l.cluster.Load(); cl != nil && r.clustered {
		cl.take(&st, ns, d.buf)
	} else {
		st.charged, st.tat = st.s.take(ns, r.inc, r.tau)
	}
	ok := st.charged
	switch {
	case ok:
		d.record(st)
		return true
	case r.shadow:
		r.stats.shadowLimited.Add(1)
		if d.nShadow < MaxReported {
			d.shadow[d.nShadow] = r.id
			d.nShadow++
		}
		d.record(st)
		return true
	}
	r.stats.limited.Add(1)
	d.refund()
	d.Verdict, d.Rule, d.limited = Limit, r.id, st
	d.RetryAfter = time.Duration(max(st.tat, ns) + st.inc - r.tau - ns)
	return false
}

// Rules returns a copy of the current rules, defaults filled in (action,
// scope, burst, cost), in configuration order.
func (l *Limiter) Rules() []RuleConfig {
	rs := l.set.Load()
	out := make([]RuleConfig, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = normRule(r.cfg)
	}
	return out
}

// Config returns the current configuration, defaults applied.
func (l *Limiter) Config() Config {
	c := l.set.Load().cfg
	c.TrustedProxies = slices.Clone(c.TrustedProxies)
	c.Deny = slices.Clone(c.Deny)
	c.Exempt = slices.Clone(c.Exempt)
	c.Rules = l.Rules()
	return c
}

// KeyState reports the bucket of one key of rule ruleID at now: the tokens
// remaining and the time until the bucket is full again. parts gives each key
// part's value by its spec as configured ("ip" or "ip/24": an address;
// "path": "/items/MLA1"; "header:X-Api-Key": the raw value, hashed here and not
// kept). An untracked key reports a full bucket.
func (l *Limiter) KeyState(now time.Time, ruleID string, parts map[string]string) (remaining int, reset time.Duration, err error) {
	rs, r, h, err := l.keyOf(ruleID, parts)
	if err != nil {
		return 0, 0, err
	}
	var tat int64
	if s := rs.table.lookup(h); s != nil {
		tat = s.tat.Load()
	}
	left := max(tat-now.UnixNano(), 0)
	return int((r.tau - left) / r.interval), time.Duration(left), nil
}

// ResetKey refills the bucket of one key of rule ruleID (see KeyState for
// parts). Resetting an untracked key is not an error.
func (l *Limiter) ResetKey(ruleID string, parts map[string]string) error {
	rs, _, h, err := l.keyOf(ruleID, parts)
	if err != nil {
		return err
	}
	if s := rs.table.lookup(h); s != nil {
		s.tat.Store(0)
	}
	return nil
}

// keyOf hashes a key given as control-plane parts, exactly as Check would.
func (l *Limiter) keyOf(ruleID string, parts map[string]string) (*ruleSet, *rule, uint64, error) {
	rs := l.set.Load()
	r := rs.rule(ruleID)
	if r == nil {
		return nil, nil, 0, fmt.Errorf("%w: %q", ErrUnknownRule, ruleID)
	}
	b, err := r.appendKeyParts(nil, parts)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("limiter: rule %q: %w", ruleID, err)
	}
	return rs, r, maphash.Bytes(l.seed, b), nil
}

// appendKeyParts is appendKey for values given by name instead of a request.
func (r *rule) appendKeyParts(dst []byte, parts map[string]string) ([]byte, error) {
	var v reqView
	for _, p := range r.key {
		val, ok := parts[p.spec]
		if !ok && p.kind == partIP {
			val, ok = parts["ip"]
		}
		if !ok {
			return nil, fmt.Errorf("key part %q missing (want %q)", p.spec, r.cfg.Key)
		}
		switch p.kind {
		case partIP:
			a, err := netip.ParseAddr(val)
			if err != nil {
				return nil, fmt.Errorf("key part %q: %q is not an IP address", p.spec, val)
			}
			v.ip = a.Unmap()
		case partPath:
			v.path = []byte(val)
		case partMethod:
			v.method = []byte(val)
		}
	}
	// Header, query and user-agent parts are read from a synthetic request so
	// both paths share one encoding.
	var req fasthttp.Request
	for _, p := range r.key {
		switch p.kind {
		case partHeader:
			req.Header.Set(p.name, parts[p.spec])
		case partQuery:
			req.URI().QueryArgs().Set(p.name, parts[p.spec])
		case partUserAgent:
			req.Header.SetUserAgent(parts[p.spec])
		}
	}
	v.req = &req
	return r.appendKey(dst, &v), nil
}
