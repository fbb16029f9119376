package stats_test

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/meliproxy/meliproxy/stats"
)

func ExampleNew() {
	dir, _ := os.MkdirTemp("", "stats")
	defer os.RemoveAll(dir)
	s, err := stats.New(stats.Config{DataDir: dir}, stats.Options{Version: "v1.0.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// The proxy fills one Record per finished request.
	now := time.Now()
	s.Record(&stats.Record{Now: now, Status: 200, Path: []byte("/items/MLA1"),
		ClientIP: netip.MustParseAddr("192.0.2.1"), Cache: stats.CacheHit, Total: time.Millisecond})

	s.Flush() // normally every flush_interval
	sm, _ := s.Summary(now.Add(-time.Hour), now.Add(time.Minute), 5)
	fmt.Println(sm.Requests, sm.TopPaths[0].Key, sm.CacheHitRatio)
	// Output: 1 /items/MLA1 1
}
