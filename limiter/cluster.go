package limiter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
)

// Connection states of a cluster.
const (
	stateConnecting int32 = iota // Redis has not answered yet
	stateUp                      // the last round trip succeeded
	stateDown                    // the last round trip failed: degraded
)

// failMode is what a cluster-scope rule does while Redis is unreachable.
type failMode uint8

const (
	failLocal  failMode = iota // enforce the local share, limit/N
	failOpen                   // admit every request
	failClosed                 // reject every request the rule matches
)

// cluster shares the state of cluster-scope rules through Redis. Check never
// waits on it: the request path reads atomics only (take), and one goroutine
// (run) talks to Redis every SyncInterval. See docs/cluster.md.
type cluster struct {
	cfg ClusterConfig // defaults applied
	rdb redis.UniversalClient
	log *slog.Logger
	hot *hotTable
	// rules returns the Limiter's current rule set (announcements name rules by id).
	rules func() *ruleSet
	stop  chan struct{}
	done  chan struct{}

	nodes atomic.Int64 // live nodes as last counted, at least 1
	state atomic.Int32 // stateConnecting, stateUp or stateDown

	// Background-only state: the run goroutine's.
	lastBeat  time.Time
	downSince time.Time

	// Metrics.
	lastOK     atomic.Int64  // unix ns of the last successful round trip
	lastRTT    atomic.Int64  // ns of the last successful round trip
	syncs      atomic.Uint64 // successful round trips
	errs       atomic.Uint64 // failed round trips
	ops        atomic.Uint64 // Redis commands sent
	granted    atomic.Uint64 // tokens leased from the global buckets
	overflow   atomic.Uint64 // keys that stayed on their share: hot table full
	startNanos int64
}

// StartCluster connects l's scope = "cluster" rules to the Redis named by
// cfg and starts the goroutine that synchronises them; Close stops it. It
// does not wait for Redis: until Redis answers, cluster rules are enforced
// on local shares (limit / InitialNodes). A disabled cfg (no addrs) is a
// no-op. log receives one line per change of Redis reachability (nil:
// discard). StartCluster may be called once per Limiter.
func (l *Limiter) StartCluster(cfg ClusterConfig, log *slog.Logger) error {
	if !cfg.Enabled() {
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{log.With("component", "go-redis")}) })
	c := newCluster(cfg.withDefaults(), log)
	c.rules = l.set.Load
	if !l.cluster.CompareAndSwap(nil, c) {
		_ = c.rdb.Close()
		return errors.New("limiter: StartCluster called twice")
	}
	go c.run()
	return nil
}

// Close stops cluster synchronisation, if started: the node leaves the
// membership set (so the others' shares grow at once) and unused leases are
// returned, within one Redis timeout. Close waits for the goroutine; cluster
// rules are then enforced on local shares. It is safe to call more than once.
func (l *Limiter) Close() error {
	c := l.cluster.Load()
	if c == nil {
		return nil
	}
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	return nil
}

func newCluster(cfg ClusterConfig, log *slog.Logger) *cluster {
	c := &cluster{
		cfg: cfg,
		log: log.With("component", "cluster", "node", cfg.NodeID),
		rdb: redis.NewUniversalClient(&redis.UniversalOptions{
			// A copy: go-redis's cluster client appends the node addresses it
			// discovers to the slice it is given, so two clients built from
			// one ClusterConfig whose Addrs has spare capacity write the same
			// array (a data race TestClusterRedisCluster hit under -race).
			Addrs:         slices.Clone(cfg.Addrs),
			MasterName:    cfg.MasterName,
			IsClusterMode: cfg.RedisCluster,
			Username:      cfg.Username,
			Password:      cfg.Password,
			// go-redis sends Password to the master only; a Sentinel with
			// requirepass answered NOAUTH and the node stayed degraded. A
			// Sentinel without a password accepts it (HELLO AUTH to a user
			// without password succeeds). TestClusterSentinel covers both.
			SentinelPassword: cfg.Password,
			DB:               cfg.DB,
			DialTimeout:      cfg.Timeout,
			DialerRetries:    1,
			ReadTimeout:      cfg.Timeout,
			WriteTimeout:     cfg.Timeout,
			// One goroutine talks to Redis: a small pool, no retries (the next
			// sync is the retry), no per-connection identity chatter.
			PoolSize:        4,
			MaxRetries:      -1,
			DisableIdentity: true,
		}),
		hot:        newHotTable(cfg.MaxHotKeys),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		startNanos: time.Now().UnixNano(),
	}
	c.nodes.Store(int64(cfg.InitialNodes))
	return c
}

// run is the sync goroutine: a heartbeat every HeartbeatTTL/3 (every tick
// while Redis is unreachable, to notice its return quickly) and the hot keys
// every SyncInterval, batched in one pipeline.
func (c *cluster) run() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.SyncInterval)
	defer t.Stop()
	c.tick(time.Now())
	for {
		select {
		case <-c.stop:
			c.leave(time.Now())
			c.state.Store(stateDown) // from now on, local shares
			_ = c.rdb.Close()
			return
		case now := <-t.C:
			c.tick(now)
		}
	}
}

// tick runs one round: collect the hot keys' counters, send one pipeline,
// apply the answers.
func (c *cluster) tick(now time.Time) {
	up := c.state.Load() == stateUp
	beat := !up || now.Sub(c.lastBeat) >= c.cfg.HeartbeatTTL/3
	rs := c.rules()
	listen := up && rs.clustered()
	var batch []syncItem
	if up {
		batch = c.collect(false, now)
	}
	if !beat && !listen && len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	res, err := c.exchange(ctx, now, beat, listen, batch)
	if err != nil {
		c.errs.Add(1)
		c.setDown(now, err)
		return
	}
	done := time.Now()
	c.lastOK.Store(done.UnixNano())
	c.lastRTT.Store(int64(done.Sub(now)))
	c.syncs.Add(1)
	if beat {
		c.lastBeat = now
		c.nodes.Store(max(res.nodes, 1))
	}
	c.apply(batch, done)
	c.learn(rs, res.hot, now)
	c.setUp(now)
}

