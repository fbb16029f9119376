package proxy

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// logUpstreamError logs upstream failures at most once a second, with how many were folded in, so a
// dead upstream at 50k requests/s does not become 50k log lines/s.
func (p *Proxy) logUpstreamError(ue *upstreamError, err error) {
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

// logState is the throttle for logUpstreamError.
type logState struct {
	lastErrLog   atomic.Int64
	upstreamErrs atomic.Int64
}
