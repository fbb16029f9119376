package stats

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
// A min-heap on count (built when the sketch fills) finds the victim in
// O(log capacity); an open-addressing
// table (linear probing, backward-shift deletion) of entry indexes finds a key
// without a Go map, whose string keys would allocate. Memory is fixed at
// construction. It is not safe for concurrent use.
type sketch struct {
	entries []ssEntry
	n       int        // entries in use
	heap    []heapItem // min-heap by count, kept only once the sketch is full
	pos     []int32    // entry index -> its position in heap
	table   []int16    // entry index+1 per hash slot, 0 = empty
	mask    uint64
}

// heapItem mirrors an entry's count next to its index, so sifting compares 16-byte items in one
// small array instead of reading ~300-byte entries: under a flood of new keys every request
// evicts, and the comparisons' cache misses were 30% of Record. For the same reason each entry's
// heap position lives in the compact sketch.pos, not in the entry: a sift writes one position
// per level, and in the entries each write was a cache miss of its own.
type heapItem struct {
	count uint64
	idx   int32
}

// newSketch returns an empty sketch monitoring up to capacity keys (<= 16383).
func newSketch(capacity int) *sketch {
	size := 4
	for size < 2*capacity {
		size *= 2
	}
	return &sketch{
		entries: make([]ssEntry, capacity),
		heap:    make([]heapItem, 0, capacity),
		pos:     make([]int32, capacity),
		table:   make([]int16, size),
		mask:    uint64(size - 1),
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
			if s.n == len(s.entries) {
				p := s.pos[ix-1]
				s.heap[p].count = e.count
				s.down(int(p))
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
		s.pos[i] = int32(len(s.heap))
		s.heap = append(s.heap, heapItem{idx: int32(i)}) // within capacity: no allocation
		if s.n == len(s.entries) {
			s.heapify()
		}
		return
	}
	// Full: the least-counted key gives its slot to the new key, which
	// inherits its count as the error bound.
	i := int(s.heap[0].idx)
	e := &s.entries[i]
	s.remove(e.hash)
	e.err = e.count
	e.count++
	s.heap[0].count = e.count
	s.setKey(e, h, a, b)
	s.insert(h, i)
	s.down(0)
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

// heapify orders the heap. The heap is kept only once the sketch is full:
// before that no key is evicted, so increments skip the sift (most minutes
// of most shards never fill).
func (s *sketch) heapify() {
	for i := range s.heap {
		s.heap[i].count = s.entries[s.heap[i].idx].count
	}
	for i := len(s.heap)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
}

// down sifts heap[i] toward the leaves. It moves the hole rather than swapping: each level
// writes one item and one position instead of two of each.
func (s *sketch) down(i int) {
	n := len(s.heap)
	it := s.heap[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && s.heap[c+1].count < s.heap[c].count {
			c++
		}
		if s.heap[c].count >= it.count {
			break
		}
		s.heap[i] = s.heap[c]
		s.pos[s.heap[i].idx] = int32(i)
		i = c
	}
	s.heap[i] = it
	s.pos[it.idx] = int32(i)
}

// reset empties the sketch, keeping its memory.
func (s *sketch) reset() {
	s.n = 0
	s.heap = s.heap[:0]
	clear(s.table)
}

// each calls f for every monitored entry.
func (s *sketch) each(f func(e *ssEntry)) {
	for i := range s.n {
		f(&s.entries[i])
	}
}
