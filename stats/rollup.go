package stats

import (
	"cmp"
	"slices"
	"strconv"
)

// Top-N dimensions.
const (
	dimPath = iota
	dimIP
	dimIPPath
	numDims
)

var dimNames = [numDims]string{"path", "ip", "ip_path"}

// TopEntry is one heavy hitter: a path, a client IP, or "IP path" (one space
// between). Count may overestimate the true count by at most Error (the
// space-saving bound); Error is 0 when the count is exact.
type TopEntry struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
	Error uint64 `json:"error,omitempty"`
}

// rollup is the stored form of one minute or one hour (JSON in bbolt).
// Latency histograms are sparse [bucket, count] pairs; see latency.go.
type rollup struct {
	Start    int64                              `json:"start"` // unix seconds of the minute or hour
	Requests uint64                             `json:"requests"`
	Status   map[string]uint64                  `json:"status,omitempty"` // "200" -> n; "other" for codes outside 100..599
	Cache    [numCacheResults]uint64            `json:"cache"`            // indexed by CacheResult
	Limits   map[string][numLimitResults]uint64 `json:"limits,omitempty"` // rule id -> counts by LimitResult
	BytesIn  uint64                             `json:"bytes_in"`
	BytesOut uint64                             `json:"bytes_out"`
	Total    [][2]uint64                        `json:"lat_total,omitempty"`
	TotalUS  uint64                             `json:"lat_total_sum_us,omitempty"`
	Upstream [][2]uint64                        `json:"lat_upstream,omitempty"`
	UpUS     uint64                             `json:"lat_upstream_sum_us,omitempty"`
	Top      [numDims][]TopEntry                `json:"top"` // by dim: path, ip, ip_path
}

// agg accumulates rollups (or shard snapshots) by addition. Top-N maps grow
// with the distinct keys added; top() and rollup() cut them back.
type agg struct {
	requests          uint64
	status            map[string]uint64
	cache             [numCacheResults]uint64
	limits            map[string][numLimitResults]uint64
	bytesIn, bytesOut uint64
	total, upstream   latencyHist
	top               [numDims]map[string]TopEntry
}

func newAgg() *agg {
	a := &agg{status: map[string]uint64{}, limits: map[string][numLimitResults]uint64{}}
	for d := range a.top {
		a.top[d] = map[string]TopEntry{}
	}
	return a
}

// addRollup adds a stored rollup into a.
func (a *agg) addRollup(r *rollup) {
	a.requests += r.Requests
	for k, v := range r.Status {
		a.status[k] += v
	}
	for i, v := range r.Cache {
		a.cache[i] += v
	}
	for k, v := range r.Limits {
		a.addLimits(k, &v)
	}
	a.bytesIn += r.BytesIn
	a.bytesOut += r.BytesOut
	a.total.addSparse(r.Total)
	a.total.sumUS += r.TotalUS
	a.upstream.addSparse(r.Upstream)
	a.upstream.sumUS += r.UpUS
	for d, list := range r.Top {
		for _, e := range list {
			a.addTop(d, e)
		}
	}
}

func (a *agg) addLimits(rule string, c *[numLimitResults]uint64) {
	cur := a.limits[rule]
	for i, v := range c {
		cur[i] += v
	}
	a.limits[rule] = cur
}

func (a *agg) addTop(d int, e TopEntry) {
	cur := a.top[d][e.Key]
	cur.Key = e.Key
	cur.Count += e.Count
	cur.Error += e.Error
	a.top[d][e.Key] = cur
}

// topList returns the n largest entries of dimension d, by count then key.
func (a *agg) topList(d, n int) []TopEntry {
	out := make([]TopEntry, 0, len(a.top[d]))
	for _, e := range a.top[d] {
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y TopEntry) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return cmp.Compare(x.Key, y.Key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// rollup returns the stored form of a, keeping keep entries per top-N dimension.
func (a *agg) rollup(start int64, keep int) *rollup {
	r := &rollup{
		Start: start, Requests: a.requests, Status: a.status, Cache: a.cache, Limits: a.limits,
		BytesIn: a.bytesIn, BytesOut: a.bytesOut,
		Total: a.total.sparse(), TotalUS: a.total.sumUS,
		Upstream: a.upstream.sparse(), UpUS: a.upstream.sumUS,
	}
	for d := range r.Top {
		r.Top[d] = a.topList(d, keep)
	}
	return r
}

// statusKey returns the rollup key of a status code.
func statusKey(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// statusKeyClass returns the class name ("2xx") of a rollup status key.
func statusKeyClass(k string) string {
	if len(k) == 3 && k[0] >= '1' && k[0] <= '5' {
		return k[:1] + "xx"
	}
	return "other"
}
