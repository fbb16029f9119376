package stats

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// fakeClock is a settable clock for Options.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// countingHandler counts slog records by level.
type countingHandler struct{ errors, infos atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
	} else {
		h.infos.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// newTest opens a Stats in dir (a new temp dir when ""), with a fake clock at
// t0 and a flusher that never fires during a test.
func newTest(t *testing.T, dir string, opts Options) (*Stats, *fakeClock) {
	t.Helper()
	return newTestCfg(t, Config{DataDir: dir, FlushInterval: 10 * time.Minute, TopN: 5}, opts)
}

// newTestCfg is newTest with a given Config.
func newTestCfg(t *testing.T, cfg Config, opts Options) (*Stats, *fakeClock) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	clk := &fakeClock{t: t0}
	opts.Clock = clk.Now
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

// kind is one line of a known request mix.
type kind struct {
	n        int
	status   int
	path     string
	ip       string
	route    string
	cache    CacheResult
	limit    LimitResult
	rule     string
	upstream time.Duration
	total    time.Duration
	in, out  int
}

var mix = []kind{
	{n: 50, status: 200, path: "/items/MLA1", ip: "10.0.0.1", route: "items", cache: CacheHit, total: time.Millisecond, in: 100, out: 1000},
	{n: 30, status: 200, path: "/items/MLA2", ip: "10.0.0.2", route: "items", cache: CacheMiss, upstream: 20 * time.Millisecond, total: 21 * time.Millisecond, in: 100, out: 2000},
	{n: 10, status: 429, path: "/sites/MLA/search", ip: "10.0.0.3", limit: LimitLimited, rule: "search-ip", total: 100 * time.Microsecond, in: 50, out: 20},
	{n: 5, status: 502, path: "/items/MLA1", ip: "2001:db8::1", route: "items", cache: CacheMiss, upstream: 5 * time.Second, total: 5 * time.Second, in: 100},
	{n: 3, status: 200, path: "/items/MLA1", ip: "10.0.0.1", route: "items", cache: CacheStale, total: 2 * time.Millisecond, in: 100, out: 1000},
	{n: 2, status: 404, path: "/users/1", ip: "10.0.0.4", limit: LimitShadowLimited, rule: "users-shadow", upstream: 3 * time.Millisecond, total: 4 * time.Millisecond, in: 10, out: 10},
}

func (k kind) record(now time.Time) *Record {
	return &Record{Now: now, Status: k.status, Path: []byte(k.path),
		ClientIP: netip.MustParseAddr(k.ip), Route: k.route, Cache: k.cache, Limit: k.limit,
		LimitRule: k.rule, Upstream: k.upstream, Total: k.total, BytesIn: k.in, BytesOut: k.out}
}

// playMix records the mix from several goroutines at once.
func playMix(s *Stats, now time.Time) {
	var wg sync.WaitGroup
	for _, k := range mix {
		for i := range k.n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := k.record(now.Add(time.Duration(i) * time.Millisecond))
				s.Record(r)
			}()
		}
	}
	wg.Wait()
}

