package proxy

import (
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
)

// exchange is the per-request state of one client request. Exchanges are pooled by the Proxy so the
// steady state allocates nothing; every field is reset by start.
type exchange struct {
	p   *Proxy
	ctx *fasthttp.RequestCtx

	now         time.Time
	peer        netip.Addr
	clientClose bool
	upstream    time.Duration
	err         *upstreamError

	// scratch is reused for header values built per request (X-Forwarded-For, Via, Connection tokens).
	scratch []byte
}

func newExchange(p *Proxy) *exchange {
	return &exchange{p: p, scratch: make([]byte, 0, 256)}
}

// start binds x to ctx. The client's "Connection: close" is remembered here because forwarding
// strips the Connection header, and fasthttp reads the flag from it.
func (x *exchange) start(ctx *fasthttp.RequestCtx, now time.Time) {
	x.ctx = ctx
	x.now = now
	x.peer = peerAddr(ctx)
	x.clientClose = ctx.Request.Header.ConnectionClose()
	x.upstream = 0
	x.err = nil
}

// fetch sends req upstream and leaves the answer, without hop-by-hop fields, in resp.
func (x *exchange) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	x.scratch = removeRequestHop(&req.Header, x.scratch)
	x.scratch = appendForwarded(&req.Header, x.peer, x.scratch)
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

// finish restores what forwarding changed on the client side and unbinds x.
func (x *exchange) finish() {
	if x.clientClose {
		x.ctx.SetConnectionClose()
	}
	x.ctx = nil
}
