//go:build !race

package proxy

import "testing"

// The hot path allocates nothing in steady state (STYLE 8). The race detector allocates, hence the tag.
func TestHandlerAllocs(t *testing.T) {
	p := newBenchProxy(t)
	bc := newBenchCtx("/categories/MLA97994?attributes=id,name")
	for i := 0; i < 10; i++ { // warm the pools and the upstream connection
		bc.serve(p.Handler)
	}
	if n := testing.AllocsPerRun(200, func() { bc.serve(p.Handler) }); n != 0 {
		t.Fatalf("pass-through allocates %.1f times per request, want 0", n)
	}
}
