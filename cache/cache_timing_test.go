package cache

import (
	"bufio"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// hitFixture returns a cache holding one 1 KiB JSON entry for /categories/MLA1055 and a request
// for it with the query in the opposite order from the stored one.
func hitFixture(b testing.TB) (*Cache, Fetcher) {
	c := newTestCache(b, testConfig(nil))
	o := newOrigin(200, string(make([]byte, 1024)), "Content-Type: application/json;charset=UTF-8",
		"Cache-Control: max-age=300", "X-Request-Id: 3f0c")
	do(c, t0, "/categories/MLA1055?attributes=id,name&lang=es", o.fetch)
	c.Wait()
	return c, o.fetch
}

func newHitRequest() *fasthttp.Request {
	req := new(fasthttp.Request)
	req.SetRequestURI("/categories/MLA1055?lang=es&attributes=id,name")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", "bench")
	return req
}

// BenchmarkServeHit is the hit path: rule match, key build (query sort), hash, ristretto Get,
// and writing status, 3 headers, X-Cache, Age and a 1 KiB body into the response.
func BenchmarkServeHit(b *testing.B) {
	c, fetch := hitFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := newHitRequest(), new(fasthttp.Response)
		for pb.Next() {
			if res, _ := c.Serve(t0, req, resp, fetch); res != Hit {
				b.Fatalf("%s, want HIT", res)
			}
		}
	})
}

// BenchmarkServeBypass is a request no rule matches: the cost the cache adds to other routes.
func BenchmarkServeBypass(b *testing.B) {
	c, _ := hitFixture(b)
	noop := func(*fasthttp.Request, *fasthttp.Response) error { return nil }
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := new(fasthttp.Request), new(fasthttp.Response)
		req.SetRequestURI("/items/MLA1100000001")
		for pb.Next() {
			c.Serve(t0, req, resp, noop)
		}
	})
}

// BenchmarkServeMissStore is a miss on a new key each time: lead the fetch (an in-memory origin
// writing a 1 KiB body), assess, copy and store. It allocates by design (the entry).
func BenchmarkServeMissStore(b *testing.B) {
	c := newTestCache(b, testConfig(nil))
	o := newOrigin(200, string(make([]byte, 1024)), "Content-Type: application/json")
	req, resp := new(fasthttp.Request), new(fasthttp.Response)
	buf := []byte("/categories/")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req.SetRequestURIBytes(strconv.AppendInt(buf[:12], int64(i), 10))
		if res, _ := c.Serve(t0, req, resp, o.fetch); res != Miss {
			b.Fatalf("%s, want MISS", res)
		}
	}
}

// BenchmarkScanRequest is the bypass and precondition scan of a request on a cached path: a
// typical client request parsed from the wire, 5 fields, none of those the cache looks for.
func BenchmarkScanRequest(b *testing.B) {
	raw := "GET /categories/MLA1 HTTP/1.1\r\nHost: api\r\nUser-Agent: Go-http-client/1.1\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if f := scanRequest(&req.Header); f.credentials || f.partial {
			b.Fatalf("%+v", f)
		}
	}
}
