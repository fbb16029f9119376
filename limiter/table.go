package limiter

import (
	"cmp"
	"math/bits"
	"sync"
	"sync/atomic"
)

// ways is the number of slots per bucket: 8 × 16 B of slots plus an 8-byte
// mutex is 136 B, about two cache lines, and 8 candidates per bucket (16 per
// key) make a decent eviction sample.
const ways = 8

// table is the bounded key → TAT store shared by every rule of a Limiter.
//
// Design (and why not map + mutex per shard):
//   - It is a fixed-size, set-associative array allocated once: a key's 64-bit
//     hash names two candidate buckets of 8 slots each ("two choices": a new
//     key goes to the emptier one, which keeps buckets from overflowing until
//     the table is nearly full; with one choice, 0.7% of 1M keys were evicted
//     early from overfull buckets at 48% load). Memory is known up front and
//     stays flat under any flood; nothing is allocated per key, and the array
//     holds no pointers, so the GC never scans it (a map[uint64]*entry of 1M
//     keys is 1M objects to mark and ~3× the bytes).
//   - Keys are stored as their 64-bit seeded hash only; raw key parts (IPs,
//     API keys) never reach memory that outlives the request. The odds that two
//     live keys collide (and share a bucket) are n²/2⁶⁵: ~3·10⁻⁸ for 1M keys.
//   - Lookups of existing keys take no lock: an atomic scan of up to 16 slots,
//     then a CAS loop on the slot's TAT (GCRA). A hot key costs a few loads
//     and one CAS.
//   - Claiming a slot for a new key locks both candidate buckets (in index
//     order, so claimers cannot deadlock) and re-scans them, so two requests
//     racing on a new key cannot create two slots for it: the exact-count
//     guarantee holds from the first request on.
//   - The total number of keys is capped at maxKeys by a counter. A new key
//     takes, in order: an idle slot (TAT ≤ now: a full bucket carries no
//     information, dropping it changes nothing), an empty slot while under
//     the cap, a slot freed elsewhere by the clock hand (idle first), or, last,
//     the candidate slot with the smallest TAT (the one closest to full): an
//     eviction, counted. An evicted client starts over with a full bucket.
//
// Eviction races are benign but lossy: a request that found a slot just before
// it was reassigned may charge its cost to the new key or lose it. This only
// happens to keys being evicted, i.e. when the table is full.
type table struct {
	buckets   []bucket
	mask      uint64
	maxKeys   int64
	keys      atomic.Int64  // occupied slots
	evictions atomic.Uint64 // non-idle keys dropped to make room
	hand      atomic.Uint64 // clock hand for reclaim
}

type bucket struct {
	mu    sync.Mutex // serializes claims; lookups and TAT updates are lock-free
	slots [ways]slot
}

// slot holds one key. key 0 means empty; a hash of 0 is stored as 1.
type slot struct {
	key atomic.Uint64
	tat atomic.Int64 // GCRA theoretical arrival time, unix ns; ≤ now = full bucket
}

// newTable sizes the array to at least maxKeys×1.25 slots rounded up to a
// power of two (at least two buckets), so claims rarely find both candidate
// buckets full before the cap is reached.
func newTable(maxKeys int) *table {
	n := max(uint64(maxKeys)*5/4/ways+1, 2)
	n = 1 << bits.Len64(n-1)
	return &table{buckets: make([]bucket, n), mask: n - 1, maxKeys: int64(maxKeys)}
}

// candidates returns the two bucket indexes of h, distinct.
func (t *table) candidates(h uint64) (i1, i2 uint64) {
	i1 = h & t.mask
	i2 = bits.RotateLeft64(h, 32) & t.mask
	if i2 == i1 {
		i2 = (i1 + 1) & t.mask
	}
	return i1, i2
}

// get returns the slot of key h, claiming one if absent. It never fails: the
// worst case evicts another key.
func (t *table) get(h uint64, now int64) *slot {
	if h == 0 {
		h = 1
	}
	i1, i2 := t.candidates(h)
	if s := t.find(i1, i2, h); s != nil {
		return s
	}
	return t.claim(i1, i2, h, now)
}

// lookup returns the slot of key h or nil; it never claims.
func (t *table) lookup(h uint64) *slot {
	if h == 0 {
		h = 1
	}
	i1, i2 := t.candidates(h)
	return t.find(i1, i2, h)
}

func (t *table) find(i1, i2, h uint64) *slot {
	if s := t.buckets[i1].find(h); s != nil {
		return s
	}
	return t.buckets[i2].find(h)
}

func (b *bucket) find(h uint64) *slot {
	for i := range b.slots {
		if b.slots[i].key.Load() == h {
			return &b.slots[i]
		}
	}
	return nil
}

