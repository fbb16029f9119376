package limiter_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/meliproxy/meliproxy/limiter"
	"github.com/valyala/fasthttp"
)

func ExampleNew() {
	l, err := limiter.New(limiter.Config{
		MaxKeys: 10_000,
		Rules: []limiter.RuleConfig{{
			ID:    "items-ip",
			Paths: []string{"/items/*"},
			Key:   []string{"ip", "path"},
			Rate:  "2/m",
		}},
	})
	if err != nil {
		panic(err)
	}
	var req fasthttp.Request
	req.SetRequestURI("/items/MLA1")
	client := netip.MustParseAddr("1.2.3.4")
	now := time.Unix(1_700_000_000, 0) // the proxy reads the clock once per request

	var d limiter.Decision // pooled per request in the proxy
	var resp fasthttp.Response
	for range 3 {
		l.Check(now, &req, client, &d)
		fmt.Println(d.Verdict, d.Status())
	}
	d.WriteHeaders(&resp.Header)
	fmt.Println(string(resp.Header.Peek("RateLimit")), string(resp.Header.Peek("Retry-After")))
	fmt.Println(string(d.AppendBody(nil)))
	// Output:
	// allow 0
	// allow 0
	// limit 429
	// "items-ip";r=0;t=30 30
	// {"error":"rate limited","rule":"items-ip","status":429,"retry_after":30}
}
