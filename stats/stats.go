// Package stats records every proxied request: Prometheus metrics, per-minute
// rollups with bounded top-N sketches, a durable bbolt store with minute and
// hour retention, JSON query handlers and a self-contained /stats page.
package stats

import (
	"hash/maphash"
	"io"
	"log/slog"
	"math/bits"
	"runtime"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Options are the non-configuration inputs of New. The zero value is valid.
type Options struct {
	// Clock returns the current time for flushing, retention and default
	// query ranges (nil = time.Now). Record uses Record.Now instead.
	Clock func() time.Time
	// Info returns the active rules and config version shown on /stats
	// (nil = none). It is called once per page or /stats.json request.
	Info func() PageInfo
	// Extra writers are appended to /metrics after the owned set, e.g. the
	// limiter's and cache's WriteMetrics.
	Extra []func(w io.Writer)
	// Version is the build version, exported as meliproxy_build_info{version}.
	Version string
	// Logger receives store errors (nil = slog.Default()).
	Logger *slog.Logger
}

// PageInfo is what /stats shows about the running configuration.
type PageInfo struct {
	ConfigVersion string     `json:"config_version"`
	LoadedAt      time.Time  `json:"loaded_at,omitzero"`
	Rules         []RuleInfo `json:"rules"`
	// Cluster is the shared-limits state; nil when limits are in-process only.
	Cluster *ClusterInfo `json:"cluster,omitempty"`
}

// ClusterInfo is what /stats shows about limits shared through Redis.
type ClusterInfo struct {
	NodeID    string  `json:"node_id"`
	Nodes     int     `json:"nodes"`       // live nodes as last counted
	Degraded  bool    `json:"degraded"`    // Redis did not answer the last round trip
	SyncLagMs float64 `json:"sync_lag_ms"` // since the last successful round trip
	HotKeys   int     `json:"hot_keys"`    // keys synchronised now
	Errors    uint64  `json:"errors"`      // failed round trips since start
}

// RuleInfo describes one active limit rule for the /stats page.
type RuleInfo struct {
	ID     string `json:"id"`
	Rate   string `json:"rate"`   // e.g. "100/m"
	Action string `json:"action"` // e.g. "limit", "shadow", "deny"
	Scope  string `json:"scope"`  // e.g. "ip", "global"
}

// Stats records requests and serves what it recorded. It is safe for
// concurrent use and must not be copied; create it with New and stop it with
// Close.
type Stats struct {
	cfg   Config
	opts  Options
	clock func() time.Time
	log   *slog.Logger
	seed  maphash.Seed
	prom  *promMetrics
	win   *window
	st    *store
	keep  int // top-N entries stored per rollup
	start time.Time

	pendMu  sync.Mutex
	pending map[int64]*agg // harvested minutes not yet stored, by unix minute

	flushMu  sync.Mutex // one flush at a time
	errMu    sync.Mutex
	lastErr  error
	errSince time.Time

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// maxPending bounds the minutes kept in memory while the store fails (a day);
// older ones are dropped and counted in meliproxy_stats_dropped_rollups_total.
const maxPending = 24 * 60

// New opens (or creates) the store under cfg.DataDir and starts the flusher.
// An invalid cfg or a store that cannot be opened is an error.
func New(cfg Config, opts Options) (*Stats, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	st, err := openStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Stats{
		cfg: cfg, opts: opts, clock: opts.Clock, log: opts.Logger,
		seed: maphash.MakeSeed(), prom: newPromMetrics(opts.Version),
		win: newWindow(numShards(), 4*cfg.TopN, 2*cfg.TopN), st: st, keep: 2 * cfg.TopN,
		pending: map[int64]*agg{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.start = s.clock()
	go s.loop()
	return s, nil
}

// numShards is GOMAXPROCS rounded up to a power of two, within [4, 16]: enough
// that cores rarely meet on a shard lock, few enough that memory stays small.
func numShards() int {
	n := 1 << bits.Len(uint(runtime.GOMAXPROCS(0)-1))
	return min(max(n, 4), 16)
}

// Record counts one finished request. It never blocks on the store, does not
// allocate in steady state, and reads r's byte slices only during the call.
func (s *Stats) Record(r *Record) {
	s.prom.observe(r)
	ip := r.ClientIP.As16()
	var hIP uint64
	if r.ClientIP.IsValid() {
		hIP = maphash.Bytes(s.seed, ip[:])
	}
	hPath := maphash.Bytes(s.seed, r.Path[:min(len(r.Path), MaxKeyLen)])
	s.win.add(r, unixMinute(r.Now), hIP, hPath, &ip, s.rotate)
}

// rotate is the once-a-minute slow path of Record: it moves a slot to a new
// minute and queues the old one for the flusher.
func (s *Stats) rotate(sl *slot, m int64) {
	if old, a := s.win.rotate(sl, m); a != nil {
		s.addPending(map[int64]*agg{old: a})
	}
}

// addPending merges harvested minutes into the queue, dropping the oldest
// beyond maxPending.
func (s *Stats) addPending(mins map[int64]*agg) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for m, a := range mins {
		if p := s.pending[m]; p != nil {
			p.addRollup(a.rollup(m*60, s.keep))
		} else {
			s.pending[m] = a
		}
	}
	for len(s.pending) > maxPending {
		oldest := int64(1<<63 - 1)
		for m := range s.pending {
			oldest = min(oldest, m)
		}
		delete(s.pending, oldest)
		s.prom.droppedMins.Inc()
	}
}

// Set returns the owned metric set, for the lead to add process-wide series
// (config reload gauges). Its series are written by WritePrometheus.
func (s *Stats) Set() *metrics.Set { return s.prom.set }

// WritePrometheus writes the owned set followed by every Options.Extra writer.
func (s *Stats) WritePrometheus(w io.Writer) {
	s.prom.set.WritePrometheus(w)
	for _, f := range s.opts.Extra {
		f(w)
	}
}

// loop flushes every FlushInterval until Close.
func (s *Stats) loop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Flush() // errors are logged and counted by Flush
		}
	}
}

