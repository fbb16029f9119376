package main

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func BenchmarkHandle(b *testing.B) {
	s := testServer(b, config{})
	for _, uri := range []string{"/categories/MLA97994", "/items/MLA1234567", "/nothing"} {
		b.Run(uri, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				ctx.Request.SetRequestURI(uri)
				for pb.Next() {
					s.handle(&ctx)
					ctx.Response.Reset()
				}
			})
		})
	}
}

// testServer is a server on the embedded fixtures, without a listener.
func testServer(tb testing.TB, cfg config) *server {
	fx, err := loadFixtures()
	if err != nil {
		tb.Fatal(err)
	}
	return newServer(cfg, fx)
}
