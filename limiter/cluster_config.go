package limiter

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Defaults applied to zero-valued ClusterConfig fields.
const (
	DefaultSyncInterval = 100 * time.Millisecond
	DefaultHeartbeatTTL = 3 * time.Second
	DefaultRedisTimeout = 250 * time.Millisecond
	DefaultKeyPrefix    = "meliproxy:"
	DefaultMaxHotKeys   = 16384
)

// ClusterConfig is the [cluster] section of config.toml: where the Redis
// that shares cluster-scope limits lives and how often nodes talk to it. The
// zero value (no addrs) disables clustering: every rule is enforced
// in-process, scope = "cluster" included. See docs/cluster.md.
type ClusterConfig struct {
	// Addrs are Redis host:port addresses. One address: a standalone Redis.
	// Several: the seed nodes of a Redis Cluster. With MasterName: Sentinel
	// addresses.
	Addrs []string `toml:"addrs"`
	// MasterName is the Sentinel master set name; empty: no Sentinel.
	MasterName string `toml:"master_name"`
	// RedisCluster forces Redis Cluster mode with a single seed address.
	RedisCluster bool `toml:"redis_cluster"`
	// Username is the Redis ACL user; empty: the default user.
	Username string `toml:"username"`
	// Password authenticates to Redis (and to Sentinel). Prefer PasswordEnv.
	Password string `toml:"password"`
	// PasswordEnv names an environment variable holding the password; the
	// program (cmd/meliproxy) reads it at load and sets Password.
	PasswordEnv string `toml:"password_env"`
	// DB is the Redis database number (standalone and Sentinel only).
	DB int `toml:"db"`
	// NodeID names this node in the membership set; unique per node.
	// Default: hostname-pid.
	NodeID string `toml:"node_id"`
	// SyncInterval is how often hot keys are reconciled with Redis (one
	// pipelined round trip). It bounds how stale a node's view of a hot key
	// is, and the error bound (docs/cluster.md). Default 100ms.
	SyncInterval time.Duration `toml:"sync_interval"`
	// HeartbeatTTL is how long a node counts as live after its last
	// heartbeat; nodes beat every HeartbeatTTL/3. A node that stops is out of
	// the count, and the others' shares grow, within this time. Default 3s.
	HeartbeatTTL time.Duration `toml:"heartbeat_ttl"`
	// Timeout bounds each Redis dial, read and write; a sync that takes
	// longer fails and the node enforces local shares (degraded). Default
	// 250ms.
	Timeout time.Duration `toml:"timeout"`
	// KeyPrefix starts every Redis key meliproxy writes, so several clusters
	// can share one Redis. Default "meliproxy:".
	KeyPrefix string `toml:"key_prefix"`
	// InitialNodes is the node count assumed until Redis has answered once
	// (a node that starts while Redis is down enforces limit/InitialNodes).
	// Default 1.
	InitialNodes int `toml:"initial_nodes"`
	// MaxHotKeys caps the keys synchronised with Redis at once, about 150
	// bytes each, allocated up front. A key that would become hot while the
	// set is full stays on its local share
	// (meliproxy_cluster_hot_overflow_total). Default 16384.
	MaxHotKeys int `toml:"max_hot_keys"`
}

// Enabled reports whether c configures a cluster (it names a Redis).
func (c *ClusterConfig) Enabled() bool { return len(c.Addrs) > 0 }

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c *ClusterConfig) withDefaults() ClusterConfig {
	d := *c
	if d.NodeID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		d.NodeID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if d.SyncInterval == 0 {
		d.SyncInterval = DefaultSyncInterval
	}
	if d.HeartbeatTTL == 0 {
		d.HeartbeatTTL = DefaultHeartbeatTTL
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultRedisTimeout
	}
	if d.KeyPrefix == "" {
		d.KeyPrefix = DefaultKeyPrefix
	}
	if d.InitialNodes == 0 {
		d.InitialNodes = 1
	}
	if d.MaxHotKeys == 0 {
		d.MaxHotKeys = DefaultMaxHotKeys
	}
	return d
}

// Validate reports every problem in c, joined, each naming its key under
// "cluster.". A disabled config (no addrs) with other keys set is an error:
// it would silently run every limit per node.
func (c *ClusterConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("cluster."+format, args...)) }
	if !c.Enabled() {
		if c.MasterName != "" || c.NodeID != "" || c.Password != "" || c.PasswordEnv != "" || c.RedisCluster {
			add("addrs: empty, but other cluster keys are set: name the Redis (host:port) or remove [cluster]")
		}
		return errors.Join(errs...)
	}
	for i, a := range c.Addrs {
		if _, port, ok := cutLast(a, ':'); !ok || port == "" {
			add("addrs[%d] %q: want host:port", i, a)
		}
	}
	if c.MasterName != "" && c.RedisCluster {
		add("redis_cluster: cannot be combined with master_name (Sentinel)")
	}
	if c.DB < 0 {
		add("db: %d: must be 0 or more", c.DB)
	}
	if c.DB != 0 && c.clusterMode() {
		add("db: Redis Cluster has only db 0")
	}
	if c.SyncInterval < 0 || c.SyncInterval > 0 && c.SyncInterval < time.Millisecond {
		add("sync_interval: %v: want at least 1ms (0 = default %v)", c.SyncInterval, DefaultSyncInterval)
	}
	if c.HeartbeatTTL < 0 || c.HeartbeatTTL > 0 && c.HeartbeatTTL < 300*time.Millisecond {
		add("heartbeat_ttl: %v: want at least 300ms (0 = default %v)", c.HeartbeatTTL, DefaultHeartbeatTTL)
	}
	if c.Timeout < 0 {
		add("timeout: %v: must be positive (0 = default %v)", c.Timeout, DefaultRedisTimeout)
	}
	if c.InitialNodes < 0 {
		add("initial_nodes: %d: must be positive (0 = 1)", c.InitialNodes)
	}
	if c.MaxHotKeys < 0 || c.MaxHotKeys > 1<<22 {
		add("max_hot_keys: %d out of range 1..%d (0 = default %d)", c.MaxHotKeys, 1<<22, DefaultMaxHotKeys)
	}
	if len(c.NodeID) > 200 {
		add("node_id: longer than 200 bytes")
	}
	return errors.Join(errs...)
}

// clusterMode reports whether c names a Redis Cluster (not standalone or
// Sentinel); it mirrors redis.NewUniversalClient's choice.
func (c *ClusterConfig) clusterMode() bool {
	return c.MasterName == "" && (len(c.Addrs) > 1 || c.RedisCluster)
}

// cutLast splits s around the last sep.
func cutLast(s string, sep byte) (before, after string, ok bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
