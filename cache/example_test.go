package cache_test

import (
	"fmt"
	"time"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/valyala/fasthttp"
)

func ExampleCache_Serve() {
	c, err := cache.New(cache.Config{Rules: []cache.RuleConfig{
		{ID: "catalog", Paths: []string{"/categories/*", "/sites/*"}, TTL: 5 * time.Minute, Stale: 10 * time.Minute},
	}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// The proxy's upstream exchange; here a stand-in.
	fetch := func(req *fasthttp.Request, resp *fasthttp.Response) error {
		resp.SetStatusCode(fasthttp.StatusOK)
		resp.SetBodyString(`{"id":"MLA1055"}`)
		return nil
	}
	now := time.Now()
	for i := range 2 {
		var req fasthttp.Request
		var resp fasthttp.Response
		req.SetRequestURI("/categories/MLA1055")
		res, err := c.Serve(now.Add(time.Duration(i)*3*time.Second), &req, &resp, fetch)
		fmt.Println(res, err, string(resp.Header.Peek("X-Cache")), string(resp.Header.Peek("Age")), string(resp.Body()))
		c.Wait() // tests only: ristretto stores asynchronously
	}
	// Output:
	// MISS <nil> MISS  {"id":"MLA1055"}
	// HIT <nil> HIT 3 {"id":"MLA1055"}
}
