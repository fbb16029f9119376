package main

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// config is the parsed command line.
type config struct {
	listen   string
	latency  time.Duration
	jitter   time.Duration
	failRate float64
	failMode faultMode
	stall    time.Duration
	seed     uint64
	bare     bool
}

// server is the mock API. Its handler is safe for concurrent use.
type server struct {
	cfg      config
	fx       *fixtures
	requests atomic.Uint64 // every request except /__stats
	faults   atomic.Uint64 // requests answered with an injected fault
	done     chan struct{} // closed at shutdown: stalls and /slow sleeps end early
}

func newServer(cfg config, fx *fixtures) *server {
	return &server{cfg: cfg, fx: fx, done: make(chan struct{})}
}

// Header names and fixed values, as []byte so setting them allocates nothing.
var (
	hContentType     = []byte("application/json;charset=UTF-8")
	hCacheControl    = []byte("Cache-Control")
	hETag            = []byte("ETag")
	hRequestID       = []byte("X-Request-Id")
	hCORS            = []byte("Access-Control-Allow-Origin")
	hNoSniff         = []byte("X-Content-Type-Options")
	hIfNoneMatch     = "If-None-Match"
	vStar            = []byte("*")
	vNoSniff         = []byte("nosniff")
	pathStats        = "/__stats"
	prefixItems      = []byte("/items/")
	prefixUsers      = []byte("/users/")
	prefixCategories = []byte("/categories/")
	prefixSites      = []byte("/sites/")
	prefixStatus     = []byte("/status/")
)

// handle is the request handler: count, add the configured latency, maybe
// fail, then route.
func (s *server) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	if string(path) == pathStats {
		s.stats(ctx)
		return
	}
	n := s.requests.Add(1)
	s.setCommonHeaders(ctx, n)
	s.delay(n)
	if s.cfg.failRate > 0 && draw(s.cfg.seed, n, streamFail) < s.cfg.failRate {
		s.injectFault(ctx)
		return
	}
	s.route(ctx, path)
}

// delay sleeps -latency plus a uniform share of -jitter. time.Sleep, not a
// timer select: the sleep is short and bounded, fasthttp workers are reused
// so the runtime's per-goroutine sleep timer is too, and shutdown waits for it.
func (s *server) delay(n uint64) {
	d := s.cfg.latency
	if s.cfg.jitter > 0 {
		d += time.Duration(draw(s.cfg.seed, n, streamJitter) * float64(s.cfg.jitter))
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// setCommonHeaders sets the headers every API response carries. The request
// id is derived from the request sequence number: unique per process run and
// shaped like the real API's UUIDs.
func (s *server) setCommonHeaders(ctx *fasthttp.RequestCtx, n uint64) {
	var buf [36]byte
	ctx.Response.Header.SetCanonical(hRequestID, appendRequestID(buf[:0], s.cfg.seed, n))
	ctx.Response.Header.SetCanonical(hCORS, vStar)
	ctx.Response.Header.SetCanonical(hNoSniff, vNoSniff)
}

// appendRequestID appends a version-4-shaped UUID derived from seed and n.
func appendRequestID(dst []byte, seed, n uint64) []byte {
	hi, lo := splitmix64(seed^n), splitmix64(^n)
	dst = appendHex(dst, hi>>32, 8)
	dst = append(dst, '-')
	dst = appendHex(dst, hi>>16, 4)
	dst = append(dst, '-', '4')
	dst = appendHex(dst, hi, 3)
	dst = append(dst, '-', '8')
	dst = appendHex(dst, lo>>48, 3)
	dst = append(dst, '-')
	return appendHex(dst, lo, 12)
}

// route dispatches on the path. Fixture routes are a map lookup
// (m[string(b)] does not allocate); the rest are prefix checks.
func (s *server) route(ctx *fasthttp.RequestCtx, path []byte) {
	if f, ok := s.fx.exact[string(path)]; ok {
		s.serveFixture(ctx, f)
		return
	}
	switch {
	case bytes.HasPrefix(path, prefixItems):
		s.serveTemplate(ctx, s.fx.item, path[len(prefixItems):], validItemID, notFoundItem)
	case bytes.HasPrefix(path, prefixUsers):
		s.serveTemplate(ctx, s.fx.user, path[len(prefixUsers):], validUserID, notFoundUser)
	case bytes.HasPrefix(path, prefixCategories):
		s.writeJSON(ctx, fasthttp.StatusNotFound, notFoundCategory)
	case bytes.HasPrefix(path, prefixSites):
		s.writeJSON(ctx, fasthttp.StatusNotFound, notFoundSite)
	case string(path) == "/echo":
		s.echo(ctx)
	case string(path) == "/big":
		s.big(ctx)
	case bytes.HasPrefix(path, prefixStatus):
		s.status(ctx, path[len(prefixStatus):])
	case string(path) == "/slow":
		s.slow(ctx)
	default:
		s.writeJSON(ctx, fasthttp.StatusNotFound, notFoundResource)
	}
}

// readOnly answers 405 for methods the catalog does not accept and reports
// whether the request may proceed.
func (s *server) readOnly(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	ctx.Response.Header.Set("Allow", "GET, HEAD")
	s.writeJSON(ctx, fasthttp.StatusMethodNotAllowed, methodNotAllowed)
	return false
}

// serveFixture writes a precomputed response, or 304 when the client already
// holds it. The body is shared and never modified: SetBodyRaw avoids a copy.
func (s *server) serveFixture(ctx *fasthttp.RequestCtx, f *fixture) {
	if !s.readOnly(ctx) {
		return
	}
	ctx.Response.Header.SetCanonical(hCacheControl, f.cacheControl)
	ctx.Response.Header.SetCanonical(hETag, f.etag)
	if inm := ctx.Request.Header.Peek(hIfNoneMatch); len(inm) > 0 && bytes.Equal(inm, f.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.Response.SetBodyRaw(f.body)
}

// serveTemplate renders t for id into the response buffer, or writes
// notFound when id is malformed.
func (s *server) serveTemplate(ctx *fasthttp.RequestCtx, t *template, id []byte, valid func([]byte) bool, notFound []byte) {
	if !valid(id) {
		s.writeJSON(ctx, fasthttp.StatusNotFound, notFound)
		return
	}
	if !s.readOnly(ctx) {
		return
	}
	var buf [18]byte
	etag := appendETag(buf[:0], t.etag(id))
	ctx.Response.Header.SetCanonical(hCacheControl, t.cacheControl)
	ctx.Response.Header.SetCanonical(hETag, etag)
	if inm := ctx.Request.Header.Peek(hIfNoneMatch); len(inm) > 0 && bytes.Equal(inm, etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.Response.ResetBody()
	t.writeBody(&ctx.Response, id)
}

// writeJSON writes a precomputed JSON body with status.
func (s *server) writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.Response.SetBodyRaw(body)
}

// stats answers /__stats. It is not counted, so a test can read it before
// and after a burst and subtract.
func (s *server) stats(ctx *fasthttp.RequestCtx) {
	var buf [64]byte
	b := append(buf[:0], `{"requests":`...)
	b = strconv.AppendUint(b, s.requests.Load(), 10)
	b = append(b, `,"faults":`...)
	b = strconv.AppendUint(b, s.faults.Load(), 10)
	b = append(b, '}')
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.SetBody(b)
}

// bareHandler answers every request with the MLA97994 body and nothing else:
// the ceiling a proxy can be compared against on this machine.
func bareHandler(body []byte) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetContentTypeBytes(hContentType)
		ctx.Response.SetBodyRaw(body)
	}
}
