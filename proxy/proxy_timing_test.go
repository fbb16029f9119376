package proxy

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

var benchBody = []byte(`{"id":"MLA97994","name":"iPod","picture":"http://mla-s2-p.mlstatic.com/183901-MLA0_-MLA.jpg","total_items_in_this_category":1234}`)

// newBenchProxy is a Proxy in front of a loopback upstream returning benchBody.
func newBenchProxy(tb testing.TB) *Proxy {
	up := startUpstream(tb, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.SetBody(benchBody)
	})
	p, err := New(Options{
		Upstream: UpstreamConfig{URL: up},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
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

func BenchmarkHandlerPassThrough(b *testing.B) {
	p := newBenchProxy(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		bc := newBenchCtx("/categories/MLA97994?attributes=id,name")
		for pb.Next() {
			bc.serve(p.Handler)
			if bc.ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d", bc.ctx.Response.StatusCode())
			}
		}
	})
}
