//go:build !race

package proxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The hot path allocates nothing in steady state (STYLE 8): pass-through, cache hit and limited,
// with limiter and stats on as in production. The race detector allocates, hence the build tag.
func TestHandlerAllocs(t *testing.T) {
	for _, c := range handlerCases {
		t.Run(c.name, func(t *testing.T) {
			p := newBenchProxy(t, c.setup)
			bc := newBenchCtx(c.uri)
			for i := 0; i < 20; i++ { // warm pools, the upstream connection, the cache; use up the limit
				bc.serve(p.Handler)
			}
			if p.cache != nil {
				p.cache.Wait()
				bc.serve(p.Handler)
			}
			if got := bc.ctx.Response.StatusCode(); got != c.wantStatus {
				t.Fatalf("status %d, want %d", got, c.wantStatus)
			}
			if got := string(bc.ctx.Response.Header.Peek("X-Cache")); got != c.wantCache {
				t.Fatalf("X-Cache %q, want %q", got, c.wantCache)
			}
			if n := testing.AllocsPerRun(200, func() { bc.serve(p.Handler) }); n != 0 {
				t.Fatalf("%s allocates %.2f times per request, want 0", c.name, n)
			}
		})
	}
}

// An enabled access log costs no allocation either: a line is appended into a reused buffer.
func TestAccessLogWriteAllocs(t *testing.T) {
	a := &accessLog{w: bufio.NewWriterSize(io.Discard, 64<<10)}
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI("/items/MLA1?attributes=id,name")
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, nil)
	x := &exchange{ctx: &ctx, now: time.Now()}
	a.write(x, x.now) // grow the line buffer once
	if n := testing.AllocsPerRun(100, func() { a.write(x, x.now) }); n != 0 {
		t.Fatalf("an access log line allocates %.1f times, want 0", n)
	}
}