func TestExactCounts(t *testing.T) {
	t.Parallel()
	s, clk := newTest(t, "", Options{})
	playMix(s, t0.Add(10*time.Second))
	clk.Set(t0.Add(30 * time.Second))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	sm, err := s.Summary(t0, t0.Add(time.Minute), 5)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"requests", sm.Requests, 100},
		{"status 200", sm.Status["200"], 83},
		{"status 429", sm.Status["429"], 10},
		{"status 502", sm.Status["502"], 5},
		{"status 404", sm.Status["404"], 2},
		{"class 2xx", sm.StatusClass["2xx"], 83},
		{"class 4xx", sm.StatusClass["4xx"], 12},
		{"cache hit", sm.Cache["hit"], 50},
		{"cache miss", sm.Cache["miss"], 35},
		{"cache stale", sm.Cache["stale"], 3},
		{"cache bypass", sm.Cache["bypass"], 12},
		{"limited search-ip", sm.Limits["search-ip"]["limited"], 10},
		{"shadow users", sm.Limits["users-shadow"]["shadow_limited"], 2},
		{"limited total", sm.Limited, 10},
		{"bytes in", sm.BytesIn, 50*100 + 30*100 + 10*50 + 5*100 + 3*100 + 2*10},
		{"bytes out", sm.BytesOut, 50*1000 + 30*2000 + 10*20 + 3*1000 + 2*10},
		{"latency count", sm.Latency.Total.Count, 100},
		{"upstream count", sm.Latency.Upstream.Count, 37},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if want := float64(53) / 88; sm.CacheHitRatio != want {
		t.Errorf("cache hit ratio = %v, want %v", sm.CacheHitRatio, want)
	}
	if len(sm.TopPaths) == 0 || sm.TopPaths[0] != (TopEntry{Key: "/items/MLA1", Count: 58}) {
		t.Errorf("top path = %+v, want /items/MLA1 58 exact", sm.TopPaths)
	}
	if len(sm.TopIPs) < 2 || sm.TopIPs[0].Key != "10.0.0.1" || sm.TopIPs[0].Count != 53 || sm.TopIPs[1].Key != "10.0.0.2" || sm.TopIPs[1].Count != 30 {
		t.Errorf("top IPs = %+v", sm.TopIPs)
	}
	// p50 is the 50th of 100 sorted totals: a 1ms hit; p99 one of the 5s 502s.
	if p := sm.Latency.Total.P50ms; p < 0.93 || p > 1.07 {
		t.Errorf("p50 = %vms, want 1ms ±6.25%%", p)
	}
	if p := sm.Latency.Total.P99ms; p < 4690 || p > 5320 {
		t.Errorf("p99 = %vms, want 5000ms ±6.25%%", p)
	}

	var buf bytes.Buffer
	s.WritePrometheus(&buf)
	for _, line := range []string{
		`meliproxy_requests_total{class="2xx",cache="hit"} 50`,
		`meliproxy_requests_total{class="2xx",cache="miss"} 30`,
		`meliproxy_requests_total{class="5xx",cache="miss"} 5`,
		`meliproxy_requests_total{class="4xx",cache="bypass"} 12`,
		`meliproxy_route_requests_total{route="items",class="2xx"} 83`,
		`meliproxy_route_requests_total{route="none",class="4xx"} 12`,
		`meliproxy_limit_decisions_total{rule="search-ip",decision="limited"} 10`,
		`meliproxy_limit_decisions_total{rule="users-shadow",decision="shadow_limited"} 2`,
		`meliproxy_request_duration_seconds_count 100`,
		`meliproxy_upstream_duration_seconds_count 37`,
		`meliproxy_upstream_duration_seconds_bucket{le="+Inf"} 37`,
		`meliproxy_request_bytes_total 9320`,
		`meliproxy_stats_store_errors_total 0`,
	} {
		if !strings.Contains(buf.String(), line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}

func TestRollupBoundaries(t *testing.T) {
	t.Parallel()
	s, clk := newTest(t, "", Options{})
	rec := func(at time.Time, status int) {
		s.Record(&Record{Now: at, Status: status, Path: []byte("/p"), ClientIP: netip.MustParseAddr("192.0.2.1")})
	}
	// t0 = 09:00. Minutes 09:00, 09:01 (two), 09:59, 10:00, and a request of
	// 09:03 recorded late (after 09:05 took over its neighbour slots).
	rec(t0.Add(59*time.Second+999*time.Millisecond), 200)
	rec(t0.Add(time.Minute), 200)
	rec(t0.Add(time.Minute+59*time.Second), 500)
	rec(t0.Add(5*time.Minute), 200)
	rec(t0.Add(3*time.Minute+30*time.Second), 404) // late, still within the 4-minute ring
	clk.Set(t0.Add(6 * time.Minute))
	if err := s.Flush(); err != nil { // flush mid-hour: partial minutes are merged later
		t.Fatal(err)
	}
	rec(t0.Add(5*time.Minute+10*time.Second), 200) // same minute after a flush: added, not replaced
	rec(t0.Add(59*time.Minute+59*time.Second), 200)
	rec(t0.Add(60*time.Minute), 200)
	clk.Set(t0.Add(61 * time.Minute))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	sr, err := s.Series("minute", t0, t0.Add(61*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Points) != 61 {
		t.Fatalf("minute points = %d, want 61", len(sr.Points))
	}
	want := map[int]uint64{0: 1, 1: 2, 3: 1, 5: 2, 59: 1, 60: 1}
	for i, p := range sr.Points {
		if p.Requests != want[i] {
			t.Errorf("minute %d: %d requests, want %d", i, p.Requests, want[i])
		}
		if p.T != t0.Add(time.Duration(i)*time.Minute).Unix() {
			t.Errorf("minute %d starts at %d", i, p.T)
		}
	}
	if c := sr.Points[1].StatusClass; c["2xx"] != 1 || c["5xx"] != 1 {
		t.Errorf("minute 1 classes = %v", c)
	}
	hr, err := s.Series("hour", t0, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(hr.Points) != 2 || hr.Points[0].Requests != 7 || hr.Points[1].Requests != 1 {
		t.Errorf("hour points = %+v, want 7 then 1", hr.Points)
	}
	day, err := s.Series("day", t0.Add(-48*time.Hour), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(day.Points); n != 3 || day.Points[2].Requests != 8 {
		t.Errorf("day points = %+v, want 3 with 8 today", day.Points)
	}
}

func TestDurableAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, clk := newTest(t, dir, Options{})
	playMix(s, t0)
	if err := s.Close(); err != nil { // Close flushes
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = clk

	s2, clk2 := newTest(t, dir, Options{})
	clk2.Set(t0.Add(30 * time.Second))
	playMix(s2, t0.Add(20*time.Second)) // same minute again: must add to the stored one
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	sm, err := s2.Summary(t0, t0.Add(time.Minute), 5)
	if err != nil {
		t.Fatal(err)
	}
	if sm.Requests != 200 || sm.Status["429"] != 20 || sm.TopPaths[0].Count != 116 {
		t.Errorf("after restart: requests %d, 429s %d, top %+v; want 200, 20, 116", sm.Requests, sm.Status["429"], sm.TopPaths[0])
	}
}

func TestRetentionPrunes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &fakeClock{t: t0}
	s, err := New(Config{DataDir: dir, FlushInterval: time.Minute, MinuteRetention: 2 * time.Hour, HourRetention: 48 * time.Hour},
		Options{Clock: clk.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Record(&Record{Now: t0, Status: 200})
	s.Flush()
	clk.Set(t0.Add(3 * time.Hour))
	s.Record(&Record{Now: t0.Add(3 * time.Hour), Status: 200})
	s.Flush()
	if f := s.st.first(bucketMinutes); f != t0.Add(3*time.Hour).Unix() {
		t.Errorf("oldest minute = %d, want the 3h one (older pruned)", f)
	}
	if f := s.st.first(bucketHours); f != t0.Unix() {
		t.Errorf("oldest hour = %d, want t0 (kept 48h)", f)
	}
	clk.Set(t0.Add(49 * time.Hour))
	s.Record(&Record{Now: t0.Add(49 * time.Hour), Status: 200})
	s.Flush()
	if f := s.st.first(bucketHours); f != t0.Add(3*time.Hour).Unix() {
		t.Errorf("oldest hour = %d, want 3h (t0 pruned)", f)
	}
}

// TestReadOnlyStore swaps the open store for a read-only handle of the same
// file (the test runs as any user, so chmod cannot be relied on): flushes
// fail, are logged once and counted, Record is unaffected, and nothing is
// lost once writes work again.
func TestReadOnlyStore(t *testing.T) {
	t.Parallel()
	h := &countingHandler{}
	dir := t.TempDir()
	s, _ := newTest(t, dir, Options{Logger: slog.New(h)})
	s.Record(&Record{Now: t0, Status: 200})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stats.db")
	s.st.db.Close()
	ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	s.st.db = ro
	for range 3 {
		s.Record(&Record{Now: t0, Status: 503})
		if err := s.Flush(); !errors.Is(err, bolterrors.ErrDatabaseReadOnly) {
			t.Fatalf("flush on read-only store: %v", err)
		}
	}
	st := s.storeStatus()
	if st.OK || st.Errors != 3 || st.Error == "" || st.Pending != 1 {
		t.Errorf("store status = %+v, want not ok, 3 errors, 1 pending minute", st)
	}
	if n := h.errors.Load(); n != 1 {
		t.Errorf("logged %d errors, want 1 (once per state change)", n)
	}
	var buf bytes.Buffer
	s.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), "meliproxy_stats_store_errors_total 3\n") || !strings.Contains(buf.String(), "meliproxy_stats_store_ok 0\n") {
		t.Errorf("metrics do not show the store errors:\n%s", buf.String())
	}
	ro.Close()
	rw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.st.db = rw
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if h.infos.Load() != 1 || !s.storeStatus().OK {
		t.Errorf("recovery not logged once or status not ok: %d infos, %+v", h.infos.Load(), s.storeStatus())
	}
	sm, _ := s.Summary(t0, t0.Add(time.Minute), 5)
	if sm.Requests != 4 || sm.Status["503"] != 3 {
		t.Errorf("after recovery: %d requests, %d 503s; want 4 and 3", sm.Requests, sm.Status["503"])
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"data dir is a file", Config{DataDir: file}, "stats: cannot open store"},
		{"flush too short", Config{FlushInterval: time.Millisecond}, "stats.flush_interval"},
		{"hours shorter than minutes", Config{MinuteRetention: 48 * time.Hour, HourRetention: 24 * time.Hour}, "stats.hour_retention"},
		{"top_n", Config{TopN: -1}, "stats.top_n"},
		{"minute retention", Config{MinuteRetention: time.Minute}, "stats.minute_retention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want error containing %q", err, tt.want)
			}
		})
	}
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}