// clustered reports whether rs has a cluster-scope rule.
func (rs *ruleSet) clustered() bool {
	for _, r := range rs.rules {
		if r.clustered {
			return true
		}
	}
	return false
}

// setDown records a failed round trip. The first failure after success (or
// at start) is logged; the hot keys are released, so every cluster rule runs
// on its fail mode until Redis answers again.
func (c *cluster) setDown(now time.Time, err error) {
	if old := c.state.Swap(stateDown); old == stateDown {
		return
	}
	c.downSince = now
	c.log.Warn("redis unreachable: cluster limits degraded to local shares until it answers",
		"error", err, "nodes", c.nodes.Load(), "addrs", c.cfg.Addrs)
	c.collect(true, now) // drop every hot key; its leases are lost with the connection
}

func (c *cluster) setUp(now time.Time) {
	switch c.state.Swap(stateUp) {
	case stateConnecting:
		c.log.Info("redis connected: cluster limits are global", "nodes", c.nodes.Load())
	case stateDown:
		c.log.Info("redis reachable again: cluster limits are global", "nodes", c.nodes.Load(),
			"down_for", now.Sub(c.downSince).Round(time.Millisecond).String())
	}
}

// leave returns unused leases and removes this node from the membership set.
func (c *cluster) leave(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	batch := c.collect(true, now)
	if c.state.Load() != stateUp {
		return
	}
	pipe := c.rdb.Pipeline()
	pipe.ZRem(ctx, c.key("nodes"), c.cfg.NodeID)
	c.queue(ctx, pipe, batch)
	_, _ = pipe.Exec(ctx)
}

// key returns the Redis key for name under the configured prefix.
func (c *cluster) key(name string) string { return c.cfg.KeyPrefix + name }

// writeMetrics writes the meliproxy_cluster_* metrics (see docs/cluster.md).
func (c *cluster) writeMetrics(w io.Writer) {
	now := time.Now().UnixNano()
	last := c.lastOK.Load()
	if last == 0 {
		last = c.startNanos
	}
	degraded := uint64(0)
	if c.state.Load() != stateUp {
		degraded = 1
	}
	metrics.WriteGaugeUint64(w, "meliproxy_cluster_nodes", uint64(c.nodes.Load()))
	metrics.WriteGaugeUint64(w, "meliproxy_cluster_degraded", degraded)
	metrics.WriteGaugeFloat64(w, "meliproxy_cluster_sync_lag_seconds", float64(now-last)/1e9)
	metrics.WriteGaugeFloat64(w, "meliproxy_cluster_sync_duration_seconds", float64(c.lastRTT.Load())/1e9)
	metrics.WriteCounterUint64(w, "meliproxy_cluster_syncs_total", c.syncs.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cluster_redis_errors_total", c.errs.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cluster_redis_commands_total", c.ops.Load())
	metrics.WriteGaugeUint64(w, "meliproxy_cluster_hot_keys", uint64(max(c.hot.n.Load(), 0)))
	metrics.WriteCounterUint64(w, "meliproxy_cluster_hot_overflow_total", c.overflow.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cluster_tokens_leased_total", c.granted.Load())
}

// ClusterStatus is a snapshot of the cluster synchronisation, for /stats and
// the control plane.
type ClusterStatus struct {
	Enabled  bool          // a [cluster] is configured
	NodeID   string        // this node's id
	Nodes    int           // live nodes as last counted
	Degraded bool          // Redis did not answer the last round trip
	SyncLag  time.Duration // since the last successful round trip
	HotKeys  int           // keys synchronised now
	Errors   uint64        // failed round trips since start
}

// ClusterStatus reports the cluster synchronisation state at now.
func (l *Limiter) ClusterStatus(now time.Time) ClusterStatus {
	c := l.cluster.Load()
	if c == nil {
		return ClusterStatus{}
	}
	last := c.lastOK.Load()
	if last == 0 {
		last = c.startNanos
	}
	return ClusterStatus{
		Enabled: true, NodeID: c.cfg.NodeID, Nodes: int(c.nodes.Load()),
		Degraded: c.state.Load() != stateUp, SyncLag: time.Duration(now.UnixNano() - last),
		HotKeys: int(max(c.hot.n.Load(), 0)), Errors: c.errs.Load(),
	}
}

// String returns the mode for logs: "local", "open" or "closed".
func (m failMode) String() string {
	switch m {
	case failOpen:
		return "open"
	case failClosed:
		return "closed"
	}
	return "local"
}

func parseFail(s string) (failMode, error) {
	switch s {
	case "", "local":
		return failLocal, nil
	case "open":
		return failOpen, nil
	case "closed":
		return failClosed, nil
	}
	return 0, fmt.Errorf("fail %q: must be local, open or closed", s)
}

// redisLog sends go-redis's own messages (a dial failure per round while
// Redis is down) to debug level: the cluster logs reachability changes once,
// itself. go-redis has one logger per process: the first StartCluster sets it.
type redisLog struct{ l *slog.Logger }

var redisLogOnce sync.Once

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.l.Debug(fmt.Sprintf(format, v...))
}

// itoa is strconv.FormatInt for Redis arguments.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
