package limiter

import (
	"io"

	"github.com/VictoriaMetrics/metrics"
)

// WriteMetrics writes the limiter's metrics in Prometheus text format:
//
//	meliproxy_limiter_requests_total{rule="items-ip",result="allowed|limited|shadow_limited"}
//	meliproxy_limiter_denied_total       requests answered 403 by a deny list
//	meliproxy_limiter_exempt_total       requests that skipped every rule
//	meliproxy_limiter_keys               keys tracked now (idle ones included until reused)
//	meliproxy_limiter_max_keys           the configured cap
//	meliproxy_limiter_evictions_total    non-idle keys dropped to make room
//	meliproxy_limiter_deny_entries       run-time deny-list entries
//
// "allowed" counts requests that passed with the rule charged; a request
// rejected by another rule is not counted as allowed. Per-rule counters keep
// counting across reloads while the rule id exists. Labels carry rule ids
// only, never keys.
func (l *Limiter) WriteMetrics(w io.Writer) {
	rs := l.set.Load()
	for _, r := range rs.rules {
		pre := `meliproxy_limiter_requests_total{rule="` + r.id + `",result="`
		metrics.WriteCounterUint64(w, pre+`allowed"}`, r.stats.allowed.Load())
		metrics.WriteCounterUint64(w, pre+`limited"}`, r.stats.limited.Load())
		metrics.WriteCounterUint64(w, pre+`shadow_limited"}`, r.stats.shadowLimited.Load())
	}
	metrics.WriteCounterUint64(w, "meliproxy_limiter_denied_total", l.denied.Load())
	metrics.WriteCounterUint64(w, "meliproxy_limiter_exempt_total", l.exempted.Load())
	var keys, evictions uint64
	if t := rs.table; t != nil {
		keys, evictions = uint64(max(t.keys.Load(), 0)), t.evictions.Load()
	}
	metrics.WriteGaugeUint64(w, "meliproxy_limiter_keys", keys)
	metrics.WriteGaugeUint64(w, "meliproxy_limiter_max_keys", uint64(rs.cfg.MaxKeys))
	metrics.WriteCounterUint64(w, "meliproxy_limiter_evictions_total", evictions)
	metrics.WriteGaugeUint64(w, "meliproxy_limiter_deny_entries", uint64(len(l.deny.Load().m)))
	if c := l.cluster.Load(); c != nil {
		c.writeMetrics(w)
	}
}
