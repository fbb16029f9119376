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

// rateResult is what one constant-rate run reports.
type rateResult struct {
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

// runVegeta sends rate requests per second for d, cycling through targets.
func runVegeta(ctx context.Context, base string, targets []mixTarget, rate int, d time.Duration) rateResult {
	var next, items atomic.Uint64
	targeter := func(tgt *vegeta.Target) error {
		t := targets[(next.Add(1)-1)%uint64(len(targets))]
		if t.dynamic {
			t = item(items.Add(1))
		}
		tgt.Method, tgt.URL, tgt.Header = "GET", base+t.path, http.Header{"X-Forwarded-For": {t.xff}}
		return nil
	}
	atk := vegeta.NewAttacker(
		vegeta.KeepAlive(true),
		vegeta.Timeout(5*time.Second),
		vegeta.Connections(10000),
		vegeta.MaxBody(1<<20),
	)
	cpu0 := selfCPU()
	var m vegeta.Metrics
	results := atk.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, d, "bench")
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
		Rate: m.Rate, Throughput: m.Throughput, Requests: m.Requests, Success: m.Success,
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