// Flush moves everything recorded so far to the store: closed minutes and the
// current partial one. The flusher calls it every FlushInterval; tests and
// shutdown call it directly. A store error is logged once per change of
// state, counted in meliproxy_stats_store_errors_total, shown by the API,
// and returned; the data stays queued for the next flush.
func (s *Stats) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.addPending(s.win.harvest())
	s.pendMu.Lock()
	batch := s.pending
	s.pending = map[int64]*agg{}
	s.pendMu.Unlock()
	now := s.clock().Unix()
	var err error
	if len(batch) > 0 {
		err = s.st.write(batch, s.keep, now-int64(s.cfg.MinuteRetention/time.Second), now-int64(s.cfg.HourRetention/time.Second))
	}
	s.prom.flushes.Inc()
	if err != nil {
		s.addPending(batch)
	} else {
		s.prom.lastFlushSec.Store(now)
	}
	s.setStoreErr(err)
	return err
}

// setStoreErr records the store state, logging only transitions.
func (s *Stats) setStoreErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	was := s.lastErr
	if err != nil {
		s.prom.storeErrors.Inc()
	}
	switch {
	case err != nil && was == nil:
		s.log.Error("stats store write failed; keeping rollups in memory", "dir", s.cfg.DataDir, "err", err)
		s.errSince = s.clock()
	case err == nil && was != nil:
		s.log.Info("stats store writes recovered", "dir", s.cfg.DataDir)
		s.errSince = s.clock()
	}
	s.lastErr = err
	s.prom.storeOK.Store(err == nil)
}

// StoreStatus is the store's health as shown by the API.
type StoreStatus struct {
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	Since     time.Time `json:"since,omitzero"` // when the state last changed
	Errors    uint64    `json:"errors_total"`
	LastFlush time.Time `json:"last_flush,omitzero"`
	Pending   int       `json:"pending_minutes"`
}

// storeStatus reports the store health.
func (s *Stats) storeStatus() StoreStatus {
	s.errMu.Lock()
	st := StoreStatus{OK: s.lastErr == nil, Since: s.errSince, Errors: s.prom.storeErrors.Get()}
	if s.lastErr != nil {
		st.Error = s.lastErr.Error()
	}
	s.errMu.Unlock()
	if sec := s.prom.lastFlushSec.Load(); sec > 0 {
		st.LastFlush = time.Unix(sec, 0).UTC()
	}
	s.pendMu.Lock()
	st.Pending = len(s.pending)
	s.pendMu.Unlock()
	return st
}

// Close stops the flusher, flushes a last time and closes the store. It
// returns the final flush or close error. Record must not be called after
// Close; a second Close returns nil.
func (s *Stats) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.Flush()
		if cerr := s.st.close(); err == nil {
			err = cerr
		}
	})
	return err
}
