package cache

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// serveConcurrently starts n requests for target, waits until n-1 of them are queued behind the
// leader's fetch (held at o's gate), releases the gate and returns the outcomes.
func serveConcurrently(t *testing.T, c *Cache, o *origin, n int, target string, headers ...string) []exchange {
	t.Helper()
	gate := make(chan struct{})
	o.set(func(o *origin) { o.gate = gate })
	out := make([]exchange, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = do(c, t0, target, o.fetch, headers...) })
	}
	waitFor(t, func() bool { return waiters(c) >= n-1 || o.calls.Load() >= int64(n) })
	close(gate)
	wg.Wait()
	return out
}

func waiters(c *Cache) int {
	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	n := 0
	for _, cl := range c.calls {
		n += cl.waiters
	}
	return n
}

func TestCoalescing(t *testing.T) {
	t.Parallel()
	const n = 100
	tests := []struct {
		name     string
		origin   *origin
		calls    int64 // upstream calls for n concurrent requests
		status   int
		wantErr  bool
		sameBody bool
	}{
		{"storable", newOrigin(200, "categories"), 1, 200, false, true},
		{"not storable 503 is shared", newOrigin(503, "down"), 1, 503, false, true},
		{"not storable no-store is shared", newOrigin(200, "fresh", "Cache-Control: no-store"), 1, 200, false, true},
		{"error is shared", &origin{err: errUpstream}, 1, 0, true, false},
		{"Set-Cookie is not shared", newOrigin(200, "yours", "Set-Cookie: s=1"), n, 200, false, true},
		{"private is not shared", newOrigin(200, "yours", "Cache-Control: private"), n, 200, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCache(t, testConfig(nil))
			out := serveConcurrently(t, c, tt.origin, n, "/categories/MLA1055")
			if got := tt.origin.calls.Load(); got != tt.calls {
				t.Errorf("upstream calls = %d, want %d", got, tt.calls)
			}
			for i, x := range out {
				if tt.wantErr {
					if !errors.Is(x.err, errUpstream) || x.res != Miss {
						t.Fatalf("request %d: %s %v, want MISS and the fetch error", i, x.res, x.err)
					}
					continue
				}
				if x.err != nil || x.res != Miss || x.status != tt.status || x.header("X-Cache") != "MISS" {
					t.Fatalf("request %d: %s %v %d X-Cache %q", i, x.res, x.err, x.status, x.header("X-Cache"))
				}
				if tt.sameBody && x.body != out[0].body {
					t.Fatalf("request %d body %q, leader's %q", i, x.body, out[0].body)
				}
			}
			if tt.calls == 1 {
				if got := c.m.coalesced.Load(); got != n-1 {
					t.Errorf("coalesced = %d, want %d", got, n-1)
				}
			}
		})
	}
}

// TestCoalescingVary: waiters that coalesced on the base key before the upstream revealed its
// Vary get the leader's answer only if their own variant matches; the others fetch theirs.
func TestCoalescingVary(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := &origin{status: 200, echo: "Accept-Encoding", headers: []string{"Vary: Accept-Encoding"}}
	gate := make(chan struct{})
	o.gate = gate
	encodings := []string{"gzip", "gzip", "br", "gzip", "br", ""}
	out := make([]exchange, len(encodings))
	var wg sync.WaitGroup
	leaderIn := make(chan struct{})
	wg.Go(func() { close(leaderIn); out[0] = do(c, t0, "/sites/MLA", o.fetch, "Accept-Encoding: gzip") })
	<-leaderIn
	for waiters(c) == 0 && o.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < len(encodings); i++ {
		wg.Go(func() {
			var h []string
			if encodings[i] != "" {
				h = []string{"Accept-Encoding: " + encodings[i]}
			}
			out[i] = do(c, t0, "/sites/MLA", o.fetch, h...)
		})
	}
	for waiters(c) < len(encodings)-1 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i, x := range out {
		if x.body != encodings[i] {
			t.Errorf("request %d (Accept-Encoding %q) got body %q", i, encodings[i], x.body)
		}
	}
	if got := o.calls.Load(); got != 4 { // the leader (gzip, shared by two waiters), then br, br and none alone
		t.Errorf("upstream calls = %d, want 4", got)
	}
}

// TestCoalescingStale: when the leader's fetch fails and a stale copy exists, every waiter gets it.
func TestCoalescingStale(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(func(r *RuleConfig) { r.TTL = time.Second; r.Stale = time.Hour }))
	o := newOrigin(200, "old")
	do(c, t0, "/sites/MLA", o.fetch)
	c.Wait()
	o.set(func(o *origin) { o.err = errUpstream })
	gate := make(chan struct{})
	o.set(func(o *origin) { o.gate = gate })
	const n = 20
	out := make([]exchange, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = do(c, t0.Add(time.Minute), "/sites/MLA", o.fetch) })
	}
	for waiters(c) < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i, x := range out {
		if x.res != Stale || x.err != nil || x.body != "old" || x.header("X-Cache") != "STALE" {
			t.Fatalf("request %d: %s %v %q %q", i, x.res, x.err, x.body, x.header("X-Cache"))
		}
	}
	if got := o.calls.Load(); got != 2 {
		t.Errorf("upstream calls = %d, want 2 (fill, then one failed refresh)", got)
	}
}

// TestLeaderPanic: a panicking fetch must not strand its waiters.
func TestLeaderPanic(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	gate := make(chan struct{})
	started := make(chan struct{})
	panicky := func(*fastReq, *fastResp) error {
		close(started)
		<-gate
		panic("upstream client bug")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		do(c, t0, "/sites/MLA", panicky)
	}()
	<-started
	var x exchange
	waited := make(chan struct{})
	go func() { x = do(c, t0, "/sites/MLA", panicky); close(waited) }()
	for waiters(c) < 1 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	<-done
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter stranded by a panicking leader")
	}
	if !errors.Is(x.err, errLeaderAborted) {
		t.Errorf("waiter error = %v", x.err)
	}
}

// TestReplayXCache: entries carry X-Cache: HIT; every other answer made from an entry (a
// coalesced copy, a stale copy) has exactly one X-Cache line, with its own result.
func TestReplayXCache(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil)) // ttl 1m, stale 5m
	o := newOrigin(200, "x")
	check := func(x exchange, want string) {
		t.Helper()
		if n := bytes.Count(x.resp.Header.Header(), []byte("X-Cache")); n != 1 || x.header("X-Cache") != want {
			t.Errorf("%s: %d X-Cache lines, value %q; want one, %s", x.res, n, x.header("X-Cache"), want)
		}
	}
	for _, x := range serveConcurrently(t, c, o, 4, "/sites/MLA") {
		check(x, "MISS")
	}
	c.Wait()
	check(do(c, t0, "/sites/MLA", o.fetch), "HIT")
	o.set(func(o *origin) { o.err = errUpstream })
	check(do(c, t0.Add(2*time.Minute), "/sites/MLA", o.fetch), "STALE")
}
