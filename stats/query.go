package stats

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// maxPoints bounds a series response; a longer range needs a larger step.
const maxPoints = 2000

// Quantiles are latency percentiles in milliseconds. Values are bucket
// midpoints, within ±6.25% of the exact percentile.
type Quantiles struct {
	Count  uint64  `json:"count"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	MeanMs float64 `json:"mean_ms"`
}

// Summary answers "what happened between From and To".
type Summary struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Resolution string    `json:"resolution"` // "minute" or "hour": the rollups read
	Requests   uint64    `json:"requests"`
	RPS        float64   `json:"rps"` // Requests / (To-From)
	// Status counts by code ("other" for codes outside 100..599) and by class ("2xx").
	Status      map[string]uint64 `json:"status"`
	StatusClass map[string]uint64 `json:"status_class"`
	// Cache counts by result. CacheHitRatio is (hit+stale)/(hit+stale+miss):
	// the share of cache lookups served from cache. CachedShare is
	// (hit+stale)/requests: the share of all traffic the upstream never saw.
	Cache         map[string]uint64 `json:"cache"`
	CacheHitRatio float64           `json:"cache_hit_ratio"`
	CachedShare   float64           `json:"cached_share"`
	// Limits counts limiter decisions by rule id, then decision name
	// ("limited", "shadow_limited", "denied", "exempt", "allowed"); zero counts omitted.
	Limits   map[string]map[string]uint64 `json:"limits"`
	Limited  uint64                       `json:"limited"` // limited + denied, all rules
	BytesIn  uint64                       `json:"bytes_in"`
	BytesOut uint64                       `json:"bytes_out"`
	Latency  struct {
		Total    Quantiles `json:"total"`
		Upstream Quantiles `json:"upstream"` // requests that reached the upstream only
	} `json:"latency"`
	TopPaths []TopEntry  `json:"top_paths"`
	TopIPs   []TopEntry  `json:"top_ips"`
	Store    StoreStatus `json:"store"`
}

// Point is one step of a series.
type Point struct {
	T             int64             `json:"t"` // unix seconds of the step start
	Time          time.Time         `json:"time"`
	Requests      uint64            `json:"requests"`
	RPS           float64           `json:"rps"`
	StatusClass   map[string]uint64 `json:"status_class"`
	CacheHitRatio float64           `json:"cache_hit_ratio"`
	Limited       uint64            `json:"limited"`
	P50ms         float64           `json:"p50_ms"`
	P90ms         float64           `json:"p90_ms"`
	P99ms         float64           `json:"p99_ms"`
}

// Series is a time series from From to To in steps of Step.
type Series struct {
	Step   string    `json:"step"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Points []Point   `json:"points"`
}

