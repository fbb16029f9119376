package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a redis-server master monitored by one Redis Sentinel, both on loopback and
// started by a test: a client configured for Sentinel is given Addr and MasterName. There is
// no replica, so the Sentinel cannot fail over; it only tells clients where the master is.
type Sentinel struct {
	// Addr is the Sentinel's host:port.
	Addr string
	// MasterName is the name the Sentinel monitors the master under.
	MasterName string
	// Master is the monitored redis-server.
	Master *Server
}

// SentinelOptions are StartSentinel's optional settings. The zero value sets no password.
type SentinelOptions struct {
	// MasterPassword is the master's requirepass, also given to the Sentinel (auth-pass).
	// Empty: no password.
	MasterPassword string
	// SentinelPassword is the Sentinel's own requirepass. Empty: no password.
	SentinelPassword string
}

// StartSentinel runs a master (as Start does) and a Sentinel monitoring it as masterName, and
// waits until the Sentinel has reached the master; both are killed at cleanup. Without
// redis-server the test is skipped, unless CI=true: there it fails.
func StartSentinel(t testing.TB, masterName string, opt SentinelOptions) *Sentinel {
	t.Helper()
	need(t, "redis-server")
	master := &Server{Addr: freeAddrs(t, 1)[0]}
	if opt.MasterPassword != "" {
		master.args = []string{"--requirepass", opt.MasterPassword}
	}
	start(t, master)
	addr := freeAddrs(t, 1)[0]
	_, port, _ := net.SplitHostPort(addr)
	_, masterPort, _ := net.SplitHostPort(master.Addr)
	// A Sentinel rewrites its config file as it learns: it must be writable.
	dir := t.TempDir()
	conf := []string{
		"port " + port,
		"bind 127.0.0.1",
		"dir " + dir,
		"loglevel warning",
		"sentinel monitor " + masterName + " 127.0.0.1 " + masterPort + " 1",
		"sentinel down-after-milliseconds " + masterName + " 2000",
		"sentinel failover-timeout " + masterName + " 10000",
	}
	if opt.MasterPassword != "" {
		conf = append(conf, "sentinel auth-pass "+masterName+" "+opt.MasterPassword)
	}
	if opt.SentinelPassword != "" {
		conf = append(conf, "requirepass "+opt.SentinelPassword)
	}
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, &Server{Addr: addr, conf: path, args: []string{"--sentinel"}})
	s := &Sentinel{Addr: addr, MasterName: masterName, Master: master}
	s.waitMaster(t, opt.SentinelPassword)
	return s
}

// waitMaster waits until the Sentinel names the master and has connected to it (its flags
// read "master", not "master,disconnected").
func (s *Sentinel) waitMaster(t testing.TB, password string) {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: password, DisableIdentity: true, Protocol: 2})
	defer sc.Close()
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		info, err2 := sc.Master(ctx, s.MasterName).Result()
		cancel()
		got = fmt.Sprintf("addr %v (%v), flags %q (%v)", addr, err, info["flags"], err2)
		if err == nil && err2 == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == s.Master.Addr &&
			info["flags"] == "master" {
			return
		}
	}
	t.Fatalf("sentinel on %s did not report master %s at %s within 5s: last %s", s.Addr, s.MasterName, s.Master.Addr, got)
}

// Cluster is a Redis Cluster of three masters without replicas, on loopback, started by a
// test. Each master serves about a third of the 16384 hash slots.
type Cluster struct {
	// Addrs are the masters' host:port, in the order of Nodes: the seeds a client is given.
	Addrs []string
	// Nodes are the masters.
	Nodes []*Server
}

// StartCluster runs three cluster-enabled redis-servers, joins them with
// `redis-cli --cluster create` and waits until every node reports cluster_state:ok; the
// servers are killed at cleanup. Without redis-server or redis-cli the test is skipped,
// unless CI=true: there it fails.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	need(t, "redis-server", "redis-cli")
	const n = 3
	dir := t.TempDir()
	// Each node also listens on a cluster bus port. Redis's default, port+10000, may be taken
	// or above 65535, so it is chosen free like the others.
	addrs := freeAddrs(t, 2*n)
	c := &Cluster{Addrs: slices.Clip(addrs[:n]), Nodes: make([]*Server, n)}
	for i := range c.Nodes {
		_, port, _ := net.SplitHostPort(addrs[i])
		_, bus, _ := net.SplitHostPort(addrs[n+i])
		c.Nodes[i] = start(t, &Server{Addr: addrs[i], args: []string{"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes-"+port+".conf"), "--cluster-port", bus}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.waitOK(t)
	return c
}

// waitOK waits until every node reports cluster_state:ok: it knows the others and every slot
// is served.
func (c *Cluster) waitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range c.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true, Protocol: 2})
		var info string
		var err error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err = rdb.ClusterInfo(ctx).Result()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				rdb.Close()
				t.Fatalf("redis cluster node %s not ok within 10s: %v\n%s", s.Addr, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
		rdb.Close()
	}
}
