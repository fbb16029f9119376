package stats

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// serve registers s on a router behind an in-memory listener and returns a
// GET helper.
func serve(t *testing.T, s *Stats) func(uri string) (int, string) {
	t.Helper()
	r := router.New()
	s.Register(r)
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: r.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(); ln.Close() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	return func(uri string) (int, string) {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://admin" + uri)
		if err := c.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), string(resp.Body())
	}
}

func getJSON(t *testing.T, get func(string) (int, string), uri string, v any) {
	t.Helper()
	code, body := get(uri)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", uri, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", uri, err, body)
	}
}

// TestOriginalQuestions answers what the original Django/DynamoDB design
// answered: all stats, the most common path, the cache percentage, and
// status codes by year and month.
func TestOriginalQuestions(t *testing.T) {
	t.Parallel()
	s, clk := newTestCfg(t, Config{FlushInterval: time.Minute, TopN: 5}, Options{})
	dec := time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC)
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	playMix(s, dec) // 100 requests in December 2025
	clk.Set(jan.Add(30 * time.Second))
	for range 7 {
		s.Record(&Record{Now: jan.Add(10 * time.Second), Status: 503, Path: []byte("/orders")})
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	get := serve(t, s)

	t.Run("all stats", func(t *testing.T) {
		var sm Summary
		getJSON(t, get, "/api/v1/stats/summary?from=all", &sm)
		if sm.Requests != 107 || sm.Status["503"] != 7 || sm.Resolution != "hour" {
			t.Errorf("summary: %d requests, %d 503s, %s; want 107, 7, hour", sm.Requests, sm.Status["503"], sm.Resolution)
		}
	})
	t.Run("most common path", func(t *testing.T) {
		var top Top
		getJSON(t, get, "/api/v1/stats/top?by=path&n=1&from=all", &top)
		if len(top.Items) != 1 || top.Items[0] != (TopEntry{Key: "/items/MLA1", Count: 58}) {
			t.Errorf("top path = %+v", top.Items)
		}
		getJSON(t, get, "/api/v1/stats/top?by=ip_path&n=1&from=2025-12-31T23:00:00Z&to=2026-01-01T00:00:00Z", &top)
		if len(top.Items) != 1 || top.Items[0].Key != "10.0.0.1 /items/MLA1" || top.Items[0].Count != 53 {
			t.Errorf("top ip_path = %+v", top.Items)
		}
	})
	t.Run("cache percentage", func(t *testing.T) {
		var sm Summary
		getJSON(t, get, "/api/v1/stats/summary?from="+strconv.FormatInt(dec.Unix(), 10)+"&to=-10s", &sm)
		if sm.Resolution != "minute" || sm.Requests != 107 {
			t.Errorf("minute summary: %s, %d requests", sm.Resolution, sm.Requests)
		}
		if want := 53.0 / 88; sm.CacheHitRatio != want {
			t.Errorf("cache hit ratio = %v, want %v", sm.CacheHitRatio, want)
		}
		if want := 53.0 / 107; sm.CachedShare != want {
			t.Errorf("cached share = %v, want %v", sm.CachedShare, want)
		}
	})
	t.Run("status by year and month", func(t *testing.T) {
		for _, tc := range []struct{ group, first, second string }{
			{"year", "2025", "2026"}, {"month", "2025-12", "2026-01"}, {"day", "2025-12-31", "2026-01-01"},
		} {
			var rep StatusReport
			getJSON(t, get, "/api/v1/stats/status?group="+tc.group, &rep)
			if len(rep.Periods) != 2 {
				t.Fatalf("%s: %+v", tc.group, rep.Periods)
			}
			p0, p1 := rep.Periods[0], rep.Periods[1]
			if p0.Period != tc.first || p0.Status["200"] != 83 || p0.StatusClass["4xx"] != 12 || p1.Period != tc.second || p1.Status["503"] != 7 || p1.Requests != 7 {
				t.Errorf("%s: %+v", tc.group, rep.Periods)
			}
		}
	})
	t.Run("series", func(t *testing.T) {
		var sr Series
		getJSON(t, get, "/api/v1/stats/series?step=minute&from=2025-12-31T23:58:00Z&to=2026-01-01T00:01:00Z", &sr)
		if len(sr.Points) != 3 || sr.Points[1].Requests != 100 || sr.Points[2].StatusClass["5xx"] != 7 {
			t.Errorf("series: %+v", sr.Points)
		}
	})
}

