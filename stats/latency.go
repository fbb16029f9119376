package stats

import (
	"math/bits"
	"time"
)

// Latency buckets are log-linear over microseconds: values below 8µs have a
// bucket each, then every power of two is split into 8 equal buckets, up to
// 2^31µs (~36 min); longer values land in the last bucket. A quantile read from
// a bucket midpoint is within ±6.25% of the true value. Fixed buckets (not a
// t-digest or a streaming quantile) make minutes and hours mergeable by plain
// addition, which is what rollups need.
const (
	latSub      = 8 // buckets per power of two; also the count of exact small buckets
	latSubBits  = 3 // log2(latSub)
	latMaxExp   = 31
	numLatBkts  = latSub + (latMaxExp-latSubBits)*latSub
	maxLatValue = uint64(1)<<latMaxExp - 1
)

// latencyHist counts durations per log-linear bucket. The zero value is empty.
// It is not safe for concurrent use; shards guard theirs with a mutex.
type latencyHist struct {
	counts [numLatBkts]uint64
	sumUS  uint64
}

// latBucket returns the bucket index of a duration in microseconds.
func latBucket(us uint64) int {
	if us < latSub {
		return int(us)
	}
	if us > maxLatValue {
		us = maxLatValue
	}
	e := bits.Len64(us) - 1 // e >= latSubBits
	m := (us >> (e - latSubBits)) & (latSub - 1)
	return latSub + (e-latSubBits)*latSub + int(m)
}

// latBounds returns the [lower, upper) microsecond bounds of bucket i.
func latBounds(i int) (lo, hi uint64) {
	if i < latSub {
		return uint64(i), uint64(i) + 1
	}
	e := (i-latSub)/latSub + latSubBits
	m := uint64((i - latSub) % latSub)
	shift := e - latSubBits
	return (latSub + m) << shift, (latSub + m + 1) << shift
}

// add counts one duration. Negative durations count as zero.
func (h *latencyHist) add(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[latBucket(us)]++
	h.sumUS += us
}

// merge adds o into h.
func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.sumUS += o.sumUS
}

// total returns the number of durations counted.
func (h *latencyHist) total() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// quantile returns the q-quantile (0..1) as the midpoint of the bucket that
// holds it, or 0 when h is empty.
func (h *latencyHist) quantile(q float64) time.Duration {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n-1)) + 1 // 1-based rank of the wanted sample
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := latBounds(i)
			return time.Duration(lo+hi) * time.Microsecond / 2
		}
	}
	return 0 // unreachable: seen reaches n
}

// mean returns the average duration, or 0 when h is empty.
func (h *latencyHist) mean() time.Duration {
	n := h.total()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sumUS/n) * time.Microsecond
}

// sparse returns the non-empty buckets as [index, count] pairs, the stored form.
func (h *latencyHist) sparse() [][2]uint64 {
	var out [][2]uint64
	for i, c := range h.counts {
		if c != 0 {
			out = append(out, [2]uint64{uint64(i), c})
		}
	}
	return out
}

// addSparse adds stored [index, count] pairs into h, ignoring bad indexes.
func (h *latencyHist) addSparse(p [][2]uint64) {
	for _, kv := range p {
		if kv[0] < numLatBkts {
			h.counts[kv[0]] += kv[1]
		}
	}
}
