package cache

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type (
	fastReq  = fasthttp.Request
	fastResp = fasthttp.Response
)

// t0 is the fake clock's origin; tests step it explicitly.
var t0 = time.Unix(1_700_000_000, 0)

var errUpstream = errors.New("dial upstream: connection refused")

// origin is a fake upstream: it counts calls and answers with status, headers and body, or err.
// When gate is non-nil each call blocks until it is closed.
type origin struct {
	calls atomic.Int64

	mu      sync.Mutex
	status  int
	headers []string // "Name: value" lines
	body    string
	err     error
	gate    chan struct{}
	echo    string // if set, the body is this request header's value
}

func newOrigin(status int, body string, headers ...string) *origin {
	return &origin{status: status, body: body, headers: headers}
}

func (o *origin) set(f func(o *origin)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *origin) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	o.calls.Add(1)
	o.mu.Lock()
	status, headers, body, err, gate, echo := o.status, o.headers, o.body, o.err, o.gate, o.echo
	o.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return err
	}
	resp.Reset()
	resp.SetStatusCode(status)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		resp.Header.Add(k, v)
	}
	if echo != "" {
		body = string(req.Header.Peek(echo))
	}
	if !req.Header.IsHead() {
		resp.SetBodyString(body)
	}
	return nil
}

// rules returns a Config caching /categories/* and /sites/* like the shipped config.
func testConfig(mod func(r *RuleConfig)) Config {
	r := RuleConfig{ID: "catalog", Paths: []string{"/categories/**", "/sites/**"}, TTL: time.Minute, Stale: 5 * time.Minute}
	if mod != nil {
		mod(&r)
	}
	return Config{Rules: []RuleConfig{r}}
}

func newTestCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// exchange is one served request's outcome.
type exchange struct {
	res    Result
	err    error
	status int
	body   string
	resp   *fasthttp.Response
}

func (x exchange) header(k string) string { return string(x.resp.Header.Peek(k)) }

// do serves "METHOD uri" with the given "Name: value" request headers at now.
func do(c *Cache, now time.Time, target string, fetch Fetcher, headers ...string) exchange {
	method, uri, ok := strings.Cut(target, " ")
	if !ok {
		method, uri = "GET", target
	}
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp := new(fasthttp.Response)
	res, err := c.Serve(now, &req, resp, fetch)
	return exchange{res: res, err: err, status: resp.StatusCode(), body: string(resp.Body()), resp: resp}
}

// waitFor polls cond every millisecond, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}