// Top is a top-N list for a range.
type Top struct {
	By         string     `json:"by"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Resolution string     `json:"resolution"`
	Items      []TopEntry `json:"items"`
}

// StatusPeriod is the status code counts of one calendar period.
type StatusPeriod struct {
	Period      string            `json:"period"` // "2026", "2026-03", "2026-03-14" or "2026-03-14T09" (UTC)
	Start       time.Time         `json:"start"`
	Requests    uint64            `json:"requests"`
	Status      map[string]uint64 `json:"status"`
	StatusClass map[string]uint64 `json:"status_class"`
}

// StatusReport is status codes grouped by calendar period.
type StatusReport struct {
	Group   string         `json:"group"`
	From    time.Time      `json:"from"`
	To      time.Time      `json:"to"`
	Periods []StatusPeriod `json:"periods"`
}

// collect sums the rollups of [from, to). It reads minutes when the range is
// at most a day and within minute retention, else hours (bounds widened to
// whole hours).
func (s *Stats) collect(from, to time.Time) (*agg, string, time.Time, time.Time, error) {
	a := newAgg()
	minuteCut := s.clock().Add(-s.cfg.MinuteRetention)
	if !from.Before(minuteCut) && to.Sub(from) <= 24*time.Hour {
		from = from.Truncate(time.Minute)
		err := s.read(bucketMinutes, from.Unix(), endUnix(to), a.addRollup)
		return a, "minute", from, to, err
	}
	from = from.Truncate(time.Hour)
	if t := to.Truncate(time.Hour); !t.Equal(to) {
		to = t.Add(time.Hour)
	}
	err := s.read(bucketHours, from.Unix(), endUnix(to), a.addRollup)
	return a, "hour", from, to, err
}

// read calls f, in order of start, for the stored rollups of bucket starting in [from, end) and
// for the minutes still queued in memory whose minute (bucketMinutes) or hour (bucketHours)
// starts there. Minutes are queued while the store fails (full disk, read-only file system):
// they are recorded requests the store will hold once it recovers, so answers must not freeze at
// the last good flush. A queued minute comes as its own rollup, after its stored hour's.
func (s *Stats) read(bucket []byte, from, end int64, f func(r *rollup)) error {
	// Held so that no flush moves minutes from the queue to the store between the two reads.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	step := int64(60)
	if string(bucket) == string(bucketHours) {
		step = 3600
	}
	var queued []*rollup
	s.pendMu.Lock()
	for m, p := range s.pending {
		if b := m * 60 / step * step; b >= from && b < end {
			queued = append(queued, p.rollup(m*60, s.keep))
		}
	}
	s.pendMu.Unlock()
	slices.SortFunc(queued, func(x, y *rollup) int { return cmp.Compare(x.Start, y.Start) })
	err := s.st.read(bucket, from, end, func(r *rollup) {
		for len(queued) > 0 && queued[0].Start < r.Start {
			f(queued[0])
			queued = queued[1:]
		}
		f(r)
	})
	for _, q := range queued {
		f(q)
	}
	return err
}

// endUnix is the exclusive end of [from, to) in whole seconds, rounded up: rollups are keyed by
// the second their minute starts, so a query at 18:00:00.4 must read the rollup keyed 18:00:00
// (truncating made the current minute vanish during its first second).
func endUnix(to time.Time) int64 {
	sec := to.Unix()
	if to.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// Summary returns the totals of [from, to).
func (s *Stats) Summary(from, to time.Time, n int) (*Summary, error) {
	a, res, from, to, err := s.collect(from, to)
	if err != nil {
		return nil, err
	}
	sm := &Summary{From: from.UTC(), To: to.UTC(), Resolution: res, Requests: a.requests,
		RPS: rate(a.requests, to.Sub(from)), Status: a.status, StatusClass: classes(a.status),
		Cache: map[string]uint64{}, Limits: map[string]map[string]uint64{},
		BytesIn: a.bytesIn, BytesOut: a.bytesOut,
		TopPaths: a.topList(dimPath, n), TopIPs: a.topList(dimIP, n), Store: s.storeStatus()}
	for i, c := range a.cache {
		sm.Cache[CacheResult(i).String()] = c
	}
	sm.CacheHitRatio, sm.CachedShare = hitRatio(&a.cache), ratio(a.cache[CacheHit]+a.cache[CacheStale], a.requests)
	for rule, c := range a.limits {
		m := map[string]uint64{}
		for i, v := range c {
			if v != 0 {
				m[LimitResult(i).String()] = v
			}
		}
		sm.Limits[rule] = m
		sm.Limited += c[LimitLimited] + c[LimitDenied]
	}
	sm.Latency.Total = quantiles(&a.total)
	sm.Latency.Upstream = quantiles(&a.upstream)
	return sm, nil
}

// stepOf returns the length of a named step.
func stepOf(step string) (time.Duration, error) {
	switch step {
	case "minute":
		return time.Minute, nil
	case "hour":
		return time.Hour, nil
	case "day":
		return 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("must be minute, hour or day")
}

// Series returns per-step points over [from, to), empty steps included.
// Minute steps read minute rollups; hour and day steps read hour rollups.
func (s *Stats) Series(step string, from, to time.Time) (*Series, error) {
	d, err := stepOf(step)
	if err != nil {
		return nil, &ParamError{Param: "step", Value: step, Reason: err.Error()}
	}
	from, to = from.UTC().Truncate(d), to.UTC()
	if n := int(to.Sub(from) / d); n > maxPoints {
		return nil, &ParamError{Param: "step", Value: step, Reason: fmt.Sprintf("range holds %d steps, at most %d: use a larger step or a shorter range", n, maxPoints)}
	}
	bucket := bucketHours
	if d == time.Minute {
		bucket = bucketMinutes
	}
	sr := &Series{Step: step, From: from, To: to, Points: []Point{}}
	cur, a := from, newAgg()
	emit := func() {
		sr.Points = append(sr.Points, point(cur, d, a))
		cur, a = cur.Add(d), newAgg()
	}
	err = s.read(bucket, from.Unix(), endUnix(to), func(r *rollup) {
		for !time.Unix(r.Start, 0).Before(cur.Add(d)) {
			emit()
		}
		a.addRollup(r)
	})
	for cur.Before(to) {
		emit()
	}
	return sr, err
}

// point summarises one step.
func point(t time.Time, d time.Duration, a *agg) Point {
	return Point{T: t.Unix(), Time: t, Requests: a.requests, RPS: rate(a.requests, d),
		StatusClass: classes(a.status), CacheHitRatio: hitRatio(&a.cache),
		Limited: a.limitedTotal(), P50ms: ms(a.total.quantile(.5)),
		P90ms: ms(a.total.quantile(.9)), P99ms: ms(a.total.quantile(.99))}
}

// limitedTotal is the number of limited and denied requests, all rules.
func (a *agg) limitedTotal() uint64 {
	var n uint64
	for _, c := range a.limits {
		n += c[LimitLimited] + c[LimitDenied]
	}
	return n
}

// Top returns the n heaviest keys of a dimension ("path", "ip", "ip_path") over [from, to).
func (s *Stats) Top(by string, from, to time.Time, n int) (*Top, error) {
	d := -1
	for i, name := range dimNames {
		if name == by {
			d = i
		}
	}
	if d < 0 {
		return nil, &ParamError{Param: "by", Value: by, Reason: "must be path, ip or ip_path"}
	}
	a, res, from, to, err := s.collect(from, to)
	if err != nil {
		return nil, err
	}
	return &Top{By: by, From: from.UTC(), To: to.UTC(), Resolution: res, Items: a.topList(d, n)}, nil
}

// periodOf returns the UTC calendar period holding t and its label.
func periodOf(group string, t time.Time) (time.Time, string) {
	t = t.UTC()
	switch group {
	case "year":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC), t.Format("2006")
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC), t.Format("2006-01")
	case "day":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), t.Format("2006-01-02")
	}
	return t.Truncate(time.Hour), t.Format("2006-01-02T15")
}

// StatusByPeriod returns status code counts per calendar period (group is
// year, month, day or hour, in UTC) over [from, to), from hour rollups.
// Periods without requests are omitted.
func (s *Stats) StatusByPeriod(group string, from, to time.Time) (*StatusReport, error) {
	switch group {
	case "year", "month", "day", "hour":
	default:
		return nil, &ParamError{Param: "group", Value: group, Reason: "must be year, month, day or hour"}
	}
	from = from.UTC().Truncate(time.Hour)
	rep := &StatusReport{Group: group, From: from, To: to.UTC(), Periods: []StatusPeriod{}}
	var cur *StatusPeriod
	err := s.read(bucketHours, from.Unix(), endUnix(to), func(r *rollup) {
		start, label := periodOf(group, time.Unix(r.Start, 0))
		if cur == nil || cur.Period != label {
			rep.Periods = append(rep.Periods, StatusPeriod{Period: label, Start: start, Status: map[string]uint64{}})
			cur = &rep.Periods[len(rep.Periods)-1]
		}
		cur.Requests += r.Requests
		for k, v := range r.Status {
			cur.Status[k] += v
		}
	})
	for i := range rep.Periods {
		rep.Periods[i].StatusClass = classes(rep.Periods[i].Status)
	}
	return rep, err
}

func classes(status map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range status {
		out[statusKeyClass(k)] += v
	}
	return out
}

func hitRatio(c *[numCacheResults]uint64) float64 {
	hit := c[CacheHit] + c[CacheStale]
	return ratio(hit, hit+c[CacheMiss])
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func quantiles(h *latencyHist) Quantiles {
	return Quantiles{Count: h.total(), P50ms: ms(h.quantile(.5)), P90ms: ms(h.quantile(.9)),
		P99ms: ms(h.quantile(.99)), MeanMs: ms(h.mean())}
}
