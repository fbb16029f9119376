package stats

import (
	"cmp"
	"slices"
)

// keyBufLen is the fixed key size of a sketch slot: a 16-byte IP followed by
// up to MaxKeyLen bytes of path.
const keyBufLen = 16 + MaxKeyLen

// ssEntry is one monitored key of a space-saving sketch. The key lives in a
// fixed array so that replacing a key copies bytes instead of allocating.
type ssEntry struct {
	hash  uint64
	count uint64 // estimated count: never below the true count
	err   uint64 // overestimation bound: true count >= count-err
	klen  uint16
	trunc bool // the path was longer than MaxKeyLen
	key   [keyBufLen]byte
}

// sketch is a space-saving heavy-hitter sketch (Metwally, Agrawal, El Abbadi,
// "Efficient computation of frequent and top-k elements in data streams",
// 2005) over a fixed number of slots. Any key seen more than N/capacity times
// in a stream of N is guaranteed to be monitored, and its count is
// overestimated by at most err. Keys are identified by their 64-bit hash
// alone: a collision (odds ~ slots²/2^64) merges two keys.
//
// An open-addressing table (linear probing, backward-shift deletion) of entry
// indexes finds a key without a Go map, whose string keys would allocate. Once
// the sketch is full, the paper's Stream-Summary finds the victim: buckets of
// equal count in a list of ascending counts, each holding its entries in a
// list. An increment moves an entry to the next bucket and an eviction takes
// the first entry of the first bucket, both O(1). (A min-heap made every
// eviction under a flood of new keys sift the whole depth, log2(capacity)
// levels, because all counts are then nearly equal.) The links are int32
// indexes in compact arrays, so walking them does not touch the ~300-byte
// entries. Memory is fixed at construction. It is not safe for concurrent use.
type sketch struct {
	entries []ssEntry
	n       int     // entries in use
	table   []int16 // entry index+1 per hash slot, 0 = empty
	mask    uint64

	// The Stream-Summary, built when the sketch fills (before that no key is
	// evicted, so increments skip it: most minutes of most shards never fill).
	// Entry i is in bucket bucketOf[i]; prevE/nextE link the entries of one
	// bucket, bPrev/bNext the buckets in ascending bCount; -1 ends a list.
	bucketOf, prevE, nextE []int32
	bCount                 []uint64
	bHead, bPrev, bNext    []int32
	minB                   int32   // the lowest-count bucket, -1 when not built
	free                   []int32 // unused bucket indexes
	order                  []int32 // build's scratch
}

// newSketch returns an empty sketch monitoring up to capacity keys (<= 16383).
func newSketch(capacity int) *sketch {
	size := 4
	for size < 2*capacity {
		size *= 2
	}
	nb := capacity + 1 // at most one bucket per entry, plus one made before its old one empties
	return &sketch{
		entries:  make([]ssEntry, capacity),
		table:    make([]int16, size),
		mask:     uint64(size - 1),
		bucketOf: make([]int32, capacity),
		prevE:    make([]int32, capacity),
		nextE:    make([]int32, capacity),
		bCount:   make([]uint64, nb),
		bHead:    make([]int32, nb),
		bPrev:    make([]int32, nb),
		bNext:    make([]int32, nb),
		minB:     -1,
		free:     make([]int32, 0, nb),
		order:    make([]int32, capacity),
	}
}

// add counts one occurrence of the key a+b (b truncated so the key fits in
// keyBufLen), identified by h. The bytes are copied only when the key enters
// the sketch.
func (s *sketch) add(h uint64, a, b []byte) {
	pos := h & s.mask
	for {
		ix := s.table[pos]
		if ix == 0 {
			break
		}
		if e := &s.entries[ix-1]; e.hash == h {
			e.count++
			if s.minB >= 0 {
				s.promote(int32(ix - 1))
			}
			return
		}
		pos = (pos + 1) & s.mask
	}
	if s.n < len(s.entries) {
		i := s.n
		s.n++
		e := &s.entries[i]
		e.count, e.err = 1, 0
		s.setKey(e, h, a, b)
		s.table[pos] = int16(i + 1)
		if s.n == len(s.entries) {
			s.build()
		}
		return
	}
	// Full: a least-counted key gives its slot to the new key, which
	// inherits its count as the error bound.
	i := s.bHead[s.minB]
	e := &s.entries[i]
	s.remove(e.hash)
	e.err = e.count
	e.count++
	s.setKey(e, h, a, b)
	s.insert(h, int(i))
	s.promote(i)
}

