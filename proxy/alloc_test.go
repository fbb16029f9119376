//go:build !race

package proxy

import "testing"

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
