package proxy

import (
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// logUpstreamError logs upstream failures at most once a second, with how many were folded in, so a
// dead upstream at 50k requests/s does not become 50k log lines/s.
func (p *Proxy) logUpstreamError(ue *upstreamError, err error) {
	p.upstreamErrCounts[ue.id].Add(1)
	p.upstreamErrs.Add(1)
	now := time.Now().UnixNano()
	last := p.lastErrLog.Load()
	if now-last < int64(time.Second) || !p.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	n := p.upstreamErrs.Swap(0)
	p.log.Warn("upstream request failed", slog.String("kind", ue.kind), slog.Int("status", ue.status),
		slog.Any("error", err), slog.Int64("count_since_last_log", n))
}

// logState is the throttle for logUpstreamError, and the per-class failure counters.
type logState struct {
	lastErrLog        atomic.Int64
	upstreamErrs      atomic.Int64 // since the last log line
	upstreamErrCounts [len(upstreamErrors)]atomic.Uint64
}

// WriteMetrics writes the proxy's own counters in Prometheus text format:
// meliproxy_upstream_errors_total by failure class (timeout, unreachable, too_large, pool_full,
// bad_response). Every class is written, zero included, so rates work from the first scrape.
func (p *Proxy) WriteMetrics(w io.Writer) {
	for _, e := range upstreamErrors {
		metrics.WriteCounterUint64(w, `meliproxy_upstream_errors_total{kind="`+e.kind+`"}`, p.upstreamErrCounts[e.id].Load())
	}
}
