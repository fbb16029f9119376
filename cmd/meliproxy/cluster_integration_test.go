package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meliproxy/meliproxy/internal/redistest"
)

// metric returns the value of a metric line on n's /metrics ("" if absent).
func metric(t testing.TB, n *node, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// sample is one request of the cluster load.
type sample struct {
	node    int
	at      time.Duration // since the start
	took    time.Duration
	status  int
	limited bool // the request was on the limited path
}

// TestClusterIntegrationRedisRestart runs three meliproxy binaries sharing one key limited to 10/s
// (burst 10) through a real redis-server, with the load skewed 24/1/1 per second on that key plus
// unlimited traffic, while Redis is killed after 4 s and restarted empty after 8 s. Requests never
// fail and their p99 does not move; while Redis is down each node holds its share (10/3 per
// second); with Redis up the heavy node gets what the light ones leave of the global 10/s.
func TestClusterIntegrationRedisRestart(t *testing.T) {
	t.Parallel()
	redisSrv := redistest.Start(t)
	mock := startMock(t)
	prefix := fmt.Sprintf("it:%d:", time.Now().UnixNano())
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = startProxy(t, "http://"+mock, fmt.Sprintf(`
[limits]
trusted_proxies = ["127.0.0.0/8"]
[[limits.rules]]
id    = "one-key"
paths = ["/items/*"]
rate  = "10/s"
burst = 10
scope = "cluster"
[cluster]
addrs         = [%q]
node_id       = "node%d"
key_prefix    = %q
heartbeat_ttl = "1s"
`, redisSrv.Addr, i, prefix))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for metric(t, n, "meliproxy_cluster_nodes") != "3" || metric(t, n, "meliproxy_cluster_degraded") != "0" {
			if time.Now().After(deadline) {
				t.Fatalf("cluster did not form: nodes %s", metric(t, n, "meliproxy_cluster_nodes"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	const phase = 4 * time.Second
	go func() {
		time.Sleep(phase)
		redisSrv.Stop()
		time.Sleep(phase)
		redisSrv.Start()
	}()
	samples := clusterLoad(t, nodes, []float64{24, 1, 1}, 40, 3*phase)

	// Rates over the last 3 s of each phase (the first second absorbs the switch).
	rate := func(node, p int) float64 {
		from := time.Duration(p)*phase + time.Second
		n := 0
		for _, s := range samples {
			if s.limited && s.status == 200 && (node < 0 || s.node == node) && s.at >= from && s.at < from+3*time.Second {
				n++
			}
		}
		return float64(n) / 3
	}
	p99 := func(p int) time.Duration {
		var d []time.Duration
		for _, s := range samples {
			if s.at >= time.Duration(p)*phase && s.at < time.Duration(p+1)*phase {
				d = append(d, s.took)
			}
		}
		slices.Sort(d)
		return d[len(d)*99/100]
	}
	errs := 0
	for _, s := range samples {
		if s.status != 200 && !(s.limited && s.status == 429) {
			errs++
		}
	}
	for p, name := range []string{"up", "down", "restarted"} {
		t.Logf("%s: heavy node %.1f/s, light %.1f/s and %.1f/s, total %.1f/s; p99 %v", name,
			rate(0, p), rate(1, p), rate(2, p), rate(-1, p), p99(p))
	}
	t.Logf("%d requests, %d errors", len(samples), errs)
	if errs > 0 {
		t.Errorf("%d requests failed (not 200, or 429 on the limited path)", errs)
	}
	for _, p := range []int{0, 2} {
		if got := rate(-1, p); got < 9 || got > 11.5 {
			t.Errorf("phase %d (Redis up): %.1f/s admitted in total, want the global 10/s", p, got)
		}
		if got := rate(0, p); got < 6.5 {
			t.Errorf("phase %d (Redis up): heavy node %.1f/s, want the rest of the global 10/s (~8)", p, got)
		}
	}
	if got := rate(0, 1); got < 2.6 || got > 4.1 {
		t.Errorf("Redis down: heavy node %.1f/s, want its share 10/3 = 3.3/s", got)
	}
	if up, down := p99(0), p99(1); down > 2*up+5*time.Millisecond {
		t.Errorf("p99 %v while Redis is down, %v before: the request path waits on Redis", down, up)
	}
	for i, n := range nodes {
		if metric(t, n, "meliproxy_cluster_degraded") != "0" || metric(t, n, "meliproxy_cluster_redis_errors_total") == "0" {
			t.Errorf("node %d after restart: degraded %s, redis errors %s", i,
				metric(t, n, "meliproxy_cluster_degraded"), metric(t, n, "meliproxy_cluster_redis_errors_total"))
		}
		out := n.output()
		if down, back := strings.Count(out, "redis unreachable"), strings.Count(out, "redis reachable again"); down != 1 || back != 1 {
			t.Errorf("node %d logged %d outage and %d recovery lines, want one each", i, down, back)
		}
	}
}

// clusterLoad sends rates[i] requests per second on the limited path (/items/MLA1) to nodes[i] and
// extra requests per second per node on an unlimited path, for d, paced on the real clock.
func clusterLoad(t testing.TB, nodes []*node, rates []float64, extra float64, d time.Duration) []sample {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	start := time.Now()
	var mu sync.Mutex
	var out []sample
	var wg sync.WaitGroup
	send := func(i int, path string, limited bool) {
		defer wg.Done()
		t0 := time.Now()
		s := sample{node: i, at: t0.Sub(start), limited: limited}
		resp, err := client.Get("http://" + nodes[i].addr + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s.status = resp.StatusCode
		}
		s.took = time.Since(t0)
		mu.Lock()
		out = append(out, s)
		mu.Unlock()
	}
	sent := make([][2]int, len(nodes))
	for el := time.Duration(0); el < d; el = time.Since(start) {
		for i := range nodes {
			for due := int(rates[i] * el.Seconds()); sent[i][0] < due; sent[i][0]++ {
				wg.Add(1)
				go send(i, "/items/MLA1", true)
			}
			for due := int(extra * el.Seconds()); sent[i][1] < due; sent[i][1]++ {
				wg.Add(1)
				go send(i, "/users/1", false)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	return out
}
