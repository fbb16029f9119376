package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// report is the whole run: what ran where, every sample, and the summaries.
type report struct {
	Date      time.Time         `json:"date"`
	Command   string            `json:"command"`
	Machine   machine           `json:"machine"`
	Options   map[string]string `json:"options"`
	Targets   []targetInfo      `json:"targets"`
	Scenarios []scenarioResult  `json:"scenarios"`
	Checks    []check           `json:"checks"`
	Notes     []string          `json:"notes"`
	Elapsed   string            `json:"elapsed"`

	h *harness
}

type machine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	Commit  string `json:"commit"`
	Wrk     string `json:"wrk"`
	MemInfo string `json:"memory"`
}

type targetInfo struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Notes   []string `json:"notes,omitempty"`
	Config  string   `json:"config,omitempty"`
}

// scenarioResult holds a scenario's samples and per-target medians.
type scenarioResult struct {
	scenario
	Samples []sample           `json:"samples"`
	Medians map[string]summary `json:"medians"`
	Ratios  map[string]float64 `json:"ratios"` // "meliproxy/nginx" → ratio of median rps
}

// summary is the median over rounds of each metric for one target.
type summary struct {
	Rounds       int            `json:"rounds"`
	RPS          float64        `json:"rps"`
	RPSAll       []float64      `json:"rps_rounds"`
	P50          float64        `json:"p50_ms"`
	P99          float64        `json:"p99_ms"`
	P999         float64        `json:"p999_ms"`
	Errors       int64          `json:"errors"`
	Non2xx       int64          `json:"non_2xx"`
	CPUPerReq    float64        `json:"proxy_cpu_us_per_req"`
	UpCPUPerReq  float64        `json:"upstream_cpu_us_per_req"`
	LoadCPUPer   float64        `json:"loadgen_cpu_us_per_req"`
	UpstreamFrac float64        `json:"upstream_fraction"` // upstream requests / client requests
	RSSEndMB     float64        `json:"rss_end_mb"`
	RSSMaxMB     float64        `json:"rss_max_mb"`
	Statuses     map[string]int `json:"status_sample,omitempty"`
}

// check is one target of issue 8, evaluated on this run.
type check struct {
	What   string `json:"what"`
	Got    string `json:"got"`
	Passed bool   `json:"passed"`
}

func newReport(o options, h *harness, args []string) *report {
	r := &report{
		Date:    time.Now(),
		Command: strings.TrimSpace("go run ./bench " + strings.Join(args, " ")),
		Machine: probeMachine(),
		Options: map[string]string{
			"duration": o.duration.String(), "rounds": fmt.Sprint(o.rounds), "connections": fmt.Sprint(o.conns),
			"threads": fmt.Sprint(o.threads), "rate": fmt.Sprint(o.rate), "rate_duration": o.rateDur.String(),
			"flood_duration": o.floodDur.String(), "quick": fmt.Sprint(o.quick),
		},
		h: h,
	}
	for _, name := range allTargets {
		if t, ok := h.targets[name]; ok {
			r.Targets = append(r.Targets, targetInfo{t.name, t.version, t.notes, t.config})
		}
	}
	return r
}

func probeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		m.MemInfo = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	out, _ := exec.Command("wrk", "--version").CombinedOutput()
	m.Wrk, _, _ = strings.Cut(strings.TrimSpace(string(out)), " Copyright")
	return m
}

// add summarises one scenario's samples.
func (r *report) add(sc *scenario, samples []sample) {
	res := scenarioResult{scenario: *sc, Samples: samples, Medians: map[string]summary{}, Ratios: map[string]float64{}}
	byTarget := map[string][]sample{}
	for _, s := range samples {
		byTarget[s.Target] = append(byTarget[s.Target], s)
	}
	for name, ss := range byTarget {
		res.Medians[name] = summarize(ss)
	}
	if m, ok := res.Medians["meliproxy"]; ok && m.RPS > 0 {
		for _, other := range []string{"nginx", "haproxy", "fasthttp-min", "bare"} {
			if o, ok := res.Medians[other]; ok && o.RPS > 0 {
				res.Ratios["meliproxy/"+other] = m.RPS / o.RPS
			}
		}
	}
	r.Scenarios = append(r.Scenarios, res)
}