func TestBadParams(t *testing.T) {
	t.Parallel()
	s, _ := newTest(t, "", Options{})
	get := serve(t, s)
	tests := []struct{ uri, param string }{
		{"/api/v1/stats/summary?from=yesterday", "from"},
		{"/api/v1/stats/summary?to=2026-13-01T00:00:00Z", "to"},
		{"/api/v1/stats/summary?from=-1h&to=-2h", "from"},
		{"/api/v1/stats/summary?n=0", "n"},
		{"/api/v1/stats/summary?n=1000", "n"},
		{"/api/v1/stats/series?step=week", "step"},
		{"/api/v1/stats/series?step=minute&from=-30d", "step"},
		{"/api/v1/stats/top?by=country", "by"},
		{"/api/v1/stats/top?from=-5x", "from"},
		{"/api/v1/stats/status?group=week", "group"},
		{"/api/v1/stats/status?from=99999999999999", "from"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			code, body := get(tt.uri)
			var e struct{ Error, Param string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || code != 400 || e.Param != tt.param || !strings.Contains(e.Error, tt.param) {
				t.Errorf("%d %s, want 400 naming %q", code, body, tt.param)
			}
		})
	}
}

// TestPageShowsNumbers checks /stats renders the numbers /stats.json returns.
func TestPageShowsNumbers(t *testing.T) {
	t.Parallel()
	info := PageInfo{ConfigVersion: "cfg-7f3a", Rules: []RuleInfo{{ID: "search-ip", Rate: "10/s", Action: "limit", Scope: "ip"}}}
	s, clk := newTest(t, "", Options{Version: "v1.2.3", Info: func() PageInfo { return info }})
	playMix(s, t0)
	clk.Set(t0.Add(2 * time.Minute))
	s.Flush()
	get := serve(t, s)
	var p PageData
	getJSON(t, get, "/stats.json", &p)
	if p.Summary.Requests != 100 || len(p.Series.Points) != 60 || p.Info.ConfigVersion != "cfg-7f3a" || len(p.TopPairs) == 0 {
		t.Fatalf("stats.json: %d requests, %d points, %+v", p.Summary.Requests, len(p.Series.Points), p.Info)
	}
	code, html := get("/stats")
	if code != 200 {
		t.Fatalf("/stats: %d", code)
	}
	for _, want := range []string{
		`id="tReq">100<`, `id="tHit">60.2%<`, "v1.2.3", "cfg-7f3a", ">search-ip<", ">10/s<",
		">/items/MLA1<", ">58<", ">10.0.0.1<", ">53<", `id="t5xx">5<`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("/stats lacks %q", want)
		}
	}
	// The SVG namespace is an identifier, not a fetch.
	selfOnly := strings.ReplaceAll(html, `"http://www.w3.org/2000/svg"`, "")
	for _, bad := range []string{"http://", "https://", "//", "<link", "src=", "@import", "url("} {
		if strings.Contains(selfOnly, bad) {
			t.Errorf("/stats is not self-contained: contains %q", bad)
		}
	}
}

// TestPromtool runs `promtool check metrics` over /metrics. Only "no help
// text" findings are accepted. Without promtool the test skips locally and
// fails in CI (CI=true).
func TestPromtool(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (Debian package prometheus); CI must run this check")
		}
		t.Skip("promtool not installed")
	}
	s, _ := newTest(t, "", Options{Version: `v0.1.0 "quoted"`})
	playMix(s, t0)
	get := serve(t, s)
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "meliproxy_build_info") {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	path := filepath.Join(t.TempDir(), "metrics.txt")
	os.WriteFile(path, []byte(body), 0o600)
	f, _ := os.Open(path)
	defer f.Close()
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.HasSuffix(line, "no help text") {
			t.Errorf("promtool finding: %s", line)
		}
	}
}