// claim gives h a slot in one of its buckets i1, i2 (see table for the order
// of preference).
func (t *table) claim(i1, i2, h uint64, now int64) *slot {
	lo, hi := &t.buckets[min(i1, i2)], &t.buckets[max(i1, i2)]
	for reclaimed := false; ; reclaimed = true {
		lo.mu.Lock()
		hi.mu.Lock()
		s := t.find(i1, i2, h) // another request may have claimed it meanwhile
		if s == nil {
			s = t.choose(lo, hi, now, reclaimed)
		}
		if s == nil {
			// At the cap: free a slot elsewhere, then look again. reclaim
			// must not run while we hold bucket locks (see reclaim).
			hi.mu.Unlock()
			lo.mu.Unlock()
			t.reclaim(lo, hi, now)
			continue
		}
		if s.key.Load() != h {
			assign(s, h)
		}
		hi.mu.Unlock()
		lo.mu.Unlock()
		return s
	}
}

// choose picks the slot a new key takes in buckets a and b, whose locks the
// caller holds, updating the key count and eviction counter. It returns nil
// when the table is at its cap and an empty slot would be needed, unless
// force is set (after a reclaim: if that found nothing to free, every probed
// bucket being busy, the cap is exceeded by one until the next reclaim rather
// than failing the request).
func (t *table) choose(a, b *bucket, now int64, force bool) *slot {
	ea, ia, oa, na := a.scan(now)
	eb, ib, ob, nb := b.scan(now)
	if ia != nil || ib != nil {
		return cmp.Or(ia, ib) // reuse: the key count does not change
	}
	empty := cmp.Or(ea, eb)
	if ea != nil && eb != nil && nb < na {
		empty = eb // two choices: fill the emptier bucket
	}
	if empty != nil {
		if t.keys.Add(1) <= t.maxKeys || force {
			return empty
		}
		t.keys.Add(-1)
		return nil
	}
	oldest := oa
	if oldest == nil || ob != nil && ob.tat.Load() < oldest.tat.Load() {
		oldest = ob
	}
	t.evictions.Add(1)
	return oldest
}

// scan classifies b's slots; the caller holds b.mu. oldest is the occupied,
// non-idle slot with the smallest TAT: the one closest to a full bucket. used
// counts occupied slots.
func (b *bucket) scan(now int64) (empty, idle, oldest *slot, used int) {
	for i := range b.slots {
		s := &b.slots[i]
		switch {
		case s.key.Load() == 0:
			if empty == nil {
				empty = s
			}
			continue
		case s.tat.Load() <= now:
			if idle == nil {
				idle = s
			}
		case oldest == nil || s.tat.Load() < oldest.tat.Load():
			oldest = s
		}
		used++
	}
	return empty, idle, oldest, used
}

// assign gives s to key h with a full bucket. The TAT is reset before the key
// is published so lock-free readers never see h with the old key's TAT.
func assign(s *slot, h uint64) {
	s.tat.Store(0)
	s.key.Store(h)
}

// reclaim frees one slot outside own1 and own2 so that a new key can take an
// empty slot without exceeding maxKeys. It probes up to 4 buckets at the
// clock hand and frees the first idle slot found, else the probed slot with
// the smallest TAT (an eviction, counted). It is called with no lock held and
// holds at most one bucket lock at a time, so it cannot deadlock with
// claimers.
func (t *table) reclaim(own1, own2 *bucket, now int64) {
	var vb *bucket
	var vkey uint64
	var vtat int64
	for range 4 {
		b := &t.buckets[t.hand.Add(1)&t.mask]
		if b == own1 || b == own2 || !b.mu.TryLock() {
			continue
		}
		_, idle, oldest, _ := b.scan(now)
		if idle != nil {
			t.free(idle)
			b.mu.Unlock()
			return
		}
		if oldest != nil && (vb == nil || oldest.tat.Load() < vtat) {
			vb, vkey, vtat = b, oldest.key.Load(), oldest.tat.Load()
		}
		b.mu.Unlock()
	}
	if vb == nil {
		return
	}
	vb.mu.Lock()
	defer vb.mu.Unlock()
	if s := vb.find(vkey); s != nil {
		t.free(s)
		t.evictions.Add(1)
	}
}

// free empties s; the caller holds its bucket's lock.
func (t *table) free(s *slot) {
	s.key.Store(0)
	s.tat.Store(0)
	t.keys.Add(-1)
}

// take charges inc nanoseconds of emission time to s if that keeps the TAT
// within tau of now (GCRA). It returns whether the request conforms and the
// TAT after the call (unchanged on rejection). The CAS loop makes concurrent
// takes linearizable: under any interleaving the admitted cost in a span of
// length d never exceeds tau + d (i.e. burst + rate × d).
func (s *slot) take(now, inc, tau int64) (ok bool, tat int64) {
	for {
		old := s.tat.Load()
		next := max(old, now) + inc
		if next-now > tau {
			return false, old
		}
		if s.tat.CompareAndSwap(old, next) {
			return true, next
		}
	}
}

// refund gives back inc nanoseconds taken by take, if s still belongs to h.
// Subtraction commutes with other takes as long as none of them found the
// bucket full (TAT < their now) in between; if one did, the refund may credit
// up to inc more than was taken. That needs the key to drain completely within
// the microseconds between our take and refund, so in practice the refund is
// exact, and it can never let more than one extra request's cost through.
func (s *slot) refund(h uint64, inc int64) {
	if h == 0 {
		h = 1
	}
	if s.key.Load() != h {
		return // evicted meanwhile: its state is gone anyway
	}
	s.tat.Add(-inc)
}