func summarize(ss []sample) summary {
	pick := func(f func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		return median(v)
	}
	sm := summary{Rounds: len(ss)}
	for _, s := range ss {
		sm.RPSAll = append(sm.RPSAll, round1(s.RPS))
		sm.Errors += s.Errors
		sm.Non2xx += s.Non2xx
		sm.RSSMaxMB = max(sm.RSSMaxMB, s.RSSMaxMB)
		if s.Statuses != nil {
			sm.Statuses = s.Statuses
		}
	}
	sm.RPS = pick(func(s sample) float64 { return s.RPS })
	sm.P50 = pick(func(s sample) float64 { return s.P50 })
	sm.P99 = pick(func(s sample) float64 { return s.P99 })
	sm.P999 = pick(func(s sample) float64 { return s.P999 })
	sm.CPUPerReq = pick(func(s sample) float64 { return s.ProxyCPUPerReq })
	sm.UpCPUPerReq = pick(func(s sample) float64 { return s.UpstreamCPUPerRq })
	sm.LoadCPUPer = pick(func(s sample) float64 { return s.LoadCPUPerReq })
	sm.UpstreamFrac = pick(func(s sample) float64 {
		if s.Requests == 0 {
			return 0
		}
		return float64(s.UpstreamRequests) / float64(s.Requests)
	})
	sm.RSSEndMB = pick(func(s sample) float64 { return s.RSSEndMB })
	return sm
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// sanity notes what the measurements say about the features the config
// asks for: a config that is accepted is not proof that the cache serves hits
// or that the limiter rejects.
func (r *report) sanity() {
	for _, target := range []string{"meliproxy", "nginx"} {
		if m, ok := r.get("cache", target); ok && m.UpstreamFrac > 0.1 {
			r.Notes = append(r.Notes, fmt.Sprintf("Warning: in the cache scenario %.2f of %s's requests reached the upstream: its cache did not serve them.", m.UpstreamFrac, target))
		}
		if m, ok := r.get("mix", target); ok && m.Statuses != nil && m.Statuses["429"] == 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("Warning: %s answered no 429 to the mix's over-limit clients: its limiter did not enforce the items rule.", target))
		}
	}
}

