// Package proxy is meliproxy's data path: a fasthttp server whose one handler checks limits, answers
// from the cache or forwards to the pooled upstream, and records statistics.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/limiter"
	"github.com/meliproxy/meliproxy/stats"
)

// Options are what a Proxy is built from. Server and Upstream are required; the rest may be nil.
type Options struct {
	Server   ServerConfig
	Upstream UpstreamConfig
	// Limiter decides which requests pass; nil admits everything and trusts only the TCP peer.
	Limiter *limiter.Limiter
	// Cache answers what it may; nil forwards everything.
	Cache *cache.Cache
	// Stats records every request; nil records nothing.
	Stats *stats.Stats
	// Logger receives operational logs; nil means slog.Default().
	Logger *slog.Logger
	// AccessLog, when set, receives one JSON line per request.
	AccessLog io.Writer
}

// Proxy forwards every request to one upstream. It is safe for concurrent use; create it with New.
type Proxy struct {
	lim      *limiter.Limiter
	cache    *cache.Cache
	stats    *stats.Stats
	up       *upstream
	srv      *fasthttp.Server
	log      *slog.Logger
	access   *accessLog
	draining atomic.Bool
	serving  atomic.Bool
	drain    time.Duration

	exchanges sync.Pool
	logState
}

// New validates the options and builds a Proxy ready to Serve.
func New(o Options) (*Proxy, error) {
	o.Server.SetDefaults()
	o.Upstream.SetDefaults()
	if err := o.Server.Validate(); err != nil {
		return nil, err
	}
	if err := o.Upstream.Validate(); err != nil {
		return nil, err
	}
	up, err := newUpstream(o.Upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	p := &Proxy{up: up, lim: o.Limiter, cache: o.Cache, stats: o.Stats, log: o.Logger, drain: o.Server.DrainTimeout}
	if p.log == nil {
		p.log = slog.Default()
	}
	if o.AccessLog != nil {
		p.access = newAccessLog(o.AccessLog)
	}
	p.exchanges.New = func() any { return newExchange(p) }
	p.srv = p.newServer(o.Server)
	return p, nil
}

// newServer applies the server limits. Errors fasthttp detects while parsing (too-large headers or
// body, bad framing) are answered by errorHandler before our handler runs.
func (p *Proxy) newServer(c ServerConfig) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            p.Handler,
		ErrorHandler:       errorHandler,
		ReadTimeout:        c.ReadTimeout,
		WriteTimeout:       c.WriteTimeout,
		IdleTimeout:        c.IdleTimeout,
		ReadBufferSize:     c.MaxHeaderBytes,
		MaxRequestBodySize: c.MaxBodyBytes,
		Concurrency:        c.MaxConns,
		// The upstream's Server header and Content-Type pass through untouched, and none is invented.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// Bodies are forwarded as received: never parse multipart forms.
		DisablePreParseMultipartForm: true,
		// Draining tells keep-alive clients to reconnect elsewhere.
		CloseOnShutdown: true,
		Logger:          fasthttpLogger{p.log},
	}
}

// Serve accepts connections on ln until Shutdown. It returns nil after a clean shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	p.serving.Store(true)
	defer p.serving.Store(false)
	return p.srv.Serve(ln)
}

// Ready reports whether the proxy is serving and not draining: /readyz answers from it.
func (p *Proxy) Ready() bool { return p.serving.Load() && !p.draining.Load() }

// Shutdown stops accepting, lets in-flight requests finish within the drain timeout, then closes.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, p.drain)
	defer cancel()
	err := p.srv.ShutdownWithContext(ctx)
	p.up.close()
	if p.access != nil {
		p.access.close()
	}
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// Handler serves one client request. It reads as the list of steps every request goes through:
// who is calling, may they, answer from the cache or the upstream, stamp the limit headers, record.
func (p *Proxy) Handler(ctx *fasthttp.RequestCtx) {
	now := time.Now()
	x := p.exchanges.Get().(*exchange)
	x.start(ctx, now)

	if p.lim != nil {
		x.client = p.lim.ClientIP(x.peer, &ctx.Request.Header)
		p.lim.Check(now, &ctx.Request, x.client, &x.decision)
	}
	if x.decision.Rejected() {
		x.reject()
	} else {
		// Limits apply to cache hits too: a limit is a policy on the client, not on the upstream.
		res, err := p.cache.Serve(now, &ctx.Request, &ctx.Response, x.fetchFn)
		x.cacheResult = res
		if err != nil {
			x.fail(err)
		}
		// After Serve: hits and coalesced copies reset the response, and stored entries must never
		// carry one client's limit state.
		x.decision.WriteHeaders(&ctx.Response.Header)
	}

	// The one other clock read of a served request: decisions all use now; end only measures the
	// total latency (fetch reads the clock twice more, around the upstream call alone).
	end := time.Now()
	if p.stats != nil {
		x.record(end)
	}
	if p.access != nil {
		p.access.write(x, end)
	}
	x.finish()
	p.exchanges.Put(x)
}

// peerAddr is the TCP peer of ctx, without allocating.
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	addr, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return addr.Unmap()
}

// errorHandler answers requests fasthttp refused while parsing them. A client that sent nothing
// (or too little) within server.read_timeout gets 408, which HTTP clients such as Go's treat as
// "server closed an idle connection" rather than as an unsolicited response (RFC 9110 §15.5.9).
func errorHandler(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	msg := errBadRequestBody
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		status, msg = fasthttp.StatusRequestTimeout, errRequestTimeoutBody
	case isTooLarge(err):
		status, msg = fasthttp.StatusRequestEntityTooLarge, errBodyTooLargeBody
	case isSmallBuffer(err):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, errHeaderTooLargeBody
	}
	writeJSONError(&ctx.Response, status, msg)
	ctx.SetConnectionClose()
}

// fasthttpLogger routes fasthttp's own messages into slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}
