package main

import (
	"context"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// rateWorkers bounds the constant-rate attacker: at most this many requests
// in flight, on at most this many keep-alive connections. vegeta's defaults
// (unbounded workers, a new connection whenever none is idle) turn a latency
// rise into a spiral: more goroutines and connections, more CPU on a machine
// whose cores the load generator shares with the proxy and the upstream,
// higher latency still. On 2026-12-03 that collapsed both meliproxy and nginx
// at 20k rps (2-4k rps sent, 90k timeouts). With a bound the attacker just
// falls behind the rate, and the report says so (sent rps < asked rps).
// Little's law: 256 in flight hold 8000 rps up to 32 ms of latency.
const rateWorkers = 256

// rateResult is what one constant-rate run reports.
type rateResult struct {
	Asked      int            `json:"asked_rate"` // requests per second asked of vegeta
	Rate       float64        `json:"rate"`       // requests sent per second
	Throughput float64        `json:"throughput"` // successful responses per second
	Requests   uint64         `json:"requests"`
	Success    float64        `json:"success"` // fraction of 2xx/3xx
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	P999       float64        `json:"p999_ms"`
	Max        float64        `json:"max_ms"`
	Codes      map[string]int `json:"status_codes"`
	Errors     []string       `json:"errors,omitempty"`
	CPU        float64        `json:"cpu_seconds"` // the harness's own CPU (vegeta runs in-process)
}

// held reports whether vegeta sent the rate it was asked for (within 1%).
func (r rateResult) held() bool { return r.Rate >= 0.99*float64(r.Asked) }

// rateItems is the number of distinct ordinary /items/ requests the
// constant-rate targeter cycles through. Each has its own client address, so
// a key of the items rule (10/m: one request every 6 s) comes round every
// rateItems / (0.17 × rate) seconds: 9.6 s at 20k rps, 19 s at 10k. It never
// trips, as mixLua's never-repeating addresses do not.
const rateItems = 1 << 15

// rateTargets are the constant-rate run's requests, built once so that the
// targeter copies a struct instead of formatting a URL and allocating a
// header map per request (net/http already costs vegeta ~30 µs a request).
// The Header maps are shared by concurrent requests: vegeta's
// Target.Request only reads them (it copies each value into the request).
type rateTargets struct {
	mix   []vegeta.Target // the mix without hot clients; URL "" stands for the next item
	items []vegeta.Target // ordinary /items/ requests, each from its own address
}

// newRateTargets builds the mix of mixTargets (no over-limit clients: the
// run must see no 429s) against base.
func newRateTargets(base string, seed uint64) *rateTargets {
	rt := &rateTargets{items: make([]vegeta.Target, rateItems)}
	for _, t := range mixTargets(8192, 0, seed) {
		if t.dynamic {
			rt.mix = append(rt.mix, vegeta.Target{})
			continue
		}
		rt.mix = append(rt.mix, vegetaTarget(base, t))
	}
	for k := range rt.items {
		rt.items[k] = vegetaTarget(base, item(uint64(k)))
	}
	return rt
}

func vegetaTarget(base string, t mixTarget) vegeta.Target {
	return vegeta.Target{Method: "GET", URL: base + t.path, Header: http.Header{"X-Forwarded-For": {t.xff}}}
}

// targeter cycles through the mix; each call copies one prebuilt target.
func (rt *rateTargets) targeter() vegeta.Targeter {
	var next, items atomic.Uint64
	return func(tgt *vegeta.Target) error {
		t := &rt.mix[(next.Add(1)-1)%uint64(len(rt.mix))]
		if t.URL == "" {
			t = &rt.items[(items.Add(1)-1)%uint64(len(rt.items))]
		}
		*tgt = *t
		return nil
	}
}

// runVegeta sends rate requests per second of rt for d.
func runVegeta(ctx context.Context, rt *rateTargets, rate int, d time.Duration) rateResult {
	atk := vegeta.NewAttacker(
		vegeta.KeepAlive(true),
		vegeta.Timeout(5*time.Second),
		vegeta.Workers(rateWorkers/4),
		vegeta.MaxWorkers(rateWorkers),
		vegeta.Connections(rateWorkers),
		vegeta.MaxConnections(rateWorkers),
		// Bodies are drained, not kept: the results need only status and latency.
		vegeta.MaxBody(0),
	)
	cpu0 := selfCPU()
	var m vegeta.Metrics
	// An empty attack name: vegeta then adds no X-Vegeta-Attack header.
	results := atk.Attack(rt.targeter(), vegeta.Rate{Freq: rate, Per: time.Second}, d, "")
	stopped := false
	for res := range results {
		if ctx.Err() != nil && !stopped {
			atk.Stop()
			stopped = true
		}
		m.Add(res)
	}
	m.Close()
	r := rateResult{
		Asked: rate, Rate: m.Rate, Throughput: m.Throughput, Requests: m.Requests, Success: m.Success,
		P50: ms(m.Latencies.P50), P90: ms(m.Latencies.P90), P99: ms(m.Latencies.P99),
		P999: ms(m.Latencies.Quantile(0.999)), Max: ms(m.Latencies.Max),
		Codes: m.StatusCodes, CPU: selfCPU() - cpu0,
	}
	sort.Strings(m.Errors)
	if len(m.Errors) > 10 {
		m.Errors = m.Errors[:10]
	}
	r.Errors = m.Errors
	return r
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// selfCPU is the harness's own CPU seconds so far.
func selfCPU() float64 {
	c, _ := cpuSeconds(os.Getpid())
	return c
}

// sampleStatuses sends targets through base from a few workers and tallies
// status codes: the mix scenario's wrk runs cannot afford a per-response Lua
// callback, so this is how the report shows which non-2xx codes they were.
func sampleStatuses(base string, targets []mixTarget) map[string]int {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	type res struct{ code string }
	ch := make(chan res, len(targets))
	work := make(chan mixTarget)
	for w := 0; w < 8; w++ {
		go func() {
			for t := range work {
				req, _ := http.NewRequest("GET", base+t.path, nil)
				req.Header.Set("X-Forwarded-For", t.xff)
				resp, err := c.Do(req)
				if err != nil {
					ch <- res{"error"}
					continue
				}
				resp.Body.Close()
				ch <- res{strconv.Itoa(resp.StatusCode)}
			}
		}()
	}
	for i, t := range targets {
		if t.dynamic {
			t = item(uint64(1<<20 + i)) // addresses the load runs did not use
		}
		work <- t
	}
	close(work)
	out := map[string]int{}
	for range targets {
		out[(<-ch).code]++
	}
	c.CloseIdleConnections()
	return out
}
