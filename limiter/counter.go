package limiter

import (
	"sync/atomic"
	"unsafe"
)

// stripes is the number of cache lines a counter is spread over.
const stripes = 8

// counter is a uint64 counter striped over cache lines. Every request adds to
// a rule's counter, so with one atomic.Uint64 all cores write the same cache
// line; BenchmarkCheckHotKey/allowed measured 79 → 65 ns/op without that
// write. The stripe is picked from the address of the caller's Decision: the
// proxy pools one per in-flight request, so concurrent requests mostly land
// on different stripes, and no goroutine or P id is needed. The zero value is
// ready to use; it must not be copied.
type counter struct {
	s [stripes]struct {
		n atomic.Uint64
		_ [56]byte // pad to 64 bytes: one cache line per stripe
	}
}

// add increments the stripe chosen by d's address.
func (c *counter) add(d *Decision) {
	h := uint64(uintptr(unsafe.Pointer(d))) * 0x9E3779B97F4A7C15 // Fibonacci hashing: mixes the high bits
	c.s[h>>(64-3)].n.Add(1)
}

// load returns the sum of the stripes. Concurrent adds may or may not be
// included; the result never goes backwards between loads.
func (c *counter) load() uint64 {
	var n uint64
	for i := range c.s {
		n += c.s[i].n.Load()
	}
	return n
}
