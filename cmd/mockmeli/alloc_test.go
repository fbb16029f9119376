//go:build !race

package main

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHotPathAllocs proves that the routes benchmarks hit allocate nothing in
// steady state: mockmeli is the upstream in every benchmark, so its cost must
// stay flat.
func TestHotPathAllocs(t *testing.T) {
	s := testServer(t, config{})
	bare := bareHandler(s.fx.exact["/categories/MLA97994"].body)
	tests := []struct {
		name, uri string
		h         fasthttp.RequestHandler
	}{
		{"fixture", "/categories/MLA97994", s.handle},
		{"template", "/items/MLA1234567", s.handle},
		{"not found", "/categories/MLA0", s.handle},
		{"stats", "/__stats", s.handle},
		{"bare", "/anything", bare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(tt.uri)
			allocs := testing.AllocsPerRun(1000, func() {
				tt.h(&ctx)
				ctx.Response.Reset()
			})
			if allocs != 0 {
				t.Errorf("%s: %v allocs per request, want 0", tt.uri, allocs)
			}
		})
	}
}
