package stats

import (
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchRecords is a realistic mix: 64 paths, 256 clients, hits, misses and
// a limited rule.
func benchRecords(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		r := &rs[i]
		r.Now = t0.Add(10 * time.Second)
		r.Status = []int{200, 200, 200, 304, 404, 429, 502}[i%7]
		r.Path = []byte("/items/MLA" + strconv.Itoa(i%64))
		r.ClientIP = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		r.Route = []string{"items", "search", ""}[i%3]
		r.Cache = CacheResult(i % 4)
		if r.Status == 429 {
			r.Limit, r.LimitRule = LimitLimited, "items-ip"
		}
		r.Upstream = time.Duration(i%50) * time.Millisecond
		r.Total = r.Upstream + 300*time.Microsecond
		r.BytesIn, r.BytesOut = 200, 1500
	}
	return rs
}

func benchStats(b *testing.B) *Stats {
	s, err := New(Config{DataDir: b.TempDir(), FlushInterval: 10 * time.Minute}, Options{Clock: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRecord is the per-request hot path from every core at once.
func BenchmarkRecord(b *testing.B) {
	s := benchStats(b)
	rs := benchRecords(256)
	var id atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer() // New preallocates the sketches: not per-record cost
	b.RunParallel(func(pb *testing.PB) {
		i := int(id.Add(1)) * 97
		for pb.Next() {
			s.Record(&rs[i&255])
			i++
		}
	})
}

// BenchmarkRecordDistinctIPs makes every record a new client: each one
// evicts a sketch entry and copies its key.
func BenchmarkRecordDistinctIPs(b *testing.B) {
	s := benchStats(b)
	var id atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer() // New preallocates the sketches: not per-record cost
	b.RunParallel(func(pb *testing.PB) {
		r := benchRecords(1)[0]
		n := id.Add(1) << 24
		for pb.Next() {
			n++
			r.ClientIP = netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
			s.Record(&r)
		}
	})
}

// BenchmarkRecordSerial is one core alone, for the uncontended cost.
func BenchmarkRecordSerial(b *testing.B) {
	s := benchStats(b)
	rs := benchRecords(256)
	b.ReportAllocs()
	b.ResetTimer() // New preallocates the sketches: not per-record cost
	for i := 0; b.Loop(); i++ {
		s.Record(&rs[i&255])
	}
}
