package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	RPS      float64 `json:"rps"` // "Requests/sec:" line
	Requests int64   `json:"requests"`
	Non2xx   int64   `json:"non_2xx_3xx"`   // "Non-2xx or 3xx responses:" line
	SockErrs int64   `json:"socket_errors"` // connect + read + write + timeout
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	P999     float64 `json:"p999_ms"`
	Max      float64 `json:"max_ms"`
	CPU      float64 `json:"cpu_seconds"` // wrk's own user+system time
}

// wrkSummary is the line reportLua prints.
type wrkSummary struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"`
	Timeout    int64   `json:"timeout"`
	P50        float64 `json:"p50_us"`
	P90        float64 `json:"p90_us"`
	P99        float64 `json:"p99_us"`
	P999       float64 `json:"p999_us"`
	Max        float64 `json:"max_us"`
}

// runWrk runs wrk against url for d and parses its report. wrk is stopped by
// its PID if it overruns d by 30 s.
func runWrk(ctx context.Context, threads, conns int, d time.Duration, script, url string, args ...string) (wrkResult, error) {
	argv := []string{
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s",
		"--timeout", "5s", "--latency", "-s", script, url,
	}
	if len(args) > 0 {
		argv = append(append(argv, "--"), args...)
	}
	cmd := exec.Command("wrk", argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return wrkResult{}, fmt.Errorf("start wrk: %w (install it: apt-get install wrk)", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-waited
		return wrkResult{}, ctx.Err()
	case <-time.After(d + 30*time.Second):
		_ = cmd.Process.Kill()
		<-waited
		return wrkResult{}, fmt.Errorf("wrk overran %v; killed", d)
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s%s", err, out.String(), errb.String())
	}
	r, perr := parseWrk(out.String())
	if perr != nil {
		return r, perr
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = tv(ru.Utime) + tv(ru.Stime)
	}
	return r, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

var (
	reRPS    = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reNon2xx = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+(\d+)`)
	reTotal  = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
)

// parseWrk reads wrk's standard report plus the WRKJSON line of reportLua.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output has no Requests/sec line:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	_, js, ok := strings.Cut(out, "WRKJSON ")
	if !ok {
		return r, fmt.Errorf("wrk output has no WRKJSON line (script without reportLua?):\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	var s wrkSummary
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return r, fmt.Errorf("wrk WRKJSON line: %v: %s", err, js)
	}
	r.Requests = s.Requests
	r.SockErrs = s.Connect + s.Read + s.Write + s.Timeout
	r.P50, r.P90, r.P99, r.P999, r.Max = s.P50/1e3, s.P90/1e3, s.P99/1e3, s.P999/1e3, s.Max/1e3
	return r, nil
}
