package stats

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// latencyBuckets are the le bounds, in seconds, of the Prometheus latency
// histograms: 0.5ms to 30s, dense where an API proxy's latencies sit.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// promMetrics are the Prometheus series updated per request. All are created
// up front except the route and rule families, whose label values come from
// the configuration and are created on first use (then looked up without
// allocating).
type promMetrics struct {
	set      *metrics.Set
	requests [6][numCacheResults]*metrics.Counter // [statusClass][CacheResult]
	routes   labelCounters[[6]*metrics.Counter]   // route -> by status class
	limits   labelCounters[[numLimitResults]*metrics.Counter]
	total    *metrics.PrometheusHistogram
	upstream *metrics.PrometheusHistogram
	bytesIn  *metrics.Counter
	bytesOut *metrics.Counter

	storeErrors  *metrics.Counter
	flushes      *metrics.Counter
	droppedMins  *metrics.Counter
	lastFlushSec atomic.Int64
	storeOK      atomic.Bool
}

func newPromMetrics(version string) *promMetrics {
	s := metrics.NewSet()
	p := &promMetrics{set: s}
	s.NewGauge(`meliproxy_build_info{version="`+labelValue(version)+`"}`, func() float64 { return 1 })
	for c := range p.requests {
		for r := range p.requests[c] {
			p.requests[c][r] = s.NewCounter(`meliproxy_requests_total{class="` + classNames[c] + `",cache="` + CacheResult(r).String() + `"}`)
		}
	}
	p.routes.init(func(route string) *[6]*metrics.Counter {
		var cs [6]*metrics.Counter
		for c := range cs {
			cs[c] = s.NewCounter(`meliproxy_route_requests_total{route="` + labelValue(route) + `",class="` + classNames[c] + `"}`)
		}
		return &cs
	})
	p.limits.init(func(rule string) *[numLimitResults]*metrics.Counter {
		var cs [numLimitResults]*metrics.Counter
		for l := range cs {
			cs[l] = s.NewCounter(`meliproxy_limit_decisions_total{rule="` + labelValue(rule) + `",decision="` + LimitResult(l).String() + `"}`)
		}
		return &cs
	})
	p.total = s.NewPrometheusHistogramExt("meliproxy_request_duration_seconds", latencyBuckets)
	p.upstream = s.NewPrometheusHistogramExt("meliproxy_upstream_duration_seconds", latencyBuckets)
	p.bytesIn = s.NewCounter("meliproxy_request_bytes_total")
	p.bytesOut = s.NewCounter("meliproxy_response_bytes_total")
	p.storeErrors = s.NewCounter("meliproxy_stats_store_errors_total")
	p.flushes = s.NewCounter("meliproxy_stats_flushes_total")
	p.droppedMins = s.NewCounter("meliproxy_stats_dropped_rollups_total")
	s.NewGauge("meliproxy_stats_store_ok", func() float64 { return b2f(p.storeOK.Load()) })
	s.NewGauge("meliproxy_stats_last_flush_timestamp_seconds", func() float64 { return float64(p.lastFlushSec.Load()) })
	p.storeOK.Store(true)
	return p
}

// observe updates the per-request series.
func (p *promMetrics) observe(r *Record) {
	c := statusClass(r.Status)
	p.requests[c][r.Cache%numCacheResults].Inc()
	route := r.Route
	if route == "" {
		route = "none"
	}
	p.routes.get(route)[c].Inc()
	if r.LimitRule != "" || r.Limit != LimitAllowed {
		rule := r.LimitRule
		if rule == "" {
			rule = "none"
		}
		p.limits.get(rule)[r.Limit%numLimitResults].Inc()
	}
	p.total.Update(r.Total.Seconds())
	if r.Upstream > 0 {
		p.upstream.Update(r.Upstream.Seconds())
	}
	p.bytesIn.Add(max(r.BytesIn, 0))
	p.bytesOut.Add(max(r.BytesOut, 0))
}

// labelCounters maps a configuration-owned label value to its counters. Reads
// are one atomic load and a map lookup (no lock, no allocation); a new value
// copies the map under mu. At most maxLabels values are kept, then "other".
type labelCounters[T any] struct {
	mu   sync.Mutex
	m    atomic.Pointer[map[string]*T]
	make func(label string) *T
}

func (l *labelCounters[T]) init(mk func(string) *T) {
	l.make = mk
	m := map[string]*T{}
	l.m.Store(&m)
}

func (l *labelCounters[T]) get(k string) *T {
	if c, ok := (*l.m.Load())[k]; ok {
		return c
	}
	return l.add(k)
}

// add creates the counters of k (or returns "other" once maxLabels is reached).
func (l *labelCounters[T]) add(k string) *T {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.m.Load()
	if c, ok := old[k]; ok {
		return c
	}
	if len(old) >= maxLabels {
		if c, ok := old["other"]; ok {
			return c
		}
		k = "other"
	}
	m := make(map[string]*T, len(old)+1)
	for key, v := range old {
		m[key] = v
	}
	c := l.make(k)
	m[k] = c
	l.m.Store(&m)
	return c
}

// labelValue escapes a Prometheus label value.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
