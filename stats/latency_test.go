package stats

import (
	"testing"
	"time"
)

func TestLatencyBuckets(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, us := range []uint64{0, 1, 7, 8, 9, 15, 16, 17, 100, 999, 1000, 123456, 1 << 30, maxLatValue, maxLatValue + 1, 1 << 62} {
		i := latBucket(us)
		if i < prev || i >= numLatBkts {
			t.Fatalf("bucket(%d) = %d, previous %d, max %d", us, i, prev, numLatBkts)
		}
		prev = i
		lo, hi := latBounds(i)
		if v := min(us, maxLatValue); v < lo || v >= hi {
			t.Errorf("bucket(%d) = %d with bounds [%d, %d)", us, i, lo, hi)
		}
		if lo >= 8 && float64(hi-lo)/float64(lo) > 0.125+1e-9 {
			t.Errorf("bucket %d too wide: [%d, %d)", i, lo, hi)
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	t.Parallel()
	var h latencyHist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0, time.Millisecond}, {.5, 500 * time.Millisecond}, {.9, 900 * time.Millisecond}, {.99, 990 * time.Millisecond}, {1, time.Second}}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d > .0625 || d < -.0625 {
			t.Errorf("q%v = %v, want %v ±6.25%%", tt.q, got, tt.want)
		}
	}
	var empty latencyHist
	if empty.quantile(.5) != 0 || empty.mean() != 0 {
		t.Error("empty histogram not zero")
	}
	var m latencyHist
	m.addSparse(h.sparse())
	m.sumUS = h.sumUS
	if m != h {
		t.Error("sparse round trip differs")
	}
	if got := h.mean(); got != 500500*time.Microsecond {
		t.Errorf("mean = %v", got)
	}
}
