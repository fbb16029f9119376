package limiter

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// hotWays is the number of entries per hotGroup: the group's 8 keys fill one
// 64-byte cache line, so telling that a key is not hot costs one line.
const hotWays = 8

// hotTable is the fixed set of keys of cluster-scope rules that this node
// synchronises with Redis: the keys whose local share ran low. It is
// allocated once (MaxHotKeys entries, rounded up to a power of two groups)
// and holds no per-key allocation.
//
// Lookups from Check take no lock: one scan of a group's keys. Claims (a key
// turning hot, at most once per key and episode) and frees (by the sync
// goroutine) lock the group, so a key cannot be claimed twice.
type hotTable struct {
	groups []hotGroup
	// used counts the claimed entries per group. At 4 bytes a group it stays
	// in cache where groups (1224 bytes) do not: a cold key, the common case,
	// is told apart without touching its group (measured: distinct keys
	// +~200 → +50–100 ns per Check over a local rule).
	used []atomic.Int32
	mask uint64
	n    atomic.Int64 // claimed entries
}

type hotGroup struct {
	keys [hotWays]atomic.Uint64 // stableHash of the keys; 0 = free
	mu   sync.Mutex             // serializes claim and free; guards the entries' plain fields
	ents [hotWays]hotEntry
}

// hotEntry is one hot key. The atomics are shared between Check and the sync
// goroutine; the plain fields are written under the group's mu.
type hotEntry struct {
	leased atomic.Bool  // a sync has answered: the lease, not the local share, decides
	lease  atomic.Int64 // tokens reserved from the global bucket, not yet used
	used   atomic.Int64 // tokens admitted on the local share since the last sync (post-paid)
	demand atomic.Int64 // tokens asked for (admitted or not) since the last sync
	over   atomic.Int64 // tokens asked for beyond the local share since the last sync
	gtat   atomic.Int64 // global TAT as of the last sync, on this node's clock (unix ns)

	rule    *rule     // the rule at claim time (id, rate and burst are its identity)
	stable  uint64    // the key's cluster-wide hash (stableHash)
	rkey    string    // Redis key, built by the sync goroutine on first use
	idle    int       // syncs in a row without demand
	learned bool      // hot on another node (announced), not here
	told    time.Time // when this node last announced the key
	seen    time.Time // when another node's announcement was last read
}

// newHotTable sizes the table to at least n entries.
func newHotTable(n int) *hotTable {
	g := max(uint64(n+hotWays-1)/hotWays, 1)
	g = 1 << bits.Len64(g-1)
	return &hotTable{groups: make([]hotGroup, g), used: make([]atomic.Int32, g), mask: g - 1}
}

func (t *hotTable) group(h uint64) *hotGroup { return &t.groups[h&t.mask] }

// find returns h's entry, or nil when h is not hot.
func (t *hotTable) find(h uint64) *hotEntry {
	if t.used[h&t.mask].Load() == 0 {
		return nil
	}
	g := t.group(h)
	for i := range g.keys {
		if g.keys[i].Load() == h {
			return &g.ents[i]
		}
	}
	return nil
}

// claim makes key h hot for rule r with used tokens already taken from the
// local share. It gives up (returning false) when another request is claiming
// in the same group, or when the group is full.
func (t *hotTable) claim(h uint64, r *rule, used int64) (ok bool) {
	g := t.group(h)
	if !g.mu.TryLock() {
		return true // someone else is claiming here; not an overflow
	}
	defer g.mu.Unlock()
	_, _, ok = t.claimLocked(g, h, r, used)
	return ok
}

// claimLocked is claim with g.mu held; it returns h's entry and whether it
// is new.
func (t *hotTable) claimLocked(g *hotGroup, h uint64, r *rule, used int64) (e *hotEntry, fresh, ok bool) {
	free := -1
	for i := range g.keys {
		switch g.keys[i].Load() {
		case h:
			return &g.ents[i], false, true
		case 0:
			if free < 0 {
				free = i
			}
		}
	}
	if free < 0 {
		return nil, false, false
	}
	e = &g.ents[free]
	e.leased.Store(false)
	e.lease.Store(0)
	e.used.Store(used)
	e.demand.Store(used)
	e.over.Store(0)
	e.gtat.Store(0)
	e.rule, e.stable, e.rkey, e.idle = r, h, "", 0
	e.learned, e.told, e.seen = false, time.Time{}, time.Time{}
	g.keys[free].Store(h) // publish last: lookups never see a half-set entry
	t.used[h&t.mask].Add(1)
	t.n.Add(1)
	return e, true, true
}