// build makes the Stream-Summary of the full sketch: entries sorted by count,
// one bucket per distinct count.
func (s *sketch) build() {
	for i := range s.order {
		s.order[i] = int32(i)
	}
	slices.SortFunc(s.order, func(x, y int32) int { return cmp.Compare(s.entries[x].count, s.entries[y].count) })
	s.free = s.free[:0]
	for b := len(s.bCount) - 1; b >= 0; b-- {
		s.free = append(s.free, int32(b))
	}
	s.minB = -1
	last := int32(-1)
	for _, i := range s.order {
		if last < 0 || s.bCount[last] != s.entries[i].count {
			last = s.newBucketAfter(last, s.entries[i].count)
		}
		s.push(i, last)
	}
}

// promote moves entry i, whose count was just incremented by one, to the
// bucket of its new count.
func (s *sketch) promote(i int32) {
	c := s.entries[i].count
	b := s.bucketOf[i]
	switch next := s.bNext[b]; {
	case next >= 0 && s.bCount[next] == c:
		s.unlink(i)
		s.push(i, next)
	case s.bHead[b] == i && s.nextE[i] < 0:
		s.bCount[b] = c // alone in its bucket: the bucket moves up with it, still below next
	default:
		nb := s.newBucketAfter(b, c)
		s.unlink(i) // b keeps its other entries
		s.push(i, nb)
	}
}

// push puts entry i first in bucket b.
func (s *sketch) push(i, b int32) {
	s.bucketOf[i] = b
	s.prevE[i] = -1
	s.nextE[i] = s.bHead[b]
	if s.bHead[b] >= 0 {
		s.prevE[s.bHead[b]] = i
	}
	s.bHead[b] = i
}

// unlink takes entry i out of its bucket, and drops the bucket if that
// emptied it.
func (s *sketch) unlink(i int32) {
	b := s.bucketOf[i]
	p, n := s.prevE[i], s.nextE[i]
	if p >= 0 {
		s.nextE[p] = n
	} else {
		s.bHead[b] = n
	}
	if n >= 0 {
		s.prevE[n] = p
	}
	if s.bHead[b] >= 0 {
		return
	}
	bp, bn := s.bPrev[b], s.bNext[b]
	if bp >= 0 {
		s.bNext[bp] = bn
	} else {
		s.minB = bn
	}
	if bn >= 0 {
		s.bPrev[bn] = bp
	}
	s.free = append(s.free, b) // within capacity: buckets never outnumber cap(free)
}

// newBucketAfter takes a free bucket for count and links it after b (-1: first).
func (s *sketch) newBucketAfter(b int32, count uint64) int32 {
	nb := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.bCount[nb], s.bHead[nb], s.bPrev[nb] = count, -1, b
	if b >= 0 {
		s.bNext[nb] = s.bNext[b]
		s.bNext[b] = nb
	} else {
		s.bNext[nb] = s.minB
		s.minB = nb
	}
	if s.bNext[nb] >= 0 {
		s.bPrev[s.bNext[nb]] = nb
	}
	return nb
}

// setKey copies a+b into e, truncating b at MaxKeyLen.
func (s *sketch) setKey(e *ssEntry, h uint64, a, b []byte) {
	e.hash = h
	n := copy(e.key[:], a)
	m := copy(e.key[n:n+MaxKeyLen], b)
	e.klen = uint16(n + m)
	e.trunc = m < len(b)
}

// insert adds entry i under hash h to the table; h must be absent.
func (s *sketch) insert(h uint64, i int) {
	pos := h & s.mask
	for s.table[pos] != 0 {
		pos = (pos + 1) & s.mask
	}
	s.table[pos] = int16(i + 1)
}

// remove deletes hash h from the table, shifting back the entries that
// follow it so lookups need no tombstones.
func (s *sketch) remove(h uint64) {
	i := h & s.mask
	for s.entries[s.table[i]-1].hash != h {
		i = (i + 1) & s.mask
	}
	for j := i; ; {
		j = (j + 1) & s.mask
		if s.table[j] == 0 {
			break
		}
		k := s.entries[s.table[j]-1].hash & s.mask // home slot of the entry at j
		// The entry stays if its home lies cyclically in (i, j].
		if (i <= j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		s.table[i] = s.table[j]
		i = j
	}
	s.table[i] = 0
}

// reset empties the sketch, keeping its memory.
func (s *sketch) reset() {
	s.n = 0
	s.minB = -1
	clear(s.table)
}

// each calls f for every monitored entry.
func (s *sketch) each(f func(e *ssEntry)) {
	for i := range s.n {
		f(&s.entries[i])
	}
}
