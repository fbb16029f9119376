package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartSentinel(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t, "mymaster", SentinelOptions{MasterPassword: "pw", SentinelPassword: "pw"})
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{SentinelAddrs: []string{s.Addr}, MasterName: s.MasterName,
		Password: "pw", SentinelPassword: "pw", DisableIdentity: true})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinel: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: s.Master.Addr, Password: "pw", DisableIdentity: true})
	defer direct.Close()
	if v, err := direct.Get(ctx, "k").Result(); v != "v" {
		t.Fatalf("GET on the master: %q, %v; want the value set through the sentinel", v, err)
	}
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, DisableIdentity: true})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Keys spread over the slots: each master ends up with some.
	for i := range 30 {
		if err := rdb.Set(ctx, "k"+string(rune('a'+i)), "v", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	for _, s := range c.Nodes {
		direct := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true})
		n, err := direct.DBSize(ctx).Result()
		direct.Close()
		if err != nil || n == 0 {
			t.Errorf("master %s holds %d keys (%v), want some of the 30", s.Addr, n, err)
		}
	}
}