// learn makes key h of rule r hot because another node announced it, so that
// this node reports its admissions of h too; seen is when the announcement
// was read. It returns false when h's group is full.
func (t *hotTable) learn(h uint64, r *rule, seen time.Time) bool {
	g := t.group(h)
	g.mu.Lock()
	defer g.mu.Unlock()
	e, fresh, ok := t.claimLocked(g, h, r, 0)
	if !ok {
		return false
	}
	if fresh {
		e.learned = true
	}
	e.seen = seen
	return true
}

// free releases entry i of g; the caller holds g.mu. A Check that found the
// entry just before may still add to its counters: claim resets them.
func (t *hotTable) free(g *hotGroup, i int) {
	t.used[g.keys[i].Load()&t.mask].Add(-1)
	g.keys[i].Store(0)
	e := &g.ents[i]
	e.leased.Store(false)
	e.rule, e.rkey = nil, ""
	t.n.Add(-1)
}

// takeLease takes cost tokens from the lease if it holds that many.
func (e *hotEntry) takeLease(cost int64) bool {
	for {
		old := e.lease.Load()
		if old < cost {
			return false
		}
		if e.lease.CompareAndSwap(old, old-cost) {
			return true
		}
	}
}

// stableHash is a key's cluster-wide identity: FNV-1a (64 bit) of the rule id
// and the key parts, the same on every node (Check's hash is seeded per
// process). Raw key values never reach Redis; note that a 64-bit hash of an
// IPv4 address can be reversed by trying all 2³² addresses, so Redis must be
// protected like the proxy itself (docs/cluster.md).
func stableHash(id string, parts []byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * prime
	}
	h = (h ^ 0xff) * prime // separates the id from the parts (0xff is not an id byte)
	for _, b := range parts {
		h = (h ^ uint64(b)) * prime
	}
	return max(h, 1) // 0 marks a free entry
}

// take decides st (a cluster-scope rule's request) at ns without any Redis
// round trip, filling st's charged, tat, inc, e and leased. key is the
// request's key bytes (rule tag first), borrowed for the call.
//
// While Redis is unreachable the rule's fail mode decides: "local" takes from
// the local share (limit/N with the last known N), "open" admits, "closed"
// rejects. Otherwise the local share is tried first; a key whose share is
// more than half used turns hot, and from then on every admission on the
// share is reported at the next sync (post-paid). A hot key whose share is
// empty takes from its lease: tokens the last sync reserved in the global
// bucket for the demand this node could not serve from its share.
func (c *cluster) take(st *ruleState, ns int64, key []byte) {
	r := st.r
	cost := int64(r.cfg.Cost)
	sh := stableHash(r.id, key[8:]) // key[:8] is the rule's per-process tag
	e := c.hot.find(sh)
	if e != nil {
		e.demand.Add(cost)
	}
	if c.state.Load() != stateUp {
		c.takeDegraded(st, ns)
		return
	}
	c.takeShare(st, ns)
	switch {
	case st.charged && e != nil:
		e.used.Add(cost)
		st.e = e
	case st.charged && st.tat-ns > r.tau/2:
		n := c.nodes.Load()
		used := (st.tat - ns + r.interval*n - 1) / (r.interval * n) // whole tokens of the share in use
		if !c.hot.claim(sh, r, used) {
			c.overflow.Add(1)
		}
	case !st.charged && e != nil:
		e.over.Add(cost)
		if e.leased.Load() && e.takeLease(cost) {
			st.e, st.leased, st.charged, st.inc = e, true, true, r.inc
			st.tat = max(e.gtat.Load(), ns)
		}
	}
}

// takeShare takes from the key's local bucket run at rate/N and burst/N: the
// emission interval is scaled by N, the tolerance kept.
func (c *cluster) takeShare(st *ruleState, ns int64) {
	st.inc = st.r.inc * c.nodes.Load()
	st.charged, st.tat = st.s.take(ns, st.inc, st.r.tau)
}

func (c *cluster) takeDegraded(st *ruleState, ns int64) {
	switch st.r.fail {
	case failOpen:
		st.charged, st.inc, st.tat = true, 0, ns
	case failClosed:
		st.charged, st.tat = false, ns+st.r.tau
	default:
		c.takeShare(st, ns)
	}
}

// undo gives back what take charged for st.
func (e *hotEntry) undo(st *ruleState) {
	if st.leased {
		e.lease.Add(int64(st.r.cfg.Cost))
		return
	}
	e.used.Add(-int64(st.r.cfg.Cost))
	st.s.refund(st.h, st.inc)
}
