package stats

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestSketchInvariants checks, under random churn, that every monitored key
// is found through the hash table, the Stream-Summary is consistent once full,
// and counts sum to the number of adds (a space-saving invariant).
func TestSketchInvariants(t *testing.T) {
	t.Parallel()
	for _, capacity := range []int{1, 3, 8, 80} {
		t.Run(strconv.Itoa(capacity), func(t *testing.T) {
			s := newSketch(capacity)
			rng := rand.New(rand.NewPCG(1, uint64(capacity)))
			for i := range 20000 {
				k := rng.Uint64N(uint64(4 * capacity))
				s.add(k*0x9E3779B97F4A7C15, nil, []byte(strconv.FormatUint(k, 10)))
				if i%997 == 0 || i == 19999 {
					checkSketch(t, s, uint64(i+1))
				}
			}
			s.reset()
			checkSketch(t, s, 0)
		})
	}
}

func checkSketch(t *testing.T, s *sketch, adds uint64) {
	t.Helper()
	var sum uint64
	for i := range s.n {
		e := &s.entries[i]
		sum += e.count
		found := false
		for pos := e.hash & s.mask; s.table[pos] != 0; pos = (pos + 1) & s.mask {
			if int(s.table[pos]-1) == i {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("entry %d (hash %x) not reachable in the table", i, e.hash)
		}
	}
	if sum != adds {
		t.Fatalf("counts sum to %d, want %d adds", sum, adds)
	}
	if s.n < len(s.entries) {
		if s.minB != -1 {
			t.Fatalf("Stream-Summary built before the sketch is full (%d of %d)", s.n, len(s.entries))
		}
		return
	}
	// Full: buckets in strictly ascending count, each entry once, in the bucket of its count,
	// with consistent back links; used and free buckets add up.
	seen := make([]bool, s.n)
	buckets, prev := 0, int32(-1)
	for b := s.minB; b >= 0; prev, b = b, s.bNext[b] {
		buckets++
		if s.bPrev[b] != prev || (prev >= 0 && s.bCount[prev] >= s.bCount[b]) || s.bHead[b] < 0 {
			t.Fatalf("bucket %d (count %d): bad link, order or empty", b, s.bCount[b])
		}
		pe := int32(-1)
		for i := s.bHead[b]; i >= 0; pe, i = i, s.nextE[i] {
			if seen[i] || s.prevE[i] != pe || s.bucketOf[i] != b || s.entries[i].count != s.bCount[b] {
				t.Fatalf("entry %d in bucket %d (count %d): seen twice, bad link or count %d", i, b, s.bCount[b], s.entries[i].count)
			}
			seen[i] = true
		}
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("entry %d in no bucket", i)
		}
	}
	if buckets+len(s.free) != len(s.bCount) {
		t.Fatalf("%d buckets in use + %d free != %d", buckets, len(s.free), len(s.bCount))
	}
}

// TestTopNSkewed feeds a Zipf stream over 10000 paths and 5000 clients and
// checks that, at the default TopN, the reported top 10 are the true top 10
// with counts within the reported bounds.
func TestTopNSkewed(t *testing.T) {
	t.Parallel()
	s, clk := newTestCfg(t, Config{FlushInterval: time.Minute}, Options{})
	rng := rand.New(rand.NewPCG(7, 7))
	zp := rand.NewZipf(rng, 1.2, 1, 9999)
	zi := rand.NewZipf(rng, 1.1, 1, 4999)
	truePath, trueIP := map[string]uint64{}, map[string]uint64{}
	for i := range 200000 {
		path := "/items/MLA" + strconv.FormatUint(zp.Uint64(), 10)
		n := zi.Uint64()
		ip := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
		truePath[path]++
		trueIP[ip.String()]++
		s.Record(&Record{Now: t0.Add(time.Duration(i) * 100 * time.Microsecond), Status: 200, Path: []byte(path), ClientIP: ip})
	}
	clk.Set(t0.Add(time.Minute))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		by    string
		truth map[string]uint64
	}{{"path", truePath}, {"ip", trueIP}} {
		top, err := s.Top(tc.by, t0, t0.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		want := exactTop(tc.truth, 10)
		for i, e := range top.Items {
			if e.Key != want[i] {
				t.Errorf("%s top[%d] = %q, want %q", tc.by, i, e.Key, want[i])
			}
			tr := tc.truth[e.Key]
			if e.Count < tr || e.Count-e.Error > tr {
				t.Errorf("%s %q: count %d ±%d does not bound the true %d", tc.by, e.Key, e.Count, e.Error, tr)
			}
		}
	}
}

func exactTop(m map[string]uint64, n int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range n { // partial selection sort: n is small
		for j := i + 1; j < len(keys); j++ {
			if m[keys[j]] > m[keys[i]] || (m[keys[j]] == m[keys[i]] && keys[j] < keys[i]) {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys[:n]
}

// TestTopNBoundedMemory floods one minute with 1M distinct client IPs (100k
// under the race detector, which is 50× slower): totals stay exact, the heap
// does not grow with the IPs, and the stored top list stays at its fixed size.
func TestTopNBoundedMemory(t *testing.T) {
	flood := 1_000_000
	if raceEnabled {
		flood = 100_000
	}
	s, clk := newTest(t, "", Options{})
	r := &Record{Now: t0, Status: 200, Path: []byte("/items/MLA1")}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range flood {
		r.ClientIP = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		s.Record(r)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Errorf("heap grew %d bytes over 1M distinct IPs, want < 1 MiB", grew)
	}
	if after.Mallocs-before.Mallocs > 1000 {
		t.Errorf("%d allocations for %d records", after.Mallocs-before.Mallocs, flood)
	}
	clk.Set(t0.Add(time.Minute))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	sm, err := s.Summary(t0, t0.Add(time.Minute), 5)
	if err != nil {
		t.Fatal(err)
	}
	if sm.Requests != uint64(flood) || len(sm.TopIPs) != 5 || sm.TopPaths[0].Count != uint64(flood) {
		t.Errorf("requests %d, %d top IPs, top path %+v", sm.Requests, len(sm.TopIPs), sm.TopPaths[0])
	}
	top, _ := s.Top("ip", t0, t0.Add(time.Minute), s.keep)
	if len(top.Items) != s.keep {
		t.Errorf("stored %d top IPs, want the fixed %d", len(top.Items), s.keep)
	}
}

func TestLongPathTruncated(t *testing.T) {
	t.Parallel()
	s, clk := newTest(t, "", Options{})
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'a'
	}
	long[0] = '/'
	s.Record(&Record{Now: t0, Status: 200, Path: long, ClientIP: netip.MustParseAddr("::ffff:192.0.2.9")})
	clk.Set(t0.Add(time.Minute))
	s.Flush()
	sm, _ := s.Summary(t0, t0.Add(time.Minute), 5)
	if k := sm.TopPaths[0].Key; len(k) != MaxKeyLen+len("…") || k[:MaxKeyLen] != string(long[:MaxKeyLen]) {
		t.Errorf("truncated key has %d bytes: %.20q…", len(k), k)
	}
	if k := sm.TopIPs[0].Key; k != "192.0.2.9" {
		t.Errorf("mapped IPv4 shown as %q, want 192.0.2.9", k)
	}
}
