package limiter

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meliproxy/meliproxy/internal/redistest"
)

// benchCluster returns a Limiter with rule, its cluster started on the Redis
// at addr ("" for none) and connected.
func benchCluster(b *testing.B, addr string, rule RuleConfig) *Limiter {
	b.Helper()
	l := benchLimiter(b, Config{MaxKeys: 1 << 20, Rules: []RuleConfig{rule}})
	if addr == "" {
		return l
	}
	prefix := fmt.Sprintf("bench:%d:", time.Now().UnixNano())
	if err := l.StartCluster(ClusterConfig{Addrs: []string{addr}, KeyPrefix: prefix}, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	for l.ClusterStatus(time.Now()).Degraded {
		time.Sleep(10 * time.Millisecond)
	}
	return l
}

// BenchmarkCheckCluster compares one rule as scope = "local" with the same
// rule as scope = "cluster" on a live Redis: the request path reads atomics
// only, so the difference is the hot-table probe and the key's stable hash.
//
//	hot-key: every goroutine hits one key (allowed: never exhausted; limited:
//	  the key is hot and its share and lease are empty, the attack case)
//	distinct: 1M client addresses, none ever hot
func BenchmarkCheckCluster(b *testing.B) {
	redisSrv := redistest.Start(b)
	for _, scope := range []string{"local", "cluster"} {
		for _, c := range []struct {
			name  string
			rate  string
			burst int
		}{{"hot-key-allowed", "1000000000/s", 2_000_000_000}, {"hot-key-limited", "10/s", 10}} {
			b.Run(scope+"/"+c.name, func(b *testing.B) {
				l := benchCluster(b, redisSrv.Addr, RuleConfig{ID: "items-ip", Paths: []string{"/items/*"},
					Key: []string{"ip"}, Rate: c.rate, Burst: c.burst, Scope: scope})
				a := netip.MustParseAddr("1.2.3.4")
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					r := newReq("GET", "/items/MLA1")
					var d Decision
					for pb.Next() {
						l.Check(time.Now(), r, a, &d)
					}
				})
			})
		}
		b.Run(scope+"/distinct", func(b *testing.B) {
			const n = 1 << 20
			l := benchCluster(b, redisSrv.Addr, RuleConfig{ID: "per-ip", Key: []string{"ip"}, Rate: "10/m", Scope: scope})
			var next atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := newReq("GET", "/items/MLA1")
				var d Decision
				i := next.Add(n / 4)
				for pb.Next() {
					i++
					l.Check(t0, r, netip.AddrFrom4([4]byte{10, byte(i >> 16 & 0xf), byte(i >> 8), byte(i)}), &d)
				}
			})
		})
	}
}
