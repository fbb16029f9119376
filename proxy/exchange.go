package proxy

import (
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/limiter"
	"github.com/meliproxy/meliproxy/stats"
)

// exchange is the per-request state of one client request. Exchanges are pooled by the Proxy so the
// steady state allocates nothing; every field is reset by start.
type exchange struct {
	p   *Proxy
	ctx *fasthttp.RequestCtx

	now         time.Time
	peer        netip.Addr // the TCP peer
	client      netip.Addr // the client as the limiter resolved it (trusted X-Forwarded-For)
	clientClose bool
	upstream    time.Duration
	err         *upstreamError
	decision    limiter.Decision
	cacheResult cache.Result
	rec         stats.Record

	// fetchFn is x.fetch bound once, so handing it to the cache allocates nothing per request.
	fetchFn cache.Fetcher
	// scratch is reused for header values built per request (X-Forwarded-For, Via, Connection tokens).
	scratch []byte
}

func newExchange(p *Proxy) *exchange {
	x := &exchange{p: p, scratch: make([]byte, 0, 256)}
	x.fetchFn = x.fetch
	return x
}

// start binds x to ctx. The client's "Connection: close" is remembered here because forwarding
// strips the Connection header, and fasthttp reads the flag from it.
func (x *exchange) start(ctx *fasthttp.RequestCtx, now time.Time) {
	x.ctx = ctx
	x.now = now
	x.peer = peerAddr(ctx)
	x.client = x.peer
	x.clientClose = ctx.Request.Header.ConnectionClose()
	x.upstream = 0
	x.err = nil
	x.decision.Reset()
	x.cacheResult = cache.Bypass
}

// reject answers a request the limiter refused: 429 with Retry-After, or 403 for a denied network.
// The JSON body is copied into the response, which outlives this exchange.
func (x *exchange) reject() {
	resp := &x.ctx.Response
	resp.SetStatusCode(x.decision.Status())
	resp.Header.SetContentType("application/json")
	x.scratch = x.decision.AppendBody(x.scratch[:0])
	resp.SetBody(x.scratch)
	x.decision.WriteHeaders(&resp.Header)
}

// fetch sends req upstream and leaves the answer, without hop-by-hop fields, in resp.
func (x *exchange) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	x.scratch = prepareRequest(&req.Header, x.peer, x.scratch)
	t0 := time.Now()
	err := x.p.up.do(req, resp)
	x.upstream = time.Since(t0)
	if err != nil {
		return err
	}
	x.scratch = removeResponseHop(&resp.Header, x.scratch)
	return nil
}

// fail answers the client for a failed upstream exchange.
func (x *exchange) fail(err error) {
	ue := classify(err)
	x.err = ue
	writeJSONError(&x.ctx.Response, ue.status, ue.body)
	x.p.logUpstreamError(ue, err)
}

// record hands the finished request to the statistics.
func (x *exchange) record(end time.Time) {
	ctx := x.ctx
	r := &x.rec
	r.Now = x.now
	r.Status = ctx.Response.StatusCode()
	r.Path = ctx.Path()
	r.ClientIP = x.client
	r.Cache = cacheResults[x.cacheResult]
	r.Limit, r.LimitRule = x.limitResult()
	r.Upstream = x.upstream
	r.Total = end.Sub(x.now)
	r.BytesIn = len(ctx.Request.Body())
	r.BytesOut = len(ctx.Response.Body())
	x.p.stats.Record(r)
}

// cacheResults maps the cache's answer to the statistics' vocabulary.
var cacheResults = [...]stats.CacheResult{
	cache.Bypass: stats.CacheNone,
	cache.Hit:    stats.CacheHit,
	cache.Miss:   stats.CacheMiss,
	cache.Stale:  stats.CacheStale,
}

// limitResult is the limiter's decision in the statistics' vocabulary, with the deciding rule.
func (x *exchange) limitResult() (stats.LimitResult, string) {
	d := &x.decision
	switch d.Verdict {
	case limiter.Limit:
		return stats.LimitLimited, d.Rule
	case limiter.Deny:
		return stats.LimitDenied, ""
	case limiter.Exempt:
		return stats.LimitExempt, ""
	}
	if shadow := d.Shadowed(); len(shadow) > 0 {
		return stats.LimitShadowLimited, shadow[0]
	}
	return stats.LimitAllowed, ""
}

// finish restores what forwarding changed on the client side and unbinds x.
func (x *exchange) finish() {
	if x.clientClose {
		x.ctx.SetConnectionClose()
	}
	x.ctx = nil
}
