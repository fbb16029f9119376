//go:build !race

package limiter

import (
	"net/netip"
	"testing"
	"time"

	"github.com/meliproxy/meliproxy/internal/redistest"
)

// TestClusterCheckAllocs proves cluster rules keep Check allocation-free on
// every path: a cold key on its share, a key turning hot (claim), a hot key
// on its lease or rejected, and degraded (Redis gone).
func TestClusterCheckAllocs(t *testing.T) {
	redisSrv := redistest.Start(t)
	nodes := clusterNodes(t, redisSrv.Addr, 1, Config{Rules: []RuleConfig{
		{ID: "cold", Paths: []string{"/cold"}, Key: []string{"ip"}, Rate: "1000/s", Scope: "cluster"},
		{ID: "claim", Paths: []string{"/claim"}, Key: []string{"ip"}, Rate: "1/s", Burst: 1, Scope: "cluster"},
		{ID: "hot", Paths: []string{"/hot"}, Rate: "1000/s", Scope: "cluster"},
	}})
	l := nodes[0]
	a := ip("1.2.3.4")
	hot := newReq("GET", "/hot")
	// The share is checked on a frozen clock (t0) and never refills; the
	// global bucket runs on Redis's clock and does: after a few syncs the key
	// is hot and leased.
	var d Decision
	leased := false
	for deadline := time.Now().Add(5 * time.Second); !leased && time.Now().Before(deadline); {
		for range 50 {
			l.Check(t0, hot, a, &d)
			leased = leased || d.n > 0 && d.states[0].leased
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !leased {
		t.Fatal("the hot key never admitted a request on a lease")
	}
	var i uint32
	cases := map[string]func(){
		"cold": func() { i++; l.Check(t0, newReqCold, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), &d) },
		"claim": func() {
			i++
			l.Check(t0, newReqClaim, netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), &d)
		},
		"hot": func() { l.Check(t0, hot, a, &d) },
	}
	for _, name := range []string{"cold", "claim", "hot"} {
		if n := testing.AllocsPerRun(500, cases[name]); n != 0 {
			t.Errorf("%s: %v allocs per Check, want 0", name, n)
		}
	}
	redisSrv.Stop()
	for !l.ClusterStatus(time.Now()).Degraded {
		time.Sleep(10 * time.Millisecond)
	}
	if n := testing.AllocsPerRun(500, cases["hot"]); n != 0 {
		t.Errorf("degraded: %v allocs per Check, want 0", n)
	}
}

var (
	newReqCold  = newReq("GET", "/cold")
	newReqClaim = newReq("GET", "/claim")
)
