package limiter

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// ways is the number of slots per bucket: 8 × 16 B of slots plus a mutex is
// two cache lines, and 8 candidates make a decent victim sample.
const ways = 8

// table is the bounded key → TAT store shared by every rule of a Limiter.
//
// Design (and why not map + mutex per shard):
//   - It is a fixed-size, set-associative array allocated once: a key's 64-bit
//     hash picks a bucket of 8 slots. Memory is known up front and stays flat
//     under any flood; nothing is ever allocated per key, and the array holds
//     no pointers, so the GC never scans it (a map[uint64]*entry of 1M keys is
//     1M objects to mark and ~3× the bytes).
//   - Keys are stored as their 64-bit seeded hash only; raw key parts (IPs,
//     API keys) never reach memory that outlives the request. The odds that two
//     live keys collide (and share a bucket) are n²/2⁶⁵: ~3·10⁻⁸ for 1M keys.
//   - Lookups of existing keys take no lock: an atomic scan of 8 slots, then a
//     CAS loop on the slot's TAT (GCRA). A hot key costs one load and one CAS.
//   - Claiming a slot for a new key takes the bucket's mutex (re-scanning under
//     it), so two requests racing on a new key cannot create two slots for it:
//     the exact-count guarantee holds from the first request on.
//   - The total number of keys is capped at maxKeys by a counter. A new key
//     takes, in order: an empty slot (while under the cap), an idle slot (TAT ≤
//     now: a full bucket carries no information, dropping it changes nothing),
//     a slot freed elsewhere by the clock hand (idle first), or, last, the
//     bucket's slot with the smallest TAT (the one closest to full): an
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
// power of two, so buckets rarely overflow before the cap is reached.
func newTable(maxKeys int) *table {
	n := uint64(maxKeys)*5/4/ways + 1
	n = 1 << bits.Len64(n-1)
	return &table{buckets: make([]bucket, n), mask: n - 1, maxKeys: int64(maxKeys)}
}

// get returns the slot of key h, claiming one if absent. It never fails: the
// worst case evicts another key.
func (t *table) get(h uint64, now int64) *slot {
	if h == 0 {
		h = 1
	}
	b := &t.buckets[h&t.mask]
	if s := b.find(h); s != nil {
		return s
	}
	return t.claim(b, h, now)
}

// lookup returns the slot of key h or nil; it never claims.
func (t *table) lookup(h uint64) *slot {
	if h == 0 {
		h = 1
	}
	return t.buckets[h&t.mask].find(h)
}

func (b *bucket) find(h uint64) *slot {
	for i := range b.slots {
		if b.slots[i].key.Load() == h {
			return &b.slots[i]
		}
	}
	return nil
}

func (t *table) claim(b *bucket, h uint64, now int64) *slot {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.find(h); s != nil {
		return s // another request claimed it while we waited
	}
	empty, idle, oldest := b.scan(now)
	switch {
	case idle != nil:
		return assign(idle, h) // reuse: the key count does not change
	case empty != nil && t.keys.Add(1) <= t.maxKeys:
		return assign(empty, h)
	case empty != nil:
		// At the cap: free a slot elsewhere, then take ours. reclaim cannot run
		// under b.mu (see reclaim), so drop it and look again afterwards.
		t.keys.Add(-1)
		b.mu.Unlock()
		t.reclaim(b, now)
		b.mu.Lock()
		if s := b.find(h); s != nil {
			return s
		}
		if empty, idle, oldest = b.scan(now); idle == nil && empty != nil {
			// If reclaim found nothing to free (all probed buckets busy) this
			// overshoots the cap by one until the next reclaim: better than
			// failing the request.
			t.keys.Add(1)
			return assign(empty, h)
		}
		if idle != nil {
			return assign(idle, h)
		}
	}
	t.evictions.Add(1)
	return assign(oldest, h)
}

// scan classifies b's slots; the caller holds b.mu. oldest is the occupied,
// non-idle slot with the smallest TAT: the one closest to a full bucket.
func (b *bucket) scan(now int64) (empty, idle, oldest *slot) {
	for i := range b.slots {
		s := &b.slots[i]
		switch {
		case s.key.Load() == 0:
			if empty == nil {
				empty = s
			}
		case s.tat.Load() <= now:
			if idle == nil {
				idle = s
			}
		case oldest == nil || s.tat.Load() < oldest.tat.Load():
			oldest = s
		}
	}
	return empty, idle, oldest
}

// assign gives s to key h with a full bucket. The TAT is reset before the key
// is published so lock-free readers never see h with the old key's TAT.
func assign(s *slot, h uint64) *slot {
	s.tat.Store(0)
	s.key.Store(h)
	return s
}

// reclaim frees one slot outside own so that a new key can take an empty slot
// without exceeding maxKeys. It probes up to 4 buckets at the clock hand and
// frees the first idle slot found, else the probed slot with the smallest TAT
// (an eviction, counted). It locks one bucket at a time and never own, so it
// cannot deadlock with other claimers.
func (t *table) reclaim(own *bucket, now int64) {
	var vb *bucket
	var vkey uint64
	var vtat int64
	for range 4 {
		b := &t.buckets[t.hand.Add(1)&t.mask]
		if b == own || !b.mu.TryLock() {
			continue
		}
		_, idle, oldest := b.scan(now)
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
