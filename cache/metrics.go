package cache

import (
	"io"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// counters are the cache's numbers, exported by WriteMetrics.
type counters struct {
	hit, miss, stale, bypass atomic.Uint64
	coalesced                atomic.Uint64 // requests answered by another request's fetch
	stores                   atomic.Uint64 // entries offered to ristretto
	evictions                atomic.Uint64 // entries removed by the size bound or TTL expiry
	rejections               atomic.Uint64 // entries refused by ristretto's admission policy
	entries, bytes           atomic.Int64  // held now, including variant markers
}

func (m *counters) count(r Result) {
	switch r {
	case Hit:
		m.hit.Add(1)
	case Miss:
		m.miss.Add(1)
	case Stale:
		m.stale.Add(1)
	default:
		m.bypass.Add(1)
	}
}

// WriteMetrics writes the cache's metrics in Prometheus text format to w. Upstream fetches for
// cacheable requests are miss - coalesced (plus stale answers, whose fetch failed).
func (c *Cache) WriteMetrics(w io.Writer) {
	if c == nil {
		return
	}
	m := &c.m
	metrics.WriteCounterUint64(w, `meliproxy_cache_requests_total{result="hit"}`, m.hit.Load())
	metrics.WriteCounterUint64(w, `meliproxy_cache_requests_total{result="miss"}`, m.miss.Load())
	metrics.WriteCounterUint64(w, `meliproxy_cache_requests_total{result="stale"}`, m.stale.Load())
	metrics.WriteCounterUint64(w, `meliproxy_cache_requests_total{result="bypass"}`, m.bypass.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cache_coalesced_total", m.coalesced.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cache_stores_total", m.stores.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cache_evictions_total", m.evictions.Load())
	metrics.WriteCounterUint64(w, "meliproxy_cache_rejections_total", m.rejections.Load())
	metrics.WriteGaugeUint64(w, "meliproxy_cache_entries", uint64(max(m.entries.Load(), 0)))
	metrics.WriteGaugeUint64(w, "meliproxy_cache_bytes", uint64(max(m.bytes.Load(), 0)))
}
