package limiter

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meliproxy/meliproxy/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// The Redis topologies ClusterConfig accepts besides a standalone Redis, each
// run for real on loopback: a master behind a Sentinel, and a Redis Cluster
// of three masters. The standalone tests (cluster_test.go) cover the
// algorithm; these check that it works unchanged through each client.

// topologyKeys is how many keys the topology tests drive at once. In a Redis
// Cluster their global buckets land on every master (checked), so a sync
// round's pipeline spans all shards.
const topologyKeys = 8

// topologyLimit runs three nodes on the Redis that cc names, with a
// cluster-scope rule keyed by path (20/s, burst 20), and drives topologyKeys paths
// at once for 5 s, skewed 48/6/6 requests per second per node. Each path must
// be admitted as one node alone would: burst + rate × 5 s = 120, ± 5% (shares
// without sync would admit 40 + 30 + 30 = 100). Halfway, the scripts are
// flushed from the masters at addrs (as a restart or failover does): the next
// round meets NOSCRIPT and must load them everywhere and retry in the same
// round. Every node must then count 3 live nodes, not be degraded, and have
// had no failed round trip.
func topologyLimit(t *testing.T, cc ClusterConfig, addrs []string) {
	t.Helper()
	nodes := clusterNodesOn(t, cc, 3, Config{Rules: []RuleConfig{
		{ID: "per-path", Paths: []string{"/items/*"}, Key: []string{"path"}, Rate: "20/s", Burst: 20, Scope: "cluster"},
	}})
	const d, want = 5 * time.Second, 20 + 20*5.0
	res := make([]*load, topologyKeys)
	var wg sync.WaitGroup
	masters := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		masters[i] = redis.NewClient(&redis.Options{Addr: a, DisableIdentity: true, Protocol: 2})
		defer masters[i].Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*d)
	defer cancel()
	wg.Go(func() {
		time.Sleep(d / 2)
		for i, m := range masters {
			if err := m.ScriptFlush(ctx).Err(); err != nil {
				t.Errorf("SCRIPT FLUSH on %s: %v", addrs[i], err)
			}
		}
	})
	for k := range res {
		wg.Go(func() {
			res[k] = drive(nodes, []float64{48, 6, 6}, d, "/items/MLA"+strconv.Itoa(k), ip("1.2.3.4"))
		})
	}
	wg.Wait()
	for k, r := range res {
		got := r.count(-1, 0, time.Hour)
		t.Logf("/items/MLA%d: admitted %d (per node %d %d %d), want %.0f, error %+.1f%%", k, got,
			r.count(0, 0, time.Hour), r.count(1, 0, time.Hour), r.count(2, 0, time.Hour), want, 100*(float64(got)-want)/want)
		if math.Abs(float64(got)-want) > 0.05*want {
			t.Errorf("/items/MLA%d: admitted %d over %v, want %.0f ± 5%%", k, got, d, want)
		}
	}
	for i, m := range masters {
		if ok, err := m.ScriptExists(ctx, takeScript.Hash(), beatScript.Hash()).Result(); err != nil || !ok[0] || !ok[1] {
			t.Errorf("master %s: scripts loaded again after the flush: %v, %v; want both", addrs[i], ok, err)
		}
	}
	for i, l := range nodes {
		st := l.ClusterStatus(time.Now())
		if !st.Enabled || st.Nodes != 3 || st.Degraded || st.Errors != 0 || i == 0 && st.HotKeys == 0 {
			t.Errorf("node %d: %+v, want 3 nodes, not degraded, no errors (and hot keys on node 0)", i, st)
		}
	}
}

// TestClusterSentinel: cluster limits through a Sentinel (Addrs names the
// Sentinel, MasterName the master set): the global limit holds, and
// cluster.password reaches both the master and the Sentinel.
func TestClusterSentinel(t *testing.T) {
	t.Parallel()
	t.Run("limit", func(t *testing.T) {
		t.Parallel()
		s := redistest.StartSentinel(t, "meliproxy", redistest.SentinelOptions{})
		topologyLimit(t, ClusterConfig{Addrs: []string{s.Addr}, MasterName: s.MasterName}, []string{s.Master.Addr})
	})
	const pw = "s3cret"
	for _, tc := range []struct {
		name string
		opt  redistest.SentinelOptions
	}{
		{"master-password", redistest.SentinelOptions{MasterPassword: pw}},
		{"master-and-sentinel-password", redistest.SentinelOptions{MasterPassword: pw, SentinelPassword: pw}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := redistest.StartSentinel(t, "meliproxy", tc.opt)
			// clusterNodesOn fails unless both nodes count 2 and are not degraded:
			// their heartbeats reached the master through the Sentinel.
			clusterNodesOn(t, ClusterConfig{Addrs: []string{s.Addr}, MasterName: s.MasterName, Password: pw}, 2,
				Config{Rules: []RuleConfig{{ID: "r", Rate: "10/s", Scope: "cluster"}}})
		})
	}
}

