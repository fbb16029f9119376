package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// scenario is one workload of issue 8.
type scenario struct {
	Name    string   `json:"name"`
	Title   string   `json:"title"`
	Kind    string   `json:"kind"` // "wrk" or "rate" (vegeta)
	Path    string   `json:"path,omitempty"`
	Script  string   `json:"script,omitempty"` // plain, mix, flood
	Targets []string `json:"targets"`
	Rounds  int      `json:"rounds"`
	Dur     string   `json:"duration"`
	dur     time.Duration
	series  bool // record RSS once a second
}

// sample is one measured run of one target in one scenario.
type sample struct {
	Scenario string      `json:"scenario"`
	Target   string      `json:"target"`
	Round    int         `json:"round"`
	Wrk      *wrkResult  `json:"wrk,omitempty"`
	Rate     *rateResult `json:"rate,omitempty"`

	Requests         int64   `json:"requests"`
	RPS              float64 `json:"rps"`
	P50              float64 `json:"p50_ms"`
	P99              float64 `json:"p99_ms"`
	P999             float64 `json:"p999_ms"`
	Errors           int64   `json:"errors"` // socket errors and timeouts
	Non2xx           int64   `json:"non_2xx"`
	ProxyCPU         float64 `json:"proxy_cpu_seconds"`
	ProxyCPUPerReq   float64 `json:"proxy_cpu_us_per_req"`
	UpstreamCPUPerRq float64 `json:"upstream_cpu_us_per_req"`
	LoadCPUPerReq    float64 `json:"loadgen_cpu_us_per_req"`
	UpstreamRequests int64   `json:"upstream_requests"` // what reached mockmeli during the run

	RSSStartMB float64        `json:"rss_start_mb"`
	RSSEndMB   float64        `json:"rss_end_mb"`
	RSSMaxMB   float64        `json:"rss_max_mb"`
	RSSSeries  []rssPoint     `json:"rss_series,omitempty"`
	Statuses   map[string]int `json:"status_sample,omitempty"`
	Err        string         `json:"error,omitempty"`
}

type rssPoint struct {
	Second float64 `json:"s"`
	MB     float64 `json:"mb"`
}

// harness holds the running servers and the options.
type harness struct {
	opt      options
	upstream *target
	targets  map[string]*target
	scripts  map[string]string
	progress io.Writer
	started  time.Time
	planned  time.Duration // total load time planned, for the ETA
	spent    time.Duration
	done     int
	total    int
}

// runScenario runs sc: a warm-up per target, then rounds with the targets
// interleaved (rotated each round so no target always goes first).
func (h *harness) runScenario(ctx context.Context, sc *scenario) []sample {
	var ts []*target
	for _, name := range sc.Targets {
		if t, ok := h.targets[name]; ok {
			ts = append(ts, t)
		}
	}
	for _, t := range ts {
		if h.opt.quick {
			break
		}
		if err := h.warm(ctx, sc, t); err != nil {
			fmt.Fprintf(h.progress, "  warm-up %s/%s: %v\n", sc.Name, t.name, err)
		}
	}
	var out []sample
	for round := 1; round <= sc.Rounds; round++ {
		for i := range ts {
			if ctx.Err() != nil {
				return out
			}
			t := ts[(i+round-1)%len(ts)]
			s := h.measure(ctx, sc, t, round)
			h.done++
			h.spent += sc.dur
			h.report(sc, s)
			out = append(out, s)
		}
	}
	return out
}

// warm fills caches and connection pools before the measured rounds.
func (h *harness) warm(ctx context.Context, sc *scenario, t *target) error {
	d := time.Second
	if sc.Kind == "rate" {
		runVegeta(ctx, t.rateTargets(), min(2000, h.opt.rate), d)
		return nil
	}
	_, err := runWrk(ctx, h.opt.threads, h.opt.conns, d, h.scripts[sc.Script], t.base+sc.Path)
	return err
}

