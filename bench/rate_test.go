package main

import (
	"net"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/valyala/fasthttp"
)

func TestRateTargets(t *testing.T) {
	t.Parallel()
	rt := newRateTargets("http://127.0.0.1:1", 1)
	next := rt.targeter()
	var tgt vegeta.Target
	seen := map[string]bool{}
	items := 0
	const n = 20000
	for range n {
		if err := next(&tgt); err != nil {
			t.Fatal(err)
		}
		if tgt.Method != "GET" || !strings.HasPrefix(tgt.URL, "http://127.0.0.1:1/") || len(tgt.Header["X-Forwarded-For"]) != 1 {
			t.Fatalf("bad target %+v", tgt)
		}
		if strings.Contains(tgt.URL, "/items/") {
			key := tgt.URL + " " + tgt.Header["X-Forwarded-For"][0]
			if seen[key] {
				t.Fatalf("item %s repeats within %d requests", key, n)
			}
			seen[key] = true
			items++
		}
	}
	// The items rule allows one request per 6 s per address+path: at 20k rps
	// an item must not come round sooner.
	share := float64(items) / n
	if every := float64(rateItems) / (share * 20000); every < 6 {
		t.Errorf("items repeat every %.1f s at 20k rps (share %.3f), the 10/m rule needs ≥ 6 s", every, share)
	}
}

func TestMinProxy(t *testing.T) {
	t.Parallel()
	up := serveOn(t, &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusTeapot)
		ctx.SetBodyString("up " + string(ctx.Path()))
	}})
	px := serveOn(t, newMinProxy(up))
	code, body, err := fasthttp.GetTimeout(nil, "http://"+px+"/users/1", 5*time.Second)
	if err != nil || code != fasthttp.StatusTeapot || string(body) != "up /users/1" {
		t.Errorf("got %d %q %v", code, body, err)
	}
	down := newMinProxy("127.0.0.1:1") // nothing listens on port 1
	if code, _, _ := fasthttp.GetTimeout(nil, "http://"+serveOn(t, down)+"/", 5*time.Second); code != fasthttp.StatusBadGateway {
		t.Errorf("dead upstream: got %d, want 502", code)
	}
	if err := run([]string{minProxyFlag, "127.0.0.1:0"}); err == nil {
		t.Error("-serve-minproxy without -upstream accepted")
	}
}

// serveOn serves srv on a loopback port until the test ends and returns host:port.
func serveOn(t *testing.T, srv *fasthttp.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown below
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// TestRateChecks checks that "no errors at a constant rate" is judged at the
// rate that ran, and that the calibration note compares the substrates.
func TestRateChecks(t *testing.T) {
	t.Parallel()
	h := &harness{opt: options{rate: 7000, rateDur: 30 * time.Second}, started: time.Now()}
	r := &report{h: h, Machine: machine{Cores: 2}}
	rateSample := func(target string, sent float64, errs int64) sample {
		return sample{Target: target, Requests: 240000, RPS: sent, Errors: errs, ProxyCPUPerReq: 50, LoadCPUPerReq: 90, UpstreamCPUPerRq: 15,
			Rate: &rateResult{Asked: 7000, Rate: sent}}
	}
	r.add(&scenario{Name: "rate"}, []sample{rateSample("meliproxy", 6999, 0), rateSample("nginx", 6000, 0)})
	pass := func(target string, cpu float64) sample {
		return sample{Target: target, Requests: 1, RPS: 1e6 / cpu, ProxyCPUPerReq: cpu}
	}
	r.add(&scenario{Name: "passthrough"}, []sample{pass("meliproxy", 55), pass("nginx", 35), pass("fasthttp-min", 50)})
	r.finish()
	want := map[string]bool{
		"meliproxy: constant 7000 rps for 30s, rate held, no errors": true,
		"nginx: constant 7000 rps for 30s, rate held, no errors":     false, // 6000 sent: not held
		"pass-through proxy CPU per request below nginx's":           false,
	}
	for _, c := range r.Checks {
		if w, ok := want[c.What]; ok {
			if c.Passed != w {
				t.Errorf("%s: passed %v, want %v (%s)", c.What, c.Passed, w, c.Got)
			}
			delete(want, c.What)
		}
	}
	if len(want) > 0 {
		t.Errorf("checks missing: %v", want)
	}
	notes := strings.Join(r.Notes, "\n")
	for _, s := range []string{"20,000 rps of this mix would need 3.10 cores", "adds 5.0 µs", "substrate alone is above nginx's 35.0 µs", "used 7000 rps, set with -rate"} {
		if !strings.Contains(notes, s) {
			t.Errorf("notes lack %q:\n%s", s, notes)
		}
	}
}