// TestClusterRedisCluster: cluster limits through a Redis Cluster of three
// masters (Addrs names all three, or redis_cluster = true names one). The
// keys' global buckets are spread over every master, so each sync round's
// pipeline is split across shards and the scripts must be loaded on all of
// them.
func TestClusterRedisCluster(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	// The Redis Cluster is this test's own: a fixed prefix makes the keys, and
	// so the slots they land in, the same on every run.
	const prefix = "topology:"
	topologyLimit(t, ClusterConfig{Addrs: rc.Addrs, KeyPrefix: prefix}, rc.Addrs)
	// Run right after the load: the buckets are drained, so their keys live
	// about another second (until full again).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range rc.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true, Protocol: 2})
		keys, err := rdb.Keys(ctx, prefix+"rl:*").Result()
		rdb.Close()
		t.Logf("master %s holds %d of the global buckets", s.Addr, len(keys))
		if err != nil || len(keys) == 0 {
			t.Errorf("master %s holds no global bucket (%v): the test no longer spans every shard", s.Addr, err)
		}
	}
	// redis_cluster = true: one seed address is enough, the client learns the
	// others from it.
	clusterNodesOn(t, ClusterConfig{Addrs: rc.Addrs[:1], RedisCluster: true}, 2,
		Config{Rules: []RuleConfig{{ID: "r", Rate: "10/s", Scope: "cluster"}}})
}

// TestClusterNoScriptOnOneShard: in a Redis Cluster where one master lost its scripts (it
// restarted or failed over) and the others did not, a round's takes on the other masters succeed
// and those on that master fail with NOSCRIPT. Only the failed ones may be sent again: resending
// the whole round applied the others twice (every key there charged 20 s instead of 10 s).
func TestClusterNoScriptOnOneShard(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	cfg := ClusterConfig{Addrs: cl.Addrs, NodeID: "n1", KeyPrefix: "noscript:"}
	c := newCluster(cfg.withDefaults(), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = c.rdb.Close() })
	cc := c.rdb.(*redis.ClusterClient)
	if err := takeScript.Load(ctx, c.rdb).Err(); err != nil {
		t.Fatal(err)
	}

	// 12 keys, 10 tokens used each, 1 s per token: one take puts each bucket 10 s ahead.
	batch := make([]syncItem, 12)
	for i := range batch {
		batch[i] = syncItem{rkey: c.key("k" + strconv.Itoa(i)), interval: int64(time.Second), tau: int64(time.Millisecond), used: 10}
	}
	flushed, err := cc.MasterForKey(ctx, batch[0].rkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := flushed.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	onFlushed := 0
	for i := range batch {
		m, err := cc.MasterForKey(ctx, batch[i].rkey)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == flushed.Options().Addr {
			onFlushed++
		}
	}
	if onFlushed == 0 || onFlushed == len(batch) {
		t.Fatalf("%d of %d keys on the flushed master: the test needs both kinds", onFlushed, len(batch))
	}

	if _, err := c.exchange(ctx, time.Now(), false, false, batch); err != nil {
		t.Fatalf("round with NOSCRIPT on one master: %v", err)
	}
	for i := range batch {
		v, err := batch[i].cmd.Int64Slice()
		if err != nil || len(v) != 2 {
			t.Fatalf("key %d: %v %v", i, v, err)
		}
		if ahead := time.Duration(v[1]) * time.Microsecond; ahead < 9*time.Second || ahead > 11*time.Second {
			t.Errorf("key %d bucket %v ahead after one take of 10 s: charged %.1f times", i, ahead, ahead.Seconds()/10)
		}
	}
}