// table renders the summaries for the terminal and the Markdown report.
func (r *report) table() string {
	var b strings.Builder
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "### %s\n\n%s. %s per run, %d round(s)", s.Name, s.Title, s.Dur, s.Rounds)
		if s.Kind == "wrk" {
			fmt.Fprintf(&b, ", wrk -t%d -c%d", r.h.opt.threads, r.h.opt.conns)
		}
		b.WriteString(".\n\n")
		b.WriteString("| target | rps (median) | rps per round | p50 ms | p99 ms | p99.9 ms | errors | non-2xx | proxy CPU µs/req | upstream hits/req | RSS MB (end / max) |\n")
		b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, name := range allTargets {
			m, ok := s.Medians[name]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "| %s | %.0f | %s | %.2f | %.2f | %.2f | %d | %d | %.1f | %.3f | %.1f / %.1f |\n",
				name, m.RPS, joinFloats(m.RPSAll), m.P50, m.P99, m.P999, m.Errors, m.Non2xx, m.CPUPerReq, m.UpstreamFrac, m.RSSEndMB, m.RSSMaxMB)
		}
		if len(s.Ratios) > 0 {
			keys := make([]string, 0, len(s.Ratios))
			for k := range s.Ratios {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteString("\nRatios of median rps:")
			for _, k := range keys {
				fmt.Fprintf(&b, " %s **%.2f**;", k, s.Ratios[k])
			}
			b.WriteString("\n")
		}
		for _, name := range allTargets {
			if m, ok := s.Medians[name]; ok && m.Statuses != nil {
				fmt.Fprintf(&b, "\nStatus sample after the last round (%s, 2000 requests of the mix, 3%% from over-limit clients): %s\n", name, formatCodes(m.Statuses))
			}
		}
		for _, smp := range s.Samples {
			if len(smp.RSSSeries) > 0 {
				fmt.Fprintf(&b, "\nRSS of %s during the flood (s: MB): %s\n", smp.Target, formatSeries(smp.RSSSeries))
			}
			if smp.Rate != nil {
				fmt.Fprintf(&b, "\n%s: sent %.0f rps, %d requests, success %.4f, codes %s, p90 %.2f ms, max %.2f ms", smp.Target,
					smp.Rate.Rate, smp.Rate.Requests, smp.Rate.Success, formatCodes(smp.Rate.Codes), smp.Rate.P90, smp.Rate.Max)
				if len(smp.Rate.Errors) > 0 {
					fmt.Fprintf(&b, ", errors: %s", strings.Join(smp.Rate.Errors, "; "))
				}
				b.WriteString("\n")
			}
			if smp.Err != "" {
				fmt.Fprintf(&b, "\n%s round %d failed: %s\n", smp.Target, smp.Round, smp.Err)
			}
		}
		b.WriteString("\n")
	}
	if len(r.Checks) > 0 {
		b.WriteString("### Targets of issue 8 on this run\n\n| target | got | |\n|---|---|---|\n")
		for _, c := range r.Checks {
			mark := "FAIL"
			if c.Passed {
				mark = "pass"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.What, c.Got, mark)
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		b.WriteString(n + "\n\n")
	}
	return b.String()
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmt.Sprintf("%.0f", f)
	}
	return strings.Join(s, ", ")
}

func formatCodes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func formatSeries(pts []rssPoint) string {
	parts := make([]string, len(pts))
	for i, p := range pts {
		parts[i] = fmt.Sprintf("%.0f: %.1f", p.Second, p.MB)
	}
	return strings.Join(parts, ", ")
}

// markdown renders the full report.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# meliproxy benchmark, %s\n\n", r.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Command: `%s` (%s)\n", r.Command, r.Elapsed)
	fmt.Fprintf(&b, "- Machine: %s, %d cores, %s RAM, Linux %s; %s; %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.MemInfo, r.Machine.Kernel, r.Machine.Go, r.Machine.Wrk)
	fmt.Fprintf(&b, "- Commit: %s\n", r.Machine.Commit)
	b.WriteString("- Everything (load generator, upstream mockmeli, proxy) shares this machine's cores on loopback; targets are interleaved round by round and medians are quoted. " +
		"CPU per request is the target's utime+stime (all processes, e.g. nginx master and workers) over the run divided by the requests the load generator (wrk, or vegeta in the rate scenario) completed.\n\n")
	b.WriteString("## Targets\n\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "- **%s**: %s", t.Name, t.Version)
		if len(t.Notes) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(t.Notes, "; "))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Results\n\n")
	b.WriteString(r.table())
	b.WriteString("## Configs\n\n")
	for _, t := range r.Targets {
		if t.Config != "" {
			fmt.Fprintf(&b, "%s:\n\n```\n%s```\n\n", t.Name, t.Config)
		}
	}
	return b.String()
}

// write stores the report as <out>/<date>.md and .json.
func (r *report) write(out string) (md, js string, err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", "", err
	}
	name := r.Date.Format("2006-01-02-150405")
	if r.h.opt.quick {
		name += "-quick"
	}
	md, js = filepath.Join(out, name+".md"), filepath.Join(out, name+".json")
	if err := os.WriteFile(md, []byte(r.markdown()), 0o644); err != nil {
		return "", "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	return md, js, os.WriteFile(js, append(data, '\n'), 0o644)
}
