package limiter

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func benchLimiter(b *testing.B, cfg Config) *Limiter {
	b.Helper()
	l, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkCheckHotKey: every goroutine hits the same key of one rule.
// "allowed" never exhausts the bucket; "limited" always rejects.
func BenchmarkCheckHotKey(b *testing.B) {
	for _, c := range []struct {
		name  string
		burst int
	}{{"allowed", 2_000_000_000}, {"limited", 1}} {
		b.Run(c.name, func(b *testing.B) {
			l := benchLimiter(b, Config{MaxKeys: 1000, Rules: []RuleConfig{
				{ID: "items-ip", Paths: []string{"/items/*"}, Key: []string{"ip"}, Rate: "1000000/s", Burst: c.burst},
			}})
			a := netip.MustParseAddr("1.2.3.4")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := newReq("GET", "/items/MLA1")
				var d Decision
				for pb.Next() {
					l.Check(t0, r, a, &d)
				}
			})
		})
	}
}

// BenchmarkCheckDistinctKeys cycles through 1M client addresses (keys), all
// tracked (MaxKeys = 1M): cache misses on the table dominate.
func BenchmarkCheckDistinctKeys(b *testing.B) {
	const n = 1 << 20
	l := benchLimiter(b, Config{MaxKeys: n, Rules: []RuleConfig{
		{ID: "per-ip", Key: []string{"ip"}, Rate: "10/m"},
	}})
	var next atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := newReq("GET", "/items/MLA1")
		var d Decision
		i := next.Add(n / 4)
		for pb.Next() {
			i++
			l.Check(t0, r, netip.AddrFrom4([4]byte{10, byte(i >> 16 & 0xf), byte(i >> 8), byte(i)}), &d)
		}
	})
}

// BenchmarkCheckFlood: every request is a never-seen key and the table is
// full of live keys: each Check evicts.
func BenchmarkCheckFlood(b *testing.B) {
	l := benchLimiter(b, Config{MaxKeys: 100_000, Rules: []RuleConfig{
		{ID: "per-ip", Key: []string{"ip"}, Rate: "10/m"},
	}})
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := newReq("GET", "/")
		var d Decision
		for pb.Next() {
			i := next.Add(1)
			l.Check(t0, r, netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), &d)
		}
	})
}

// BenchmarkCheckShippedRules: the three shipped rules on an /items request
// from a trusted proxy, with headers written: the proxy's full limiter cost.
func BenchmarkCheckShippedRules(b *testing.B) {
	rules, err := LoadRulesFile("testdata/rules.toml")
	if err != nil {
		b.Fatal(err)
	}
	l := benchLimiter(b, Config{MaxKeys: 10_000, TrustedProxies: []string{"10.0.0.0/8"}, Rules: rules})
	peer := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := newReq("GET", "/items/MLA1", "X-Forwarded-For", "9.9.9.9")
		var d Decision
		var h fasthttp.ResponseHeader
		now := t0
		for pb.Next() {
			now = now.Add(time.Minute) // buckets refilled: measure the allowed path
			l.Check(now, r, l.ClientIP(peer, &r.Header), &d)
			d.WriteHeaders(&h)
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	l := benchLimiter(b, Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8::/32"}})
	peer := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := headerWith("1.1.1.1, 2001:db8:1::1", "9.9.9.9, 10.1.1.1")
		for pb.Next() {
			l.ClientIP(peer, h)
		}
	})
}

// BenchmarkHeap1MKeys reports the heap held by a Limiter tracking 1M keys
// (MaxKeys = 1M), measured with runtime.ReadMemStats after GC.
func BenchmarkHeap1MKeys(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l := benchLimiter(b, Config{MaxKeys: n, Rules: []RuleConfig{{ID: "per-ip", Key: []string{"ip"}, Rate: "10/m"}}})
		r := newReq("GET", "/")
		var d Decision
		for i := range n {
			l.Check(t0, r, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), &d)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		tb := l.set.Load().table
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(tb.keys.Load()), "keys")
		b.ReportMetric(float64(tb.evictions.Load()), "evictions")
		runtime.KeepAlive(l)
	}
}
