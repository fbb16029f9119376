package limiter

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// t0 is the fake clock's origin; tests step it explicitly.
var t0 = time.Unix(1_700_000_000, 0)

func newLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 10_000 // keep test tables small
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newReq builds a request; hdrs are name, value pairs.
func newReq(method, uri string, hdrs ...string) *fasthttp.Request {
	r := new(fasthttp.Request)
	r.Header.SetMethod(method)
	r.SetRequestURI(uri)
	for i := 0; i+1 < len(hdrs); i += 2 {
		r.Header.Add(hdrs[i], hdrs[i+1])
	}
	return r
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func check(l *Limiter, now time.Time, r *fasthttp.Request, a netip.Addr) *Decision {
	d := new(Decision)
	l.Check(now, r, a, d)
	return d
}

// admitted counts how many of n identical requests at now pass.
func admitted(l *Limiter, now time.Time, r *fasthttp.Request, a netip.Addr, n int) int {
	ok := 0
	var d Decision
	for range n {
		if l.Check(now, r, a, &d); !d.Rejected() {
			ok++
		}
	}
	return ok
}

func TestRateUnits(t *testing.T) {
	t.Parallel()
	for _, rate := range []string{"3/s", "3/m", "3/h", "3/d", "3/10s"} {
		t.Run(rate, func(t *testing.T) {
			t.Parallel()
			rt, _ := ParseRate(rate)
			l := newLimiter(t, Config{Rules: []RuleConfig{{ID: "r", Rate: rate, Key: []string{"ip"}}}})
			r, a := newReq("GET", "/x"), ip("1.1.1.1")
			if n := admitted(l, t0, r, a, 10); n != 3 {
				t.Fatalf("full bucket admitted %d, want 3", n)
			}
			d := check(l, t0, r, a)
			step := time.Duration(rt.Interval()) // Period/3 rounded up to the ns
			if d.Verdict != Limit || d.Rule != "r" || d.RetryAfter != step {
				t.Fatalf("4th: %v rule %q retry %v, want limit r %v", d.Verdict, d.Rule, d.RetryAfter, step)
			}
			if n := admitted(l, t0.Add(step-1), r, a, 1); n != 0 {
				t.Fatal("admitted 1ns before a token was due")
			}
			if n := admitted(l, t0.Add(step), r, a, 5); n != 1 {
				t.Fatalf("after one interval admitted %d, want 1", n)
			}
			if n := admitted(l, t0.Add(10*rt.Period), r, a, 10); n != 3 {
				t.Fatalf("after idling admitted %d, want 3 (burst does not grow)", n)
			}
		})
	}
}

func TestBurstAndCost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		rule       RuleConfig
		atOnce     int
		after1s    int
		wantRemain string // RateLimit after the first request
	}{
		{"burst above rate", RuleConfig{Rate: "1/s", Burst: 5}, 5, 1, `"r";r=4;t=1`},
		{"burst below rate", RuleConfig{Rate: "10/s", Burst: 2}, 2, 2, `"r";r=1;t=1`},
		{"cost 3", RuleConfig{Rate: "10/s", Cost: 3}, 3, 3, `"r";r=7;t=1`},
		{"cost equals burst", RuleConfig{Rate: "4/s", Burst: 4, Cost: 4}, 1, 1, `"r";r=0;t=1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.rule.ID = "r"
			l := newLimiter(t, Config{Rules: []RuleConfig{tt.rule}})
			r, a := newReq("GET", "/"), ip("1.1.1.1")
			d := check(l, t0, r, a)
			var h fasthttp.ResponseHeader
			d.WriteHeaders(&h)
			if got := string(h.Peek("RateLimit")); got != tt.wantRemain {
				t.Errorf("RateLimit = %q, want %q", got, tt.wantRemain)
			}
			if n := 1 + admitted(l, t0, r, a, 20); n != tt.atOnce {
				t.Errorf("admitted at once %d, want %d", n, tt.atOnce)
			}
			if n := admitted(l, t0.Add(time.Second), r, a, 20); n != tt.after1s {
				t.Errorf("admitted 1s later %d, want %d", n, tt.after1s)
			}
		})
	}
}

func TestRefund(t *testing.T) {
	t.Parallel()
	shared := RuleConfig{ID: "shared", Paths: []string{"/items/*"}, Rate: "100/m"}
	perIP := RuleConfig{ID: "per-ip", Paths: []string{"/items/*"}, Key: []string{"ip"}, Rate: "2/m"}
	shadow := RuleConfig{ID: "shadow", Rate: "100/m", Action: "shadow"}
	for _, order := range [][]RuleConfig{{shared, shadow, perIP}, {perIP, shadow, shared}} {
		t.Run(order[0].ID+"-first", func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, Config{Rules: order})
			r, a := newReq("GET", "/items/MLA1"), ip("1.1.1.1")
			if n := admitted(l, t0, r, a, 5); n != 2 {
				t.Fatalf("admitted %d, want 2", n)
			}
			for _, id := range []string{"shared", "shadow"} {
				if rem, _, err := l.KeyState(t0, id, nil); err != nil || rem != 98 {
					t.Errorf("%s remaining = %d, %v; want 98 (rejected requests refunded)", id, rem, err)
				}
			}
			if n := admitted(l, t0, r, ip("2.2.2.2"), 2); n != 2 {
				t.Errorf("another IP admitted %d, want 2", n)
			}
		})
	}
}

func TestShadow(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Rules: []RuleConfig{
		{ID: "would-block", Rate: "1/m", Action: "shadow"},
		{ID: "also", Rate: "1/m", Action: "shadow", Key: []string{"ip"}},
		{ID: "real", Rate: "100/m"},
	}})
	r, a := newReq("GET", "/"), ip("1.1.1.1")
	d := check(l, t0, r, a)
	if d.Verdict != Allow || len(d.Shadowed()) != 0 {
		t.Fatalf("first: %v shadowed %v", d.Verdict, d.Shadowed())
	}
	d = check(l, t0, r, a)
	if d.Verdict != Allow || fmt.Sprint(d.Shadowed()) != "[would-block also]" {
		t.Fatalf("second: %v shadowed %v, want allow [would-block also]", d.Verdict, d.Shadowed())
	}
	var h fasthttp.ResponseHeader
	d.WriteHeaders(&h)
	if got := string(h.Peek("RateLimit-Policy")); got != `"real";q=100;w=60` {
		t.Errorf("RateLimit-Policy = %q: shadow rules must not appear", got)
	}
	var buf bytes.Buffer
	l.WriteMetrics(&buf)
	for _, want := range []string{
		`meliproxy_limiter_requests_total{rule="would-block",result="shadow_limited"} 1`,
		`meliproxy_limiter_requests_total{rule="would-block",result="allowed"} 1`,
		`meliproxy_limiter_requests_total{rule="real",result="allowed"} 2`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}

func TestDenyExempt(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{
		Deny:   []string{"6.6.6.0/24", "2001:db8:bad::/48"},
		Exempt: []string{"6.6.6.6", "7.7.7.7/32"},
		Rules:  []RuleConfig{{ID: "r", Rate: "1/m"}},
	})
	r := newReq("GET", "/")
	for _, c := range []struct {
		ip   string
		want Verdict
	}{
		{"6.6.6.6", Deny}, // deny wins over exempt
		{"6.6.6.1", Deny},
		{"::ffff:6.6.6.1", Deny},
		{"2001:db8:bad::1", Deny},
		{"7.7.7.7", Exempt},
		{"7.7.7.7", Exempt},
		{"1.1.1.1", Allow},
		{"1.1.1.1", Limit},
	} {
		if d := check(l, t0, r, ip(c.ip)); d.Verdict != c.want {
			t.Errorf("%s: %v, want %v", c.ip, d.Verdict, c.want)
		}
	}
	d := check(l, t0, r, ip("6.6.6.1"))
	if body := string(d.AppendBody(nil)); body != `{"error":"forbidden","status":403}` || d.Status() != 403 {
		t.Errorf("deny body %q status %d", body, d.Status())
	}
}

func TestRunTimeDeny(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{})
	r := newReq("GET", "/")
	until := time.Now().Add(time.Hour)
	if err := l.AddDeny(netip.MustParsePrefix("5.5.5.0/24"), until, "scraper"); err != nil {
		t.Fatal(err)
	}
	if err := l.AddDeny(netip.MustParsePrefix("2001:db8::1/128"), time.Time{}, "forever"); err != nil {
		t.Fatal(err)
	}
	if err := l.AddDeny(netip.Prefix{}, time.Time{}, ""); err == nil {
		t.Error("invalid prefix accepted")
	}
	now := time.Now()
	for a, want := range map[string]Verdict{"5.5.5.5": Deny, "5.5.6.5": Allow, "2001:db8::1": Deny, "2001:db8::2": Allow} {
		if d := check(l, now, r, ip(a)); d.Verdict != want {
			t.Errorf("%s: %v, want %v", a, d.Verdict, want)
		}
	}
	if d := check(l, until, r, ip("5.5.5.5")); d.Verdict != Allow {
		t.Errorf("at expiry: %v, want allow", d.Verdict)
	}
	list := l.DenyList()
	if len(list) != 2 || list[0].Prefix.String() != "5.5.5.0/24" || list[0].Reason != "scraper" || !list[0].Expires.Equal(until) || !list[1].Expires.IsZero() {
		t.Errorf("DenyList = %+v", list)
	}
	if !l.RemoveDeny(netip.MustParsePrefix("5.5.5.0/24")) || l.RemoveDeny(netip.MustParsePrefix("5.5.5.0/24")) {
		t.Error("RemoveDeny: want true then false")
	}
	if d := check(l, now, r, ip("5.5.5.5")); d.Verdict != Allow {
		t.Errorf("after RemoveDeny: %v", d.Verdict)
	}
	// Update keeps run-time entries.
	if err := l.Update(Config{MaxKeys: 100}); err != nil {
		t.Fatal(err)
	}
	if d := check(l, now, r, ip("2001:db8::1")); d.Verdict != Deny {
		t.Errorf("after Update: %v, want deny", d.Verdict)
	}
}

func TestHeadersAndBody(t *testing.T) {
	t.Parallel()
	rule := RuleConfig{ID: "items-ip", Paths: []string{"/items/*"}, Key: []string{"ip", "path"}, Rate: "10/m"}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("headers=", on), func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, Config{Headers: &on, Rules: []RuleConfig{rule}})
			r, a := newReq("GET", "/items/MLA1"), ip("1.1.1.1")
			var h fasthttp.ResponseHeader
			check(l, t0, r, a).WriteHeaders(&h)
			if on {
				if got := string(h.Peek("RateLimit-Policy")); got != `"items-ip";q=10;w=60` {
					t.Errorf("RateLimit-Policy = %q", got)
				}
				if got := string(h.Peek("RateLimit")); got != `"items-ip";r=9;t=6` {
					t.Errorf("RateLimit = %q", got)
				}
			} else if h.Peek("RateLimit") != nil {
				t.Error("headers disabled but RateLimit set")
			}
			admitted(l, t0, r, a, 9)
			d := check(l, t0.Add(3*time.Second+time.Millisecond), r, a)
			if d.Verdict != Limit || d.Status() != 429 {
				t.Fatalf("11th: %v", d.Verdict)
			}
			h.Reset()
			d.WriteHeaders(&h)
			for name, want := range map[string]string{
				"Retry-After":      "3", // 2.999s, rounded up
				"RateLimit-Policy": `"items-ip";q=10;w=60`,
				"RateLimit":        `"items-ip";r=0;t=3`,
			} {
				if got := string(h.Peek(name)); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if got := string(d.AppendBody(nil)); got != `{"error":"rate limited","rule":"items-ip","status":429,"retry_after":3}` {
				t.Errorf("body = %s", got)
			}
		})
	}
}

// TestShippedRules checks the three example rules end to end at the limiter
// level, loading testdata/rules.toml as cmd/meliproxy would.
func TestShippedRules(t *testing.T) {
	t.Parallel()
	rules, err := LoadRulesFile("testdata/rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimiter(t, Config{Rules: rules, MaxKeys: 50_000})
	a, b, vip := ip("1.1.1.1"), ip("2.2.2.2"), ip("152.152.152.152")

	item1, item2 := newReq("GET", "/items/MLA1"), newReq("GET", "/items/MLA2")
	if n := admitted(l, t0, item1, a, 10); n != 10 {
		t.Fatalf("items: admitted %d, want 10", n)
	}
	if d := check(l, t0, item1, a); d.Verdict != Limit || d.Rule != "items-ip" {
		t.Fatalf("11th /items/MLA1: %v %q", d.Verdict, d.Rule)
	}
	if check(l, t0, item2, a).Rejected() || check(l, t0, item1, b).Rejected() {
		t.Fatal("/items/MLA2 or another IP was limited")
	}

	cat := newReq("GET", "/categories/MLA5725/attributes")
	n := 0
	for i := range 10_001 {
		c := netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)})
		if !check(l, t0, cat, c).Rejected() {
			n++
		}
	}
	if n != 10_000 {
		t.Fatalf("categories admitted %d from distinct IPs, want 10000 (one shared bucket)", n)
	}

	vipReq := newReq("GET", "/sites/MLA")
	if n := admitted(l, t0, vipReq, vip, 1001); n != 1000 {
		t.Fatalf("vip admitted %d, want 1000", n)
	}
	if n := admitted(l, t0, vipReq, a, 2000); n != 2000 {
		t.Fatalf("other IP on /sites admitted %d, want all", n)
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	base := []RuleConfig{
		{ID: "keep", Key: []string{"ip"}, Rate: "3/m"},
		{ID: "change", Key: []string{"ip"}, Rate: "3/m"},
		{ID: "flip", Key: []string{"ip"}, Rate: "3/m", Action: "shadow"},
	}
	l := newLimiter(t, Config{Rules: base})
	r, a := newReq("GET", "/"), ip("1.1.1.1")
	admitted(l, t0, r, a, 3)
	state := func(id string) int {
		rem, _, err := l.KeyState(t0, id, map[string]string{"ip": "1.1.1.1"})
		if err != nil {
			t.Fatal(err)
		}
		return rem
	}
	next := append([]RuleConfig(nil), base...)
	next[1].Rate = "4/m"
	next[2].Action = "enforce"
	next = append(next, RuleConfig{ID: "new", Rate: "3/m"})
	if err := l.Update(Config{Rules: next, MaxKeys: 10_000}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int{"keep": 0, "change": 4, "flip": 0, "new": 3} {
		if got := state(id); got != want {
			t.Errorf("after reload %s remaining %d, want %d", id, got, want)
		}
	}
	// Equivalent spellings (explicit defaults) are not a change.
	next[0].Burst, next[0].Scope = 3, "local"
	if err := l.Update(Config{Rules: next, MaxKeys: 10_000}); err != nil {
		t.Fatal(err)
	}
	if got := state("keep"); got != 0 {
		t.Errorf("explicit defaults reset the bucket: remaining %d", got)
	}
	// A failed update changes nothing.
	bad := append([]RuleConfig(nil), next...)
	bad[0].Rate = "3/x"
	if err := l.Update(Config{Rules: bad, MaxKeys: 10_000}); err == nil {
		t.Fatal("bad config accepted")
	}
	if got := state("keep"); got != 0 || len(l.Rules()) != 4 {
		t.Errorf("failed update changed state: remaining %d, %d rules", got, len(l.Rules()))
	}
	// A new table size resets everything.
	if err := l.Update(Config{Rules: next, MaxKeys: 20_000}); err != nil {
		t.Fatal(err)
	}
	if got := state("keep"); got != 3 {
		t.Errorf("after max_keys change remaining %d, want 3", got)
	}
}

// TestConcurrentExact hammers one key from many goroutines at a fixed time:
// exactly burst/cost requests may pass, and the refunds of a second rule must
// be exact.
func TestConcurrentExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cost int
		want int64
	}{{"cost 1", 1, 500}, {"cost 3", 3, 166}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, Config{Rules: []RuleConfig{
				{ID: "wide", Rate: "100000/m"},
				{ID: "hot", Key: []string{"ip"}, Rate: "1000/s", Burst: 500, Cost: tt.cost},
			}})
			const workers, each = 16, 2000
			var ok atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range workers {
				wg.Go(func() {
					r := newReq("GET", "/")
					var d Decision
					<-start
					for range each {
						if l.Check(t0, r, ip("1.1.1.1"), &d); !d.Rejected() {
							ok.Add(1)
						}
					}
				})
			}
			close(start)
			wg.Wait()
			if got := ok.Load(); got != tt.want {
				t.Fatalf("admitted %d, want exactly %d", got, tt.want)
			}
			if rem, _, _ := l.KeyState(t0, "wide", nil); rem != 100000-int(tt.want) {
				t.Fatalf("wide remaining %d, want %d: refunds were not exact", rem, 100000-tt.want)
			}
		})
	}
}

// TestConcurrentSpan steps time while goroutines hammer: the admitted count
// in a span must never exceed burst + rate × span.
func TestConcurrentSpan(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Rules: []RuleConfig{{ID: "hot", Rate: "100/s", Burst: 10}}})
	var clock atomic.Int64 // ns after t0
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r := newReq("GET", "/")
			var d Decision
			for range 5000 {
				if l.Check(t0.Add(time.Duration(clock.Load())), r, ip("1.1.1.1"), &d); !d.Rejected() {
					ok.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			clock.Add(int64(time.Millisecond))
			time.Sleep(10 * time.Microsecond)
		}
	})
	wg.Wait()
	span := time.Duration(clock.Load())
	if max := 10 + int64(span/(10*time.Millisecond)); ok.Load() > max {
		t.Fatalf("admitted %d in %v, bound %d", ok.Load(), span, max)
	}
}

func TestBoundedMemory(t *testing.T) {
	t.Parallel()
	n := 2_000_000
	if testing.Short() || raceEnabled {
		n = 300_000
	}
	const maxKeys = 100_000
	l := newLimiter(t, Config{MaxKeys: maxKeys, Rules: []RuleConfig{{ID: "per-ip", Key: []string{"ip"}, Rate: "10/m"}}})
	tb := l.set.Load().table
	r := newReq("GET", "/")
	var d Decision
	for i := range n {
		a := netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		now := t0.Add(time.Duration(i) * time.Microsecond) // keys go idle after 6s: both idle reuse and eviction run
		if l.Check(now, r, a, &d); d.Rejected() {
			t.Fatalf("request %d from a new IP was limited", i)
		}
		if i%100_000 == 0 && tb.keys.Load() > maxKeys+8 {
			t.Fatalf("tracked keys %d above cap %d", tb.keys.Load(), maxKeys)
		}
	}
	if k := tb.keys.Load(); k > maxKeys+8 || k < maxKeys/2 {
		t.Fatalf("tracked keys %d, want about %d", k, maxKeys)
	}
	if tb.evictions.Load() == 0 {
		t.Fatal("no evictions counted under a flood")
	}
	if size := len(tb.buckets) * ways; size > 4*maxKeys {
		t.Fatalf("table has %d slots for %d keys", size, maxKeys)
	}
	// The most recent keys are still limited exactly.
	last := netip.AddrFrom4([4]byte{byte((n - 1) >> 24), byte((n - 1) >> 16), byte((n - 1) >> 8), byte(n - 1)})
	if got := admitted(l, t0.Add(time.Duration(n-1)*time.Microsecond), r, last, 20); got != 9 {
		t.Fatalf("latest key admitted %d more, want 9", got)
	}
}

func TestMatchCriteria(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Rules: []RuleConfig{
		{ID: "post", Methods: []string{"POST"}, Rate: "1/m"},
		{ID: "net", CIDRs: []string{"10.0.0.0/8"}, Rate: "1/m"},
		{ID: "hdr", Headers: map[string]string{"X-Api-Key": "*", "X-Tier": "free*"}, Rate: "1/m"},
		{ID: "q", Paths: []string{"/search"}, Query: map[string]string{"q": "*"}, Rate: "1/m"},
		{ID: "ua", UserAgents: []string{"*bot*", "curl/*"}, Rate: "1/m"},
	}})
	tests := []struct {
		name string
		req  *fasthttp.Request
		ip   string
		rule string // the rule that limits the second identical request
	}{
		{"method", newReq("POST", "/x"), "1.1.1.1", "post"},
		{"cidr", newReq("GET", "/x"), "10.9.9.9", "net"},
		{"headers", newReq("GET", "/x", "X-Api-Key", "k", "X-Tier", "free-2"), "1.1.1.2", "hdr"},
		{"query", newReq("GET", "/search?q=shoes"), "1.1.1.3", "q"},
		{"user agent", newReq("GET", "/x", "User-Agent", "Googlebot/2.1"), "1.1.1.4", "ua"},
		{"nothing", newReq("GET", "/search?x=1", "X-Tier", "free", "User-Agent", "Mozilla/5.0"), "1.1.1.5", ""},
	}
	for _, tt := range tests {
		check(l, t0, tt.req, ip(tt.ip))
		d := check(l, t0, tt.req, ip(tt.ip))
		if d.Rule != tt.rule {
			t.Errorf("%s: second request limited by %q (%v), want %q", tt.name, d.Rule, d.Verdict, tt.rule)
		}
	}
}

func TestKeyParts(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{IPv6Prefix: 0, Rules: []RuleConfig{
		{ID: "api-key", Paths: []string{"/k"}, Key: []string{"header:X-Api-Key"}, Rate: "1/m"},
		{ID: "net24", Paths: []string{"/net"}, Key: []string{"ip/24/56"}, Rate: "1/m"},
		{ID: "v6", Paths: []string{"/v6"}, Key: []string{"ip"}, Rate: "1/m"},
		{ID: "mq", Paths: []string{"/mq"}, Key: []string{"method", "query:site", "user_agent"}, Rate: "1/m"},
	}})
	twice := func(r func() *fasthttp.Request, a, b string) bool { // does b share a's bucket?
		check(l, t0, r(), ip(a))
		return check(l, t0, r(), ip(b)).Verdict == Limit
	}
	key := func(k string) func() *fasthttp.Request {
		return func() *fasthttp.Request { return newReq("GET", "/k", "X-Api-Key", k) }
	}
	path := func(p string) func() *fasthttp.Request { return func() *fasthttp.Request { return newReq("GET", p) } }
	for _, c := range []struct {
		name  string
		req   func() *fasthttp.Request
		a, b  string
		share bool
	}{
		{"same API key from two IPs", key("k1"), "1.0.0.1", "1.0.0.2", true},
		{"another API key", key("k2"), "1.0.0.3", "1.0.0.3", true},
		{"ip/24 groups v4", path("/net"), "3.3.3.1", "3.3.3.200", true},
		{"ip/24 separates /24s", path("/net"), "3.3.4.1", "3.3.5.1", false},
		{"ip/24/56 groups v6 /56", path("/net"), "2001:db8:0:1::1", "2001:db8:0:2::1", true},
		{"v6 /64 default groups", path("/v6"), "2001:db8:1:1::1", "2001:db8:1:1:ffff::9", true},
		{"v6 /64 separates /64s", path("/v6"), "2001:db8:2:1::1", "2001:db8:2:2::1", false},
	} {
		if got := twice(c.req, c.a, c.b); got != c.share {
			t.Errorf("%s: shared bucket = %v, want %v", c.name, got, c.share)
		}
	}
	// A missing header is its own bucket, distinct from an empty value.
	check(l, t0, newReq("GET", "/k"), ip("1.0.0.9"))
	if d := check(l, t0, newReq("GET", "/k", "X-Api-Key", ""), ip("1.0.0.9")); d.Rule == "api-key" {
		t.Error("empty X-Api-Key shares the bucket of a missing one")
	}
	// method, query and user agent all count.
	check(l, t0, newReq("GET", "/mq?site=MLA", "User-Agent", "a"), ip("1.0.0.10"))
	for _, r := range []*fasthttp.Request{
		newReq("POST", "/mq?site=MLA", "User-Agent", "a"),
		newReq("GET", "/mq?site=MLB", "User-Agent", "a"),
		newReq("GET", "/mq?site=MLA", "User-Agent", "b"),
	} {
		if d := check(l, t0, r, ip("1.0.0.10")); d.Rule == "mq" {
			t.Errorf("%s %s shares a bucket it should not", r.Header.Method(), r.URI().FullURI())
		}
	}
}

func TestKeyStateAndReset(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Rules: []RuleConfig{
		{ID: "items-ip", Paths: []string{"/items/*"}, Key: []string{"ip", "path", "header:X-Api-Key"}, Rate: "10/m"},
	}})
	parts := map[string]string{"ip": "1.2.3.4", "path": "/items/MLA1", "header:X-Api-Key": "secret"}
	admitted(l, t0, newReq("GET", "/items/MLA1", "X-Api-Key", "secret"), ip("1.2.3.4"), 4)
	rem, reset, err := l.KeyState(t0, "items-ip", parts)
	if err != nil || rem != 6 || reset != 24*time.Second {
		t.Fatalf("KeyState = %d, %v, %v; want 6, 24s", rem, reset, err)
	}
	if err := l.ResetKey("items-ip", parts); err != nil {
		t.Fatal(err)
	}
	if rem, _, _ := l.KeyState(t0, "items-ip", parts); rem != 10 {
		t.Fatalf("after ResetKey remaining %d, want 10", rem)
	}
	if _, _, err := l.KeyState(t0, "nope", parts); !errors.Is(err, ErrUnknownRule) {
		t.Errorf("unknown rule: %v", err)
	}
	if _, _, err := l.KeyState(t0, "items-ip", map[string]string{"ip": "1.2.3.4"}); err == nil || !strings.Contains(err.Error(), `"path" missing`) {
		t.Errorf("missing part: %v", err)
	}
	if err := l.ResetKey("items-ip", map[string]string{"ip": "x", "path": "/", "header:X-Api-Key": ""}); err == nil {
		t.Error("bad ip accepted")
	}
}

// TestManyMatchedRules overflows the inline Decision state: refunds must
// still reach every rule.
func TestManyMatchedRules(t *testing.T) {
	t.Parallel()
	var rules []RuleConfig
	for i := range MaxReported + 4 {
		rules = append(rules, RuleConfig{ID: fmt.Sprint("r", i), Rate: "100/m"})
	}
	rules = append(rules, RuleConfig{ID: "last", Rate: "1/m"})
	l := newLimiter(t, Config{Rules: rules})
	r, a := newReq("GET", "/"), ip("1.1.1.1")
	if n := admitted(l, t0, r, a, 5); n != 1 {
		t.Fatalf("admitted %d, want 1", n)
	}
	for _, rc := range rules[:len(rules)-1] {
		if rem, _, _ := l.KeyState(t0, rc.ID, nil); rem != 99 {
			t.Errorf("%s remaining %d, want 99", rc.ID, rem)
		}
	}
	var h fasthttp.ResponseHeader
	check(l, t0.Add(time.Minute), r, a).WriteHeaders(&h)
	if got := strings.Count(string(h.Peek("RateLimit")), "r="); got != MaxReported {
		t.Errorf("RateLimit lists %d rules, want %d", got, MaxReported)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cfg := Config{
		MaxKeys:        -1,
		IPv4Prefix:     33,
		TrustedProxies: []string{"10.0.0.0/33"},
		Deny:           []string{"nope"},
		Rules: []RuleConfig{
			{ID: "ok", Rate: "1/s"},
			{ID: "ok", Rate: "1/s"},
			{ID: "items-ip", Rate: "10/x"},
			{ID: "bad glob", Paths: []string{"/a/**/b", "x"}, Rate: "1/s"},
			{ID: "k", Key: []string{"ip/33", "cookie", "header:"}, Rate: "1/s"},
			{ID: "c", Rate: "1/s", Cost: 2},
			{ID: "a", Rate: "1/s", Action: "block", Scope: "global", Methods: []string{"get"}},
			{ID: "h", Rate: "1/s", Headers: map[string]string{"X-A": ""}, CIDRs: []string{"1.2.3"}},
			{Rate: "1/s"},
		},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		"limits.max_keys: -1 out of range",
		"limits.ipv4_prefix: 33",
		`limits.trusted_proxies[0]: "10.0.0.0/33"`,
		`limits.deny[0]: "nope"`,
		`limits.rules[1] (id "ok"): id duplicates rules[0]`,
		`limits.rules[2] (id "items-ip"): rate "10/x": unit must be one of s, m, h, d`,
		`limits.rules[3] (id "bad glob"): id: character ' ' not allowed`,
		`limits.rules[3] (id "bad glob"): paths[0] "/a/**/b": "**" is only allowed`,
		`limits.rules[3] (id "bad glob"): paths[1] "x": must start with "/"`,
		`limits.rules[4] (id "k"): key[0] "ip/33": IPv4 prefix must be 0..32`,
		`limits.rules[4] (id "k"): key[1] "cookie": unknown key part`,
		`limits.rules[4] (id "k"): key[2] "header:"`,
		`limits.rules[5] (id "c"): burst 1 is less than cost 2`,
		`limits.rules[6] (id "a"): action "block"`,
		`limits.rules[6] (id "a"): scope "global"`,
		`limits.rules[6] (id "a"): methods[0] "get"`,
		`limits.rules[7] (id "h"): headers.X-A "": empty pattern`,
		`limits.rules[7] (id "h"): cidrs[0]: "1.2.3"`,
		`limits.rules[8] (id ""): id: must be 1–64 characters`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(err)
	}
	if _, err := New(cfg); err == nil {
		t.Error("New accepted an invalid config")
	}
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func TestLoadRulesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := writeFile(p, body); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := LoadRulesFile(write("unknown.toml", "[[rules]]\nid = \"a\"\nrate = \"1/s\"\nbrust = 3\n")); err == nil || !strings.Contains(err.Error(), "unknown keys: rules.brust") {
		t.Errorf("unknown key: %v", err)
	}
	p := write("bad.toml", "[[rules]]\nid = \"a\"\nrate = \"1/x\"\n")
	if _, err := LoadRulesFile(p); err == nil || !strings.Contains(err.Error(), p+`: rules[0] (id "a"): rate`) {
		t.Errorf("bad rate: %v", err)
	}
	if _, err := LoadRulesFile(dir + "/missing.toml"); err == nil {
		t.Error("missing file accepted")
	}
}

func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Deny: []string{"6.6.6.6"}, Exempt: []string{"7.7.7.7"}, Rules: []RuleConfig{{ID: "r", Rate: "1/m", Key: []string{"ip"}}}})
	r := newReq("GET", "/")
	check(l, t0, r, ip("1.1.1.1"))
	check(l, t0, r, ip("1.1.1.1"))
	check(l, t0, r, ip("6.6.6.6"))
	check(l, t0, r, ip("7.7.7.7"))
	var buf bytes.Buffer
	l.WriteMetrics(&buf)
	for _, want := range []string{
		`meliproxy_limiter_requests_total{rule="r",result="allowed"} 1`,
		`meliproxy_limiter_requests_total{rule="r",result="limited"} 1`,
		`meliproxy_limiter_requests_total{rule="r",result="shadow_limited"} 0`,
		"meliproxy_limiter_denied_total 1",
		"meliproxy_limiter_exempt_total 1",
		"meliproxy_limiter_keys 1",
		"meliproxy_limiter_max_keys 10000",
		"meliproxy_limiter_evictions_total 0",
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "1.1.1.1") {
		t.Error("metrics expose a client address")
	}
}

func TestDecisionReuse(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Rules: []RuleConfig{{ID: "r", Rate: "1/m", Action: "shadow"}, {ID: "e", Rate: "1/m", Key: []string{"ip"}}}})
	var d Decision
	r := newReq("GET", "/")
	l.Check(t0, r, ip("1.1.1.1"), &d)
	l.Check(t0, r, ip("1.1.1.1"), &d)
	if d.Verdict != Limit || d.Rule != "e" {
		t.Fatalf("%v %q", d.Verdict, d.Rule)
	}
	l.Check(t0, r, ip("2.2.2.2"), &d)
	if d.Verdict != Allow || d.Rule != "" || d.RetryAfter != 0 || len(d.Shadowed()) != 1 {
		t.Fatalf("reused decision kept state: %+v", d)
	}
	d.Reset()
	if d.Verdict != Allow || d.n != 0 || len(d.Shadowed()) != 0 {
		t.Fatal("Reset left state")
	}
}

// TestFillToCap fills the table to MaxKeys with live keys at the worst-case
// load factor (0.79 after power-of-two sizing): two-choice buckets must hold
// nearly all of them (measured: 17 early evictions of 104000, 0.016%).
func TestFillToCap(t *testing.T) {
	t.Parallel()
	const maxKeys = 104_000
	tb := newTable(maxKeys)
	if load := float64(maxKeys) / float64(len(tb.buckets)*ways); load < 0.75 {
		t.Fatalf("load %.2f: not the worst case this test means to cover", load)
	}
	now := t0.UnixNano()
	rng := rand.New(rand.NewPCG(1, 2)) // stands in for maphash output
	for range maxKeys {
		s := tb.get(rng.Uint64(), now)
		if ok, _ := s.take(now, 1, 10); !ok {
			t.Fatal("fresh key rejected")
		}
	}
	if ev := tb.evictions.Load(); ev > maxKeys/1000 {
		t.Errorf("%d early evictions filling to the cap", ev)
	}
	if k := tb.keys.Load(); k < maxKeys-maxKeys/1000 {
		t.Errorf("%d keys tracked, want %d", k, maxKeys)
	}
}
