package stats

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// numSlots is how many minutes are live in memory at once. A request whose
// Now is up to numSlots-1 minutes old is still counted in its own minute;
// older ones are counted in the minute their slot holds now.
const numSlots = 4

// maxLabels bounds the distinct rule and route ids tracked (per shard for
// rollups, globally for metric labels); later ids count as "other".
const maxLabels = 256

// shard holds one slice of a minute's counters. Records pick a shard by
// client IP hash, so a shard's IP and IP+path sketches see disjoint keys and
// merge exactly; paths are spread over shards and summed when harvested.
type shard struct {
	mu                sync.Mutex
	requests          uint64
	status            [600]uint64 // by code; [0] counts codes outside 100..599
	cache             [numCacheResults]uint64
	limits            map[string]*[numLimitResults]uint64 // entries kept across resets
	bytesIn, bytesOut uint64
	total, upstream   latencyHist
	sk                [numDims]*sketch
}

// slot is one live minute: minute is the unix minute it counts, changed only
// while every shard lock is held so a writer holding one shard lock sees a
// stable value.
type slot struct {
	minute atomic.Int64
	shards []shard
}

// window is the ring of live minutes.
type window struct {
	mu    sync.Mutex // serialises rotate and harvest
	slots [numSlots]slot
	mask  uint64 // len(shards)-1
	keep  int    // top-N entries kept per harvested rollup
}

func newWindow(shards, sketchCap, keep int) *window {
	w := &window{mask: uint64(shards - 1), keep: keep}
	for i := range w.slots {
		sl := &w.slots[i]
		sl.minute.Store(-1)
		sl.shards = make([]shard, shards)
		for j := range sl.shards {
			sh := &sl.shards[j]
			sh.limits = make(map[string]*[numLimitResults]uint64)
			for d := range sh.sk {
				sh.sk[d] = newSketch(sketchCap)
			}
		}
	}
	return w
}

// add records r, whose unix minute is m, under the shard lock. rot is called
// (without locks held) when m's slot still holds an older minute.
func (w *window) add(r *Record, m int64, hIP, hPath uint64, ip *[16]byte, rot func(sl *slot, m int64)) {
	sl := &w.slots[uint64(m)%numSlots]
	sh := &sl.shards[hIP&w.mask]
	sh.mu.Lock()
	if sl.minute.Load() < m {
		sh.mu.Unlock()
		rot(sl, m)
		sh.mu.Lock()
	}
	sh.add(r, hIP, hPath, ip)
	sh.mu.Unlock()
}

// add counts r. The caller holds sh.mu.
func (sh *shard) add(r *Record, hIP, hPath uint64, ip *[16]byte) {
	sh.requests++
	if r.Status >= 100 && r.Status < 600 {
		sh.status[r.Status]++
	} else {
		sh.status[0]++
	}
	sh.cache[r.Cache%numCacheResults]++
	if r.LimitRule != "" || r.Limit != LimitAllowed {
		sh.limit(r.LimitRule, r.Limit)
	}
	sh.bytesIn += uint64(max(r.BytesIn, 0))
	sh.bytesOut += uint64(max(r.BytesOut, 0))
	sh.total.add(r.Total)
	if r.Upstream > 0 { // cache hits and rejections never reached the upstream
		sh.upstream.add(r.Upstream)
	}
	sh.sk[dimPath].add(hPath, nil, r.Path)
	if r.ClientIP.IsValid() {
		sh.sk[dimIP].add(hIP, ip[:], nil)
		sh.sk[dimIPPath].add(pairHash(hIP, hPath), ip[:], r.Path)
	}
}

// limit counts a decision for rule. Inserting a new rule allocates once; the
// entry is kept (zeroed) across minutes, so steady state does not.
func (sh *shard) limit(rule string, l LimitResult) {
	c := sh.limits[rule]
	if c == nil {
		if len(sh.limits) >= maxLabels {
			rule = "other"
			c = sh.limits[rule]
		}
		if c == nil {
			c = new([numLimitResults]uint64)
			sh.limits[rule] = c
		}
	}
	c[l%numLimitResults]++
}

// pairHash combines an IP hash and a path hash into the IP+path key hash.
func pairHash(hIP, hPath uint64) uint64 {
	h := hIP*0x9E3779B97F4A7C15 ^ hPath
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// rotate moves sl to minute m if it holds an older one, returning the
// old minute and its harvest (nil if empty). It holds every shard lock while
// the minute changes.
func (w *window) rotate(sl *slot, m int64) (old int64, a *agg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old = sl.minute.Load()
	if old >= m {
		return old, nil // another writer rotated first
	}
	for i := range sl.shards {
		sl.shards[i].mu.Lock()
	}
	a = newAgg()
	for i := range sl.shards {
		sl.shards[i].drain(a)
	}
	sl.minute.Store(m)
	for i := range sl.shards {
		sl.shards[i].mu.Unlock()
	}
	if a.requests == 0 {
		return old, nil
	}
	return old, a
}

// harvest drains every live minute, returning the non-empty ones by unix
// minute. Shards are drained one at a time: a concurrent record lands in
// this harvest or the next, never in both.
func (w *window) harvest() map[int64]*agg {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[int64]*agg{}
	for i := range w.slots {
		sl := &w.slots[i]
		a := newAgg()
		for j := range sl.shards {
			sh := &sl.shards[j]
			sh.mu.Lock()
			sh.drain(a)
			sh.mu.Unlock()
		}
		if a.requests > 0 {
			out[sl.minute.Load()] = a
		}
	}
	return out
}

// drain adds the shard's counters to a and resets them. The caller holds sh.mu.
func (sh *shard) drain(a *agg) {
	if sh.requests == 0 {
		return
	}
	a.requests += sh.requests
	for code, n := range sh.status {
		if n != 0 {
			a.status[statusKey(code)] += n
		}
	}
	for i, n := range sh.cache {
		a.cache[i] += n
	}
	for rule, c := range sh.limits {
		a.addLimits(rule, c)
		*c = [numLimitResults]uint64{}
	}
	a.bytesIn += sh.bytesIn
	a.bytesOut += sh.bytesOut
	a.total.merge(&sh.total)
	a.upstream.merge(&sh.upstream)
	for d, sk := range sh.sk {
		sk.each(func(e *ssEntry) {
			a.addTop(d, TopEntry{Key: entryKey(d, e), Count: e.count, Error: e.err})
		})
		sk.reset()
	}
	sh.requests, sh.bytesIn, sh.bytesOut = 0, 0, 0
	sh.status = [600]uint64{}
	sh.cache = [numCacheResults]uint64{}
	sh.total, sh.upstream = latencyHist{}, latencyHist{}
}

// entryKey renders a sketch key for the API: the path, the IP, or "IP path".
// A truncated path ends in "…".
func entryKey(d int, e *ssEntry) string {
	k := e.key[:e.klen]
	var s string
	switch d {
	case dimPath:
		s = string(k)
	case dimIP:
		return netip.AddrFrom16([16]byte(k[:16])).Unmap().String()
	default:
		s = netip.AddrFrom16([16]byte(k[:16])).Unmap().String() + " " + string(k[16:])
	}
	if e.trunc {
		s += "…"
	}
	return s
}

// unixMinute returns the unix minute of t.
func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return s / 60
}
