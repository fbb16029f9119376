package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/limiter"
	"github.com/meliproxy/meliproxy/stats"
)

var benchBody = []byte(`{"id":"MLA97994","name":"iPod","picture":"http://mla-s2-p.mlstatic.com/183901-MLA0_-MLA.jpg","total_items_in_this_category":1234}`)

// benchSetup is what a benchmark proxy runs with: production-like limiter and stats by default.
type benchSetup struct {
	rules  []limiter.RuleConfig
	cached bool
	stats  bool
}

// productionSetup mirrors the shipped config: three limit rules, the catalog cached, stats on.
var productionSetup = benchSetup{
	rules: []limiter.RuleConfig{
		{ID: "vip-ip", CIDRs: []string{"152.152.152.152/32"}, Key: []string{"ip"}, Rate: "1000/m"},
		{ID: "categories", Paths: []string{"/categories/**"}, Rate: "1000000000/s"},
		{ID: "items-ip", Paths: []string{"/items/*"}, Key: []string{"ip", "path"}, Rate: "10/m"},
	},
	cached: true,
	stats:  true,
}

// newBenchProxy is a Proxy in front of a loopback upstream returning benchBody.
func newBenchProxy(tb testing.TB, s benchSetup) *Proxy {
	up := startUpstream(tb, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.SetBody(benchBody)
	})
	o := Options{
		Upstream: UpstreamConfig{URL: up},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	var err error
	if o.Limiter, err = limiter.New(limiter.Config{TrustedProxies: []string{"192.0.2.0/24"}, Rules: s.rules}); err != nil {
		tb.Fatal(err)
	}
	if s.cached {
		o.Cache, err = cache.New(cache.Config{Rules: []cache.RuleConfig{{ID: "catalog", Paths: []string{"/categories/*"}, TTL: time.Hour}}})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(o.Cache.Close)
	}
	if s.stats {
		o.Stats, err = stats.New(stats.Config{DataDir: tb.TempDir()}, stats.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = o.Stats.Close() })
	}
	p, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// benchCtx is a reusable request context for calling Handler directly.
type benchCtx struct {
	tmpl fasthttp.Request
	ctx  fasthttp.RequestCtx
}

func newBenchCtx(uri string) *benchCtx {
	b := &benchCtx{}
	b.tmpl.SetRequestURI(uri)
	b.tmpl.Header.SetHost("meliproxy.local")
	b.tmpl.Header.Set("X-Forwarded-For", "203.0.113.7")
	b.tmpl.Header.Set("User-Agent", "bench")
	b.ctx.Init(&b.tmpl, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}, nil)
	return b
}

// serve runs one request through h from a fresh copy of the template.
func (b *benchCtx) serve(h fasthttp.RequestHandler) {
	b.tmpl.CopyTo(&b.ctx.Request)
	b.ctx.Response.Reset()
	h(&b.ctx)
}

// handlerCases are the whole-handler paths whose cost and allocations are tracked.
var handlerCases = []struct {
	name       string
	setup      benchSetup
	uri        string
	wantStatus int
	wantCache  string
}{
	{"bare", benchSetup{}, "/categories/MLA97994?attributes=id,name", 200, ""},
	{"pass-through", productionSetup, "/users/123?attributes=id,name", 200, "BYPASS"},
	{"cache-hit", productionSetup, "/categories/MLA97994?attributes=id,name", 200, "HIT"},
	{"limited", productionSetup, "/items/MLA1", 429, ""},
}

func BenchmarkHandler(b *testing.B) {
	for _, c := range handlerCases {
		b.Run(c.name, func(b *testing.B) {
			p := newBenchProxy(b, c.setup)
			warm := newBenchCtx(c.uri)
			for i := 0; i < 20; i++ { // fill the cache, use up the limit
				warm.serve(p.Handler)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				bc := newBenchCtx(c.uri)
				for pb.Next() {
					bc.serve(p.Handler)
					if bc.ctx.Response.StatusCode() != c.wantStatus {
						b.Fatalf("status %d, want %d", bc.ctx.Response.StatusCode(), c.wantStatus)
					}
				}
			})
		})
	}
}

// BenchmarkPrepareRequest is the header work done on every forwarded request: hop-by-hop removal,
// X-Forwarded-For, X-Forwarded-Proto and Via, on a typical request with none of the hop fields.
func BenchmarkPrepareRequest(b *testing.B) {
	var tmpl fasthttp.Request
	raw := "GET /users/123?attributes=id HTTP/1.1\r\nHost: meliproxy.local\r\nUser-Agent: Go-http-client/1.1\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
	if err := tmpl.Read(bufio.NewReader(strings.NewReader(raw))); err != nil { // parsed, as from a client
		b.Fatal(err)
	}
	peer := netip.MustParseAddr("192.0.2.1")
	var req fasthttp.Request
	var resp fasthttp.Response
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Cache-Control", "max-age=60")
	resp.Header.Set("X-Request-Id", "abc")
	var scratch []byte
	b.ReportAllocs()
	for b.Loop() {
		tmpl.CopyTo(&req)
		scratch = prepareRequest(&req.Header, peer, scratch)
		scratch = removeResponseHop(&resp.Header, scratch)
	}
}
