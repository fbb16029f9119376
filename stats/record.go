package stats

import (
	"net/netip"
	"time"
)

// CacheResult is how the response cache handled a request.
type CacheResult uint8

// Cache results. The zero value, CacheNone, means the cache was not consulted
// (no rule matched, or the method is not cacheable); it is reported as "bypass".
const (
	CacheNone CacheResult = iota
	CacheHit
	CacheMiss
	CacheStale
	numCacheResults
)

var cacheNames = [numCacheResults]string{"bypass", "hit", "miss", "stale"}

// String returns the lower-case name used in JSON and metric labels.
func (c CacheResult) String() string {
	if c >= numCacheResults {
		return "unknown"
	}
	return cacheNames[c]
}

// LimitResult is the rate limiter's decision for a request.
type LimitResult uint8

// Limiter decisions. The zero value, LimitAllowed, means a rule (or none) let
// the request through.
const (
	LimitAllowed       LimitResult = iota
	LimitLimited                   // rejected by Record.LimitRule (429)
	LimitShadowLimited             // would have been rejected by a shadow-mode rule, was let through
	LimitDenied                    // rejected by a deny rule (403)
	LimitExempt                    // matched an exempt rule, not counted against any quota
	numLimitResults
)

var limitNames = [numLimitResults]string{"allowed", "limited", "shadow_limited", "denied", "exempt"}

// String returns the lower-case name used in JSON and metric labels.
func (l LimitResult) String() string {
	if l >= numLimitResults {
		return "unknown"
	}
	return limitNames[l]
}

// Record is one finished request, filled by the proxy and passed to
// Stats.Record. Byte slices are borrowed: they are read only during the
// Record call and copied if kept, so the proxy may pass fasthttp's pooled
// buffers directly. A Record may be reused once Record returns.
type Record struct {
	// Now is the request time (the proxy's single clock read); it selects the
	// minute the request is counted in.
	Now time.Time
	// Status is the HTTP status sent to the client (100..599; others count as "other").
	Status int
	// Path is the forwarded, normalised path without query (borrowed). Used
	// only by the top-N sketches, never as a metric label.
	Path []byte
	// ClientIP is the client address as resolved by the limiter. Used only by
	// the top-N sketches.
	ClientIP netip.Addr
	// Route is the cache rule id that matched, or "". It must be a stable
	// string owned by the configuration (it becomes a metric label and a map
	// key without being copied); at most 256 distinct routes get their own
	// label, later ones count as "other".
	Route string
	// Cache is the cache result.
	Cache CacheResult
	// Limit is the limiter decision; LimitRule names the rule that decided it
	// ("" when no rule matched). LimitRule follows the same rules as Route.
	Limit     LimitResult
	LimitRule string
	// Upstream is the time spent waiting for the upstream (0 for cache hits
	// and rejected requests); Total is the time from request start to response.
	Upstream, Total time.Duration
	// BytesIn and BytesOut are the request and response sizes as seen by the client.
	BytesIn, BytesOut int
}

// statusClass maps a status to 0 (other), 1 (1xx) .. 5 (5xx).
func statusClass(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
