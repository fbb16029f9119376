package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// ParamError is a bad query parameter; handlers answer it with 400 and
// {"error": ..., "param": ...}.
type ParamError struct {
	Param, Value, Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("parameter %s=%q: %s", e.Param, e.Value, e.Reason)
}

// Register adds the stats routes to r. Handlers are plain (no auth): the
// caller wraps the router with its own middleware.
//
//	GET /metrics                 Prometheus text
//	GET /stats                   HTML page
//	GET /stats.json              the page's data
//	GET /api/v1/stats/summary    ?from&to&n
//	GET /api/v1/stats/series     ?step=minute|hour|day&from&to
//	GET /api/v1/stats/top        ?by=path|ip|ip_path&from&to&n
//	GET /api/v1/stats/status     ?group=year|month|day|hour&from&to
func (s *Stats) Register(r *router.Router) {
	r.GET("/metrics", s.handleMetrics)
	r.GET("/stats", s.handlePage)
	r.GET("/stats.json", s.handlePageJSON)
	r.GET("/api/v1/stats/summary", s.handleSummary)
	r.GET("/api/v1/stats/series", s.handleSeries)
	r.GET("/api/v1/stats/top", s.handleTop)
	r.GET("/api/v1/stats/status", s.handleStatus)
}

func (s *Stats) handleMetrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	s.WritePrometheus(ctx)
}

func (s *Stats) handleSummary(ctx *fasthttp.RequestCtx) {
	from, to, n, err := s.rangeAndN(ctx.QueryArgs())
	if err != nil {
		writeErr(ctx, err)
		return
	}
	v, err := s.Summary(from, to, n)
	respond(ctx, v, err)
}

func (s *Stats) handleSeries(ctx *fasthttp.RequestCtx) {
	q := ctx.QueryArgs()
	step := argOr(q, "step", "minute")
	d, err := stepOf(step)
	if err != nil {
		writeErr(ctx, &ParamError{Param: "step", Value: step, Reason: err.Error()})
		return
	}
	from, to, err := parseRange(argOr(q, "from", ""), argOr(q, "to", ""), s.clock(), min(d*60, 90*24*time.Hour))
	if err != nil {
		writeErr(ctx, err)
		return
	}
	v, err := s.Series(step, from, to)
	respond(ctx, v, err)
}

func (s *Stats) handleTop(ctx *fasthttp.RequestCtx) {
	from, to, n, err := s.rangeAndN(ctx.QueryArgs())
	if err != nil {
		writeErr(ctx, err)
		return
	}
	v, err := s.Top(argOr(ctx.QueryArgs(), "by", "path"), from, to, n)
	respond(ctx, v, err)
}

func (s *Stats) handleStatus(ctx *fasthttp.RequestCtx) {
	q := ctx.QueryArgs()
	from, to, err := parseRange(argOr(q, "from", "all"), argOr(q, "to", ""), s.clock(), 0)
	if err != nil {
		writeErr(ctx, err)
		return
	}
	v, err := s.StatusByPeriod(argOr(q, "group", "month"), from, to)
	respond(ctx, v, err)
}

// rangeAndN reads ?from, ?to (default: the last hour) and ?n (default: top_n).
func (s *Stats) rangeAndN(q *fasthttp.Args) (from, to time.Time, n int, err error) {
	from, to, err = parseRange(argOr(q, "from", ""), argOr(q, "to", ""), s.clock(), time.Hour)
	if err == nil {
		n, err = parseN(argOr(q, "n", ""), s.cfg.TopN, s.keep)
	}
	return from, to, n, err
}

// argOr is query parameter name, or def when it is absent or empty.
func argOr(q *fasthttp.Args, name, def string) string {
	if v := q.Peek(name); len(v) > 0 {
		return string(v)
	}
	return def
}

// respond writes v as JSON, or err: it is the one place stats handlers map
// errors to statuses.
func respond(ctx *fasthttp.RequestCtx, v any, err error) {
	if err != nil {
		writeErr(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, v)
}

// writeErr answers 400 for a ParamError (naming the parameter), else 500.
func writeErr(ctx *fasthttp.RequestCtx, err error) {
	body := map[string]string{"error": err.Error()}
	code := fasthttp.StatusInternalServerError
	var pe *ParamError
	if errors.As(err, &pe) {
		code = fasthttp.StatusBadRequest
		body["param"] = pe.Param
	}
	writeJSON(ctx, code, body)
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	enc := json.NewEncoder(ctx)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		ctx.Error(`{"error":"encode response"}`, fasthttp.StatusInternalServerError)
	}
}

// parseRange parses from and to; an empty to means now and an empty from
// means to minus def. See parseTime for the accepted forms. from must be
// before to.
func parseRange(fromArg, toArg string, now time.Time, def time.Duration) (time.Time, time.Time, error) {
	to := now
	if toArg != "" {
		t, err := parseTime("to", toArg, now)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		to = t
	}
	from := to.Add(-def)
	if fromArg != "" {
		t, err := parseTime("from", fromArg, now)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		from = t
	}
	if from.Unix() < 0 {
		from = time.Unix(0, 0) // nothing is stored before the epoch
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, &ParamError{Param: "from", Value: fromArg, Reason: "must be before to (" + to.UTC().Format(time.RFC3339) + ")"}
	}
	return from, to, nil
}

// maxUnix bounds accepted times to year 9999 so later arithmetic cannot overflow.
const maxUnix = 253402300799

// parseTime accepts RFC 3339 ("2026-03-14T09:00:00Z"), unix seconds
// ("1773478800"), a duration relative to now ("-90m", "-7d"), "now", and
// "all" (the unix epoch, i.e. everything stored).
func parseTime(param, v string, now time.Time) (time.Time, error) {
	bad := func(reason string) (time.Time, error) {
		return time.Time{}, &ParamError{Param: param, Value: v, Reason: reason}
	}
	switch {
	case v == "now":
		return now, nil
	case v == "all":
		return time.Unix(0, 0), nil
	case strings.HasPrefix(v, "-"):
		d, err := parseRelative(v[1:])
		if err != nil {
			return bad(err.Error())
		}
		if t := now.Add(-d); t.Unix() >= 0 {
			return t, nil
		}
		return time.Unix(0, 0), nil
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		if sec < 0 || sec > maxUnix {
			return bad("unix seconds out of range")
		}
		return time.Unix(sec, 0), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return bad(`want RFC 3339 (2026-03-14T09:00:00Z), unix seconds, a relative duration (-1h, -7d), "now" or "all"`)
	}
	if t.Unix() < 0 || t.Unix() > maxUnix {
		return bad("time out of range")
	}
	return t, nil
}

// parseRelative parses a Go duration or a whole number of days ("7d"),
// at most 100 years.
func parseRelative(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, errors.New("relative days must be a whole number like -7d")
		}
		if n > 36500 {
			return 0, errors.New("relative time is more than 100 years")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < 0 {
			return 0, errors.New(`want a relative duration like -90m or -7d`)
		}
	}
	if d > 36500*24*time.Hour {
		return 0, errors.New("relative time is more than 100 years")
	}
	return d, nil
}

// parseN parses the n parameter: def when empty, 1..limit otherwise.
func parseN(v string, def, limit int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > limit {
		return 0, &ParamError{Param: "n", Value: v, Reason: fmt.Sprintf("must be a whole number from 1 to %d", limit)}
	}
	return n, nil
}
