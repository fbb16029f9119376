package limiter

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meliproxy/meliproxy/internal/redistest"
)

func TestClusterConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  ClusterConfig
		want string // substring of the error; "" = valid
	}{
		{"zero value: disabled", ClusterConfig{}, ""},
		{"standalone", ClusterConfig{Addrs: []string{"127.0.0.1:6379"}, DB: 2}, ""},
		{"sentinel", ClusterConfig{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster"}, ""},
		{"redis cluster", ClusterConfig{Addrs: []string{"r1:6379", "r2:6379"}}, ""},
		{"keys without addrs", ClusterConfig{NodeID: "a"}, "cluster.addrs: empty"},
		{"no port", ClusterConfig{Addrs: []string{"redis"}}, `cluster.addrs[0] "redis": want host:port`},
		{"db in cluster", ClusterConfig{Addrs: []string{"r1:1", "r2:1"}, DB: 1}, "cluster.db: Redis Cluster has only db 0"},
		{"sentinel and cluster", ClusterConfig{Addrs: []string{"r1:1"}, MasterName: "m", RedisCluster: true}, "cluster.redis_cluster"},
		{"tiny interval", ClusterConfig{Addrs: []string{"r:1"}, SyncInterval: time.Microsecond}, "cluster.sync_interval"},
		{"tiny ttl", ClusterConfig{Addrs: []string{"r:1"}, HeartbeatTTL: time.Millisecond}, "cluster.heartbeat_ttl"},
		{"negative", ClusterConfig{Addrs: []string{"r:1"}, Timeout: -1, InitialNodes: -1, MaxHotKeys: -1},
			"cluster.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	_, err := compile(&Config{Rules: []RuleConfig{{ID: "a", Rate: "1/s", Fail: "open"}}}, "limits.")
	if err == nil || !strings.Contains(err.Error(), `fail "open": only for scope = "cluster"`) {
		t.Errorf("fail on a local rule: %v", err)
	}
	_, err = compile(&Config{Rules: []RuleConfig{{ID: "a", Rate: "1/s", Scope: "cluster", Fail: "shut"}}}, "limits.")
	if err == nil || !strings.Contains(err.Error(), `fail "shut": must be local, open or closed`) {
		t.Errorf("bad fail: %v", err)
	}
}

// TestClusterDegraded: a node whose Redis never answers enforces each rule's
// fail mode: "local" is limit / initial_nodes, at once and with a fake clock.
func TestClusterDegraded(t *testing.T) {
	t.Parallel()
	rule := func(id, fail string) RuleConfig {
		return RuleConfig{ID: id, Paths: []string{"/" + id}, Rate: "10/s", Scope: "cluster", Fail: fail}
	}
	l := newLimiter(t, Config{Rules: []RuleConfig{rule("local", ""), rule("open", "open"), rule("closed", "closed"),
		{ID: "plain", Paths: []string{"/plain"}, Rate: "10/s"}}})
	if err := l.StartCluster(ClusterConfig{Addrs: []string{closedAddr(t)}, InitialNodes: 2, NodeID: "n1"}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	a := ip("1.2.3.4")
	for path, want := range map[string]int{"/local": 5, "/open": 100, "/closed": 0, "/plain": 10} {
		if got := admitted(l, t0, newReq("GET", path), a, 100); got != want {
			t.Errorf("%s: %d of 100 admitted at once, want %d", path, got, want)
		}
	}
	// The share refills at rate / nodes: 5 tokens per second.
	if got := admitted(l, t0.Add(time.Second), newReq("GET", "/local"), a, 100); got != 5 {
		t.Errorf("/local a second later: %d admitted, want 5", got)
	}
	d := check(l, t0.Add(time.Second), newReq("GET", "/closed"), a)
	if d.Verdict != Limit || d.RetryAfter <= 0 {
		t.Errorf("closed: %v retry after %v", d.Verdict, d.RetryAfter)
	}
	if st := l.ClusterStatus(time.Now()); !st.Enabled || !st.Degraded || st.Nodes != 2 {
		t.Errorf("status %+v, want enabled, degraded, 2 nodes", st)
	}
	var buf bytes.Buffer
	l.WriteMetrics(&buf)
	for _, want := range []string{"meliproxy_cluster_degraded 1", "meliproxy_cluster_nodes 2", "meliproxy_cluster_sync_lag_seconds "} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A rejected request charges nothing, also on a share: refunds use the
	// share's emission interval.
	l2 := newLimiter(t, Config{Rules: []RuleConfig{rule("local", ""), {ID: "deny-all", Paths: []string{"/local"}, Rate: "1/s", Burst: 1}}})
	if err := l2.StartCluster(ClusterConfig{Addrs: []string{closedAddr(t)}, InitialNodes: 2}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l2.Close() })
	admitted(l2, t0, newReq("GET", "/local"), a, 20) // 1 passes, 19 are refunded by deny-all
	if rem, _, err := l2.KeyState(t0, "local", nil); err != nil || rem != 10-2 {
		t.Errorf("share after refunds: %d remaining (cluster-wide estimate), %v; want 8", rem, err)
	}
}

// closedAddr returns a loopback address nothing listens on: a port that was
// free a moment ago.
func closedAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// clusterNodes starts n Limiters with cfg sharing the Redis at addr under a
// prefix of their own, and waits until each counts n live nodes.
func clusterNodes(t testing.TB, addr string, n int, cfg Config) []*Limiter {
	t.Helper()
	return clusterNodesOn(t, ClusterConfig{Addrs: []string{addr}}, n, cfg)
}

// clusterNodesOn is clusterNodes through the Redis that cc names, any
// topology. Each node gets its NodeID and a 1s HeartbeatTTL; the KeyPrefix is
// cc's, or one of their own if cc has none.
func clusterNodesOn(t testing.TB, cc ClusterConfig, n int, cfg Config) []*Limiter {
	t.Helper()
	if cc.KeyPrefix == "" {
		cc.KeyPrefix = fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	}
	cc.HeartbeatTTL = time.Second
	nodes := make([]*Limiter, n)
	for i := range nodes {
		nodes[i] = newLimiter(t, cfg)
		cc.NodeID = fmt.Sprint("node", i)
		if err := nodes[i].StartCluster(cc, nil); err != nil {
			t.Fatal(err)
		}
		l := nodes[i]
		t.Cleanup(func() { _ = l.Close() })
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, l := range nodes {
		for st := l.ClusterStatus(time.Now()); st.Nodes != n || st.Degraded; st = l.ClusterStatus(time.Now()) {
			if time.Now().After(deadline) {
				t.Fatalf("cluster did not form: %+v", st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

// load is the outcome of drive: per node, when each admitted request was
// sent (since the start) and how long each Check took.
type load struct {
	start    time.Time
	admitted [][]time.Duration
	checks   []time.Duration
}

// drive sends rates[i] requests per second from client a to nodes[i] for d,
// paced against the real clock, and records what was admitted. pause, if set,
// is called with the elapsed time every few ms (to stop Redis mid-run).
func drive(nodes []*Limiter, rates []float64, d time.Duration, path string, a netip.Addr) *load {
	res := &load{start: time.Now(), admitted: make([][]time.Duration, len(nodes))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, l := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newReq("GET", path)
			var dec Decision
			var checks []time.Duration
			sent := 0
			for {
				el := time.Since(res.start)
				if el >= d {
					break
				}
				for due := int(rates[i] * el.Seconds()); sent < due; sent++ {
					now := time.Now()
					l.Check(now, req, a, &dec)
					checks = append(checks, time.Since(now))
					if !dec.Rejected() {
						res.admitted[i] = append(res.admitted[i], now.Sub(res.start))
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			mu.Lock()
			res.checks = append(res.checks, checks...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// count returns the requests node i admitted in [from, to) (all nodes: i < 0).
func (r *load) count(i int, from, to time.Duration) int {
	n := 0
	for j, ts := range r.admitted {
		if i >= 0 && j != i {
			continue
		}
		for _, t := range ts {
			if t >= from && t < to {
				n++
			}
		}
	}
	return n
}

func (r *load) p99() time.Duration {
	c := slices.Clone(r.checks)
	slices.Sort(c)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)*99/100]
}

// TestClusterGlobalLimit: one key limited to 10/s with burst 10, three nodes.
// Over 10 s one node alone admits burst + rate × 10 s = 110; the cluster must
// admit the same within 5%, whatever the spread of the load. "skewed-2x" is
// the case a pure limit/N split gets wrong: the light nodes stay under their
// share and the heavy one is held to a third of the limit.
func TestClusterGlobalLimit(t *testing.T) {
	t.Parallel()
	redisSrv := redistest.Start(t)
	const want = 110.0
	for _, tc := range []struct {
		name  string
		rates []float64
	}{
		{"even-9x", []float64{30, 30, 30}},
		{"skewed-9x", []float64{72, 9, 9}},
		{"skewed-2x", []float64{16, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nodes := clusterNodes(t, redisSrv.Addr, 3, Config{Rules: []RuleConfig{
				{ID: "one-key", Paths: []string{"/items/*"}, Rate: "10/s", Burst: 10, Scope: "cluster"},
			}})
			res := drive(nodes, tc.rates, 10*time.Second, "/items/MLA1", ip("1.2.3.4"))
			got := res.count(-1, 0, time.Hour)
			perNode := []int{res.count(0, 0, time.Hour), res.count(1, 0, time.Hour), res.count(2, 0, time.Hour)}
			// What shares alone (limit/3 per node, no sync) would admit.
			shares := 0.0
			for _, r := range tc.rates {
				shares += min(r*10, 10.0/3+10.0/3*10)
			}
			t.Logf("%s: admitted %d (per node %v), one node alone %.0f, error %+.1f%%; shares without sync would admit %.0f",
				tc.name, got, perNode, want, 100*(float64(got)-want)/want, shares)
			if math.Abs(float64(got)-want) > 0.05*want {
				t.Errorf("admitted %d over 10 s, want %.0f ± 5%%", got, want)
			}
		})
	}
}

// TestClusterRedisOpsPerRequest: 100k distinct clients each far below its
// limit never become hot, so Redis sees heartbeats and announcement reads
// only: well under 0.01 commands per request.
func TestClusterRedisOpsPerRequest(t *testing.T) {
	t.Parallel()
	redisSrv := redistest.Start(t)
	nodes := clusterNodes(t, redisSrv.Addr, 3, Config{MaxKeys: 200_000, Rules: []RuleConfig{
		{ID: "per-ip", Key: []string{"ip"}, Rate: "100/s", Scope: "cluster"},
	}})
	before := redisSrv.Commands()
	const clients, perClient = 100_000, 2
	start := time.Now()
	var wg sync.WaitGroup
	for n, l := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newReq("GET", "/items/MLA1")
			var d Decision
			for i := n; i < clients; i += len(nodes) {
				a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				for range perClient {
					if l.Check(time.Now(), req, a, &d); d.Rejected() {
						t.Errorf("client %v limited", a)
						return
					}
				}
				if i%3000 == n {
					time.Sleep(time.Millisecond) // spread over ~1 s: several sync rounds
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // let a few more rounds run
	took := time.Since(start)
	ops := redisSrv.Commands() - before
	per := float64(ops) / (clients * perClient)
	hot := 0
	for _, l := range nodes {
		hot += l.ClusterStatus(time.Now()).HotKeys
	}
	t.Logf("%d requests in %v: %d Redis commands (scripts' inner commands included), %.5f per request; hot keys %d",
		clients*perClient, took.Round(time.Millisecond), ops, per, hot)
	if per >= 0.01 {
		t.Errorf("%.4f Redis commands per request, want < 0.01", per)
	}
	if hot != 0 {
		t.Errorf("%d keys became hot, want none", hot)
	}
}

// TestClusterRedisRestart: Redis dies mid-run and comes back empty. Check
// never waits on it (p99 of Check unchanged), each node falls back to its
// share (limit/3) while it is down, and the global limit holds again after.
func TestClusterRedisRestart(t *testing.T) {
	t.Parallel()
	redisSrv := redistest.Start(t)
	nodes := clusterNodes(t, redisSrv.Addr, 3, Config{Rules: []RuleConfig{
		{ID: "one-key", Rate: "10/s", Burst: 10, Scope: "cluster"},
	}})
	const phase = 4 * time.Second
	go func() {
		time.Sleep(phase)
		redisSrv.Stop()
		time.Sleep(phase)
		redisSrv.Start()
	}()
	rates := []float64{24, 1, 1} // the light nodes stay under their share
	res := drive(nodes, rates, 3*phase, "/", ip("1.2.3.4"))
	// Count the last 3 s of each phase: the first second absorbs the switch.
	win := func(i, p int) float64 {
		from := time.Duration(p)*phase + time.Second
		return float64(res.count(i, from, from+3*time.Second)) / 3
	}
	for p, name := range []string{"up", "down", "restarted"} {
		t.Logf("%s: heavy node %.1f/s, light nodes %.1f/s and %.1f/s, total %.1f/s", name, win(0, p), win(1, p), win(2, p), win(-1, p))
	}
	t.Logf("Check p99 %v over %d calls", res.p99(), len(res.checks))
	for _, p := range []int{0, 2} {
		// A Redis that restarts empty has forgotten the key's debt: its fresh bucket grants one
		// more burst (10) that may land in the 3 s window (docs/cluster.md), so the restarted
		// phase may reach 10 + 10/3 per second; a CI run measured 11.3.
		limit := 11.0
		if p == 2 {
			limit = 10 + 10.0/3 + 0.5
		}
		if got := win(-1, p); got < 9 || got > limit {
			t.Errorf("phase %d (Redis up): %.1f/s admitted in total, want the global 10/s (at most %.1f)", p, got, limit)
		}
		if got := win(0, p); got < 6.5 {
			t.Errorf("phase %d (Redis up): heavy node %.1f/s, want the rest of the global limit (~8/s)", p, got)
		}
	}
	if got := win(0, 1); got < 2.6 || got > 4.1 {
		t.Errorf("Redis down: heavy node %.1f/s, want its share 10/3 = 3.3/s", got)
	}
	if got := win(-1, 1); got > 6.5 {
		t.Errorf("Redis down: %.1f/s in total, want the shares' 3.3+1+1", got)
	}
	if p99 := res.p99(); p99 > 2*time.Millisecond {
		t.Errorf("Check p99 %v: the request path must not wait on Redis", p99)
	}
	st := nodes[0].ClusterStatus(time.Now())
	if st.Degraded || st.Errors == 0 {
		t.Errorf("after restart: %+v, want not degraded and errors counted", st)
	}
}
