//go:build !race

package cache

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHitAllocs guards the hit path: 0 allocations per request in steady state.
func TestHitAllocs(t *testing.T) {
	c, fetch := hitFixture(t)
	req, resp := newHitRequest(), new(fasthttp.Response)
	if got := testing.AllocsPerRun(1000, func() {
		if res, _ := c.Serve(t0, req, resp, fetch); res != Hit {
			t.Fatalf("%s, want HIT", res)
		}
	}); got != 0 {
		t.Errorf("cache hit: %v allocs/op, want 0", got)
	}
}

// TestBypassAllocs guards requests no rule matches.
func TestBypassAllocs(t *testing.T) {
	c, _ := hitFixture(t)
	noop := func(*fasthttp.Request, *fasthttp.Response) error { return nil }
	req, resp := new(fasthttp.Request), new(fasthttp.Response)
	req.SetRequestURI("/items/MLA1100000001")
	if got := testing.AllocsPerRun(1000, func() { c.Serve(t0, req, resp, noop) }); got != 0 {
		t.Errorf("bypass: %v allocs/op, want 0", got)
	}
}
