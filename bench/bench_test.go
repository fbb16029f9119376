package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const wrkOutput = `Running 2s test @ http://127.0.0.1:8080/categories/MLA97994
  2 threads and 128 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.95ms    1.02ms  22.33ms   74.08%
    Req/Sec    33.39k     2.67k   40.04k    71.00%
  Latency Distribution
     50%    1.82ms
     75%    2.41ms
     90%    3.11ms
     99%    5.01ms
  132883 requests in 2.00s, 262.31MB read
  Non-2xx or 3xx responses: 123
Requests/sec:  66435.56
Transfer/sec:    131.13MB
WRKJSON {"requests":132883,"duration_us":2000512,"bytes":275054810,"connect":0,"read":2,"write":0,"status":123,"timeout":1,"p50_us":1820,"p90_us":3110,"p99_us":5010,"p999_us":9120,"max_us":22330,"mean_us":1950.3}
`

func TestParseWrk(t *testing.T) {
	t.Parallel()
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{RPS: 66435.56, Requests: 132883, Non2xx: 123, SockErrs: 3, P50: 1.82, P90: 3.11, P99: 5.01, P999: 9.12, Max: 22.33}
	if r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	for _, bad := range []string{"", "Requests/sec: 1\n", strings.Replace(wrkOutput, `"p50_us":1820`, `"p50_us":x`, 1)} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("no error for %.40q", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestMixTargets(t *testing.T) {
	t.Parallel()
	const n = 100000
	counts := map[string]int{}
	for _, tg := range mixTargets(n, 0.03, 1) {
		switch {
		case tg.dynamic:
			counts["items"]++
		case tg.path == "/items/MLA1100000001":
			counts["hot"]++
		case strings.HasPrefix(tg.path, "/categories/"), strings.HasPrefix(tg.path, "/sites"):
			counts["catalog"]++
		case strings.HasPrefix(tg.path, "/users/"):
			counts["users"]++
		default:
			t.Fatalf("unexpected target %+v", tg)
		}
	}
	for kind, want := range map[string]float64{"hot": 0.03, "catalog": 0.97 * 0.73, "items": 0.97 * 0.17, "users": 0.97 * 0.10} {
		if got := float64(counts[kind]) / n; got < want*0.9 || got > want*1.1 {
			t.Errorf("%s share %.3f, want about %.3f", kind, got, want)
		}
	}
	if a, b := item(1), item(2); a.xff == b.xff || a.path == b.path {
		t.Errorf("items repeat: %+v %+v", a, b)
	}
}

func TestProcReaders(t *testing.T) {
	t.Parallel()
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		t.Error(err)
	}
	if rss, err := rssKB(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("rss %d, %v", rss, err)
	}
}

// TestNginxConfig checks the generated nginx config with nginx -t when nginx
// is installed.
func TestNginxConfig(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx not installed")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	cfg := nginxConfig(dir, "127.0.0.1:1", "127.0.0.1:2", os.Geteuid() == 0)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags([]string{"-quick", "-scenarios", "cache, mix"})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 1 || len(o.scenarios) != 2 || len(scenarioDefs(o)) != 2 {
		t.Errorf("quick options %+v", o)
	}
	d, err := parseFlags(nil)
	if err != nil || d.rate != defaultRate || !contains(d.targets, "fasthttp-min") {
		t.Errorf("defaults %+v, %v", d, err)
	}
	for _, bad := range [][]string{{"-scenarios", "nope"}, {"-targets", "caddy"}, {"-rounds", "0"}, {"-duration", "10ms"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
