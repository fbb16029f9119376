package main

import (
	"fmt"
	"strings"
	"time"
)

// finish evaluates the targets of issue 8 and adds the capacity arithmetic.
func (r *report) finish() {
	r.Elapsed = time.Since(r.h.started).Round(time.Second).String()
	r.checkCache()
	r.checkPassthrough()
	r.notePassthrough()
	r.checkFlood()
	r.sanity()
	r.checkRate()
}

// get returns the medians of target in scenario sc, if it ran and served.
func (r *report) get(sc, target string) (summary, bool) {
	for _, s := range r.Scenarios {
		if s.Name == sc {
			m, ok := s.Medians[target]
			return m, ok && m.RPS > 0
		}
	}
	return summary{}, false
}

// ratio is the ratio of a's median rps to b's in scenario sc.
func (r *report) ratio(sc, a, b string) (float64, bool) {
	x, ok1 := r.get(sc, a)
	y, ok2 := r.get(sc, b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return x.RPS / y.RPS, true
}

func (r *report) addCheck(what, got string, passed bool) {
	r.Checks = append(r.Checks, check{what, got, passed})
}

func (r *report) checkCache() {
	m, ok := r.get("cache", "meliproxy")
	if !ok {
		return
	}
	r.addCheck("cache hit above 50,000 rps", fmt.Sprintf("%.0f rps", m.RPS), m.RPS > 50000)
	if x, ok := r.ratio("cache", "meliproxy", "bare"); ok {
		r.addCheck("cache hit ≥ 0.85 × bare ceiling", fmt.Sprintf("%.2f", x), x >= 0.85)
	}
	if x, ok := r.ratio("cache", "meliproxy", "nginx"); ok {
		r.addCheck("cache hit ≥ 1.1 × nginx cache hit", fmt.Sprintf("%.2f", x), x >= 1.1)
	}
}

func (r *report) checkPassthrough() {
	m, ok := r.get("passthrough", "meliproxy")
	if !ok {
		return
	}
	if x, ok := r.ratio("passthrough", "meliproxy", "nginx"); ok {
		r.addCheck("pass-through ≥ 1.25 × nginx with limit_req", fmt.Sprintf("%.2f", x), x >= 1.25)
	}
	if x, ok := r.ratio("passthrough", "meliproxy", "haproxy"); ok {
		r.addCheck("pass-through ≥ 1.1 × HAProxy", fmt.Sprintf("%.2f", x), x >= 1.1)
	}
	if n, ok := r.get("passthrough", "nginx"); ok {
		r.addCheck("pass-through proxy CPU per request below nginx's",
			fmt.Sprintf("%.1f µs vs %.1f µs", m.CPUPerReq, n.CPUPerReq), m.CPUPerReq < n.CPUPerReq)
	}
}

// notePassthrough writes the pass-through arithmetic (CPU per request →
// cores for 50k rps) and what the fasthttp-min calibration says about it.
func (r *report) notePassthrough() {
	m, ok := r.get("passthrough", "meliproxy")
	if !ok || m.CPUPerReq <= 0 {
		return
	}
	var per []string
	for _, name := range []string{"meliproxy", "nginx", "haproxy", "fasthttp-min"} {
		if t, ok := r.get("passthrough", name); ok && t.CPUPerReq > 0 {
			per = append(per, fmt.Sprintf("%s %.1f µs → %.2f cores", name, t.CPUPerReq, 50000*t.CPUPerReq/1e6))
		}
	}
	all := m.CPUPerReq + m.LoadCPUPer + m.UpCPUPerReq
	r.Notes = append(r.Notes, fmt.Sprintf(
		"Pass-through arithmetic (proxy CPU per request → cores the proxy alone needs for 50,000 rps): %s. "+
			"With meliproxy the load generator (wrk) spent %.1f µs and the upstream %.1f µs per request: %.1f µs in all, "+
			"so 50k rps of pass-through through meliproxy needs %.2f cores for the whole setup, against the %.0f µs per request that %d cores allow.",
		strings.Join(per, "; "), m.LoadCPUPer, m.UpCPUPerReq, all, 50000*all/1e6,
		float64(r.Machine.Cores)*1e6/50000, r.Machine.Cores))
	f, ok := r.get("passthrough", "fasthttp-min")
	if !ok || f.CPUPerReq <= 0 {
		return
	}
	own := m.CPUPerReq - f.CPUPerReq
	cmp := "below"
	verdict := "so meliproxy's own work is what keeps it above nginx"
	if n, ok := r.get("passthrough", "nginx"); ok {
		if f.CPUPerReq >= n.CPUPerReq {
			cmp = "above"
			verdict = "so the substrate alone already misses \"CPU below nginx\": trimming meliproxy's own work cannot reach it, " +
				"only a cheaper substrate (or fewer syscalls per request) can"
		}
		verdict = fmt.Sprintf("The substrate alone is %s nginx's %.1f µs, %s.", cmp, n.CPUPerReq, verdict)
	} else {
		verdict = ""
	}
	rpsRatio, _ := r.ratio("passthrough", "meliproxy", "fasthttp-min")
	r.Notes = append(r.Notes, fmt.Sprintf(
		"Calibration: fasthttp-min (a fasthttp.Server handing each request to HostClient.DoTimeout, nothing else) spends %.1f µs of CPU per pass-through request at %.0f rps. "+
			"That is what the Go/fasthttp substrate costs here; meliproxy's own work (limiter, stats, header rules, error mapping) adds %.1f µs (%.0f%% of its %.1f µs). "+
			"meliproxy/fasthttp-min: %.2f in rps, %.2f in CPU per request. %s",
		f.CPUPerReq, f.RPS, own, 100*own/m.CPUPerReq, m.CPUPerReq, rpsRatio, m.CPUPerReq/f.CPUPerReq, verdict))
}

func (r *report) checkFlood() {
	for _, s := range r.Scenarios {
		if s.Name != "flood" {
			continue
		}
		for _, smp := range s.Samples {
			if len(smp.RSSSeries) < 4 {
				continue
			}
			mid, end := smp.RSSSeries[len(smp.RSSSeries)/2].MB, smp.RSSSeries[len(smp.RSSSeries)-1].MB
			r.addCheck(smp.Target+": RSS flat under the flood (second half grows < 10%)",
				fmt.Sprintf("%.1f → %.1f MB over %d distinct IPs", mid, end, smp.Requests), end <= mid*1.10)
		}
	}
}

// rateSample returns target's constant-rate sample, if it ran.
func (r *report) rateSample(target string) (sample, bool) {
	for _, s := range r.Scenarios {
		if s.Name != "rate" {
			continue
		}
		for _, smp := range s.Samples {
			if smp.Target == target && smp.Rate != nil {
				return smp, true
			}
		}
	}
	return sample{}, false
}

// checkRate evaluates "no errors at a constant rate" at the rate that ran,
// and works out what issue 8's 20k rps would need from the CPU measured.
func (r *report) checkRate() {
	for _, target := range []string{"meliproxy", "nginx"} {
		s, ok := r.rateSample(target)
		if !ok {
			continue
		}
		rr := s.Rate
		r.addCheck(fmt.Sprintf("%s: constant %d rps for %s, rate held, no errors", target, rr.Asked, r.h.opt.rateDur),
			fmt.Sprintf("sent %.0f rps, %d errors, %d non-2xx, p99 %.2f ms", rr.Rate, s.Errors, s.Non2xx, s.P99),
			rr.held() && s.Errors == 0 && s.Non2xx == 0)
		all := s.LoadCPUPerReq + s.ProxyCPUPerReq + s.UpstreamCPUPerRq
		r.Notes = append(r.Notes, fmt.Sprintf(
			"Constant-rate arithmetic (%s): at %d rps asked, per request vegeta spent %.1f µs, %s %.1f µs and mockmeli %.1f µs: %.1f µs in all, %.2f of the %d cores here at the rate sent. "+
				"Issue 8's 20,000 rps of this mix would need %.2f cores in all (%.2f for %s alone, %.2f for vegeta's net/http client).",
			target, rr.Asked, s.LoadCPUPerReq, target, s.ProxyCPUPerReq, s.UpstreamCPUPerRq, all, rr.Rate*all/1e6, r.Machine.Cores,
			20000*all/1e6, 20000*s.ProxyCPUPerReq/1e6, target, 20000*s.LoadCPUPerReq/1e6))
	}
	if _, ok := r.rateSample("meliproxy"); !ok {
		return
	}
	why := "set with -rate"
	if r.h.opt.rate == defaultRate && !r.h.opt.quick {
		why = fmt.Sprintf("the default, the highest rate at which both nginx and meliproxy held the rate with 0 errors on this %d-core machine, "+
			"which the proxy shares with vegeta and mockmeli (docs/benchmarks.md); -rate 20000 runs issue 8's rate", r.Machine.Cores)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("The constant-rate run used %d rps, %s. vegeta is bounded to %d workers and connections, so an overloaded target shows as a rate not held instead of a connection spiral.",
		r.h.opt.rate, why, rateWorkers))
}