// measure runs the load once against t and reads the target's and the
// upstream's CPU and memory before and after.
func (h *harness) measure(ctx context.Context, sc *scenario, t *target, round int) sample {
	s := sample{Scenario: sc.Name, Target: t.name, Round: round}
	pids := t.pids()
	up0 := upstreamCount(h.upstream.base)
	u0, m0 := measure(pids), measure([]int{h.upstream.proc.pid()})
	s.RSSStartMB = mb(u0.rss)
	stopRSS := sampleRSS(pids, sc.series, &s)

	var loadCPU float64
	switch sc.Kind {
	case "rate":
		r := runVegeta(ctx, t.rateTargets(), h.opt.rate, sc.dur)
		s.Rate = &r
		s.Requests, s.RPS = int64(r.Requests), r.Throughput
		s.P50, s.P99, s.P999 = r.P50, r.P99, r.P999
		for code, n := range r.Codes {
			if code == "0" {
				s.Errors += int64(n)
			} else if code < "200" || code >= "400" {
				s.Non2xx += int64(n)
			}
		}
		loadCPU = r.CPU
	default:
		r, err := runWrk(ctx, h.opt.threads, h.opt.conns, sc.dur, h.scripts[sc.Script], t.base+sc.Path)
		if err != nil {
			s.Err = err.Error()
		}
		s.Wrk = &r
		s.Requests, s.RPS = r.Requests, r.RPS
		s.P50, s.P99, s.P999 = r.P50, r.P99, r.P999
		s.Errors, s.Non2xx = r.SockErrs, r.Non2xx
		loadCPU = r.CPU
	}

	stopRSS()
	u1, m1 := measure(pids), measure([]int{h.upstream.proc.pid()})
	s.RSSEndMB = mb(u1.rss)
	s.ProxyCPU = u1.cpu - u0.cpu
	s.UpstreamRequests = upstreamCount(h.upstream.base) - up0
	if s.Requests > 0 {
		n := float64(s.Requests)
		s.ProxyCPUPerReq = s.ProxyCPU / n * 1e6
		s.UpstreamCPUPerRq = (m1.cpu - m0.cpu) / n * 1e6
		s.LoadCPUPerReq = loadCPU / n * 1e6
	}
	if sc.Script == "mix" && round == sc.Rounds {
		s.Statuses = sampleStatuses(t.base, mixTargets(2000, 0.03, 99))
	}
	return s
}

// sampleRSS samples the RSS of pids every 250 ms into s.RSSMaxMB, and once a
// second into s.RSSSeries when series is set, until the returned stop is called.
func sampleRSS(pids []int, series bool, s *sample) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		begin := time.Now()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			r := mb(measure(pids).rss)
			s.RSSMaxMB = max(s.RSSMaxMB, r)
			if series && i%4 == 0 {
				s.RSSSeries = append(s.RSSSeries, rssPoint{Second: time.Since(begin).Round(time.Second).Seconds(), MB: r})
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// upstreamCount reads mockmeli's request counter (-1 on error).
func upstreamCount(base string) int64 {
	resp, err := http.Get(base + "/__stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct{ Requests int64 }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return -1
	}
	return st.Requests
}

// report prints one progress line.
func (h *harness) report(sc *scenario, s sample) {
	left := h.planned - h.spent
	line := fmt.Sprintf("[%2d/%d %5s, ~%s left] %-11s %-9s r%d  %9.0f rps  p50 %6.2f ms  p99 %7.2f ms  cpu %5.1f µs/req  rss %5.1f MB",
		h.done, h.total, time.Since(h.started).Round(time.Second), left.Round(time.Second),
		sc.Name, s.Target, s.Round, s.RPS, s.P50, s.P99, s.ProxyCPUPerReq, s.RSSEndMB)
	if s.Errors > 0 || s.Non2xx > 0 {
		line += fmt.Sprintf("  errors %d non-2xx %d", s.Errors, s.Non2xx)
	}
	if s.Err != "" {
		line += "  FAILED: " + s.Err
	}
	fmt.Fprintln(h.progress, line)
}
