package proxy

import (
	"errors"
	"net"
	"strconv"

	"github.com/valyala/fasthttp"
)

// upstreamError is how one class of failed upstream exchange is answered. The JSON body is rendered
// once at start so error responses allocate nothing either.
type upstreamError struct {
	kind   string // metric label and log value
	id     int    // index into Proxy.upstreamErrCounts
	status int
	body   []byte
}

func newUpstreamError(kind string, status int, msg string) *upstreamError {
	body := []byte(`{"error":` + strconv.Quote(msg) + `,"status":` + strconv.Itoa(status) + "}\n")
	return &upstreamError{kind: kind, status: status, body: body}
}

// The one table of upstream failures. nginx answers a connect timeout with 504 too; a refused,
// reset or unresolvable upstream is 502; a full pool is 503 so clients back off instead of hanging.
var (
	errUpstreamTimeout     = newUpstreamError("timeout", fasthttp.StatusGatewayTimeout, "upstream timed out")
	errUpstreamDown        = newUpstreamError("unreachable", fasthttp.StatusBadGateway, "upstream unreachable")
	errUpstreamTooLarge    = newUpstreamError("too_large", fasthttp.StatusBadGateway, "upstream response too large")
	errUpstreamPoolFull    = newUpstreamError("pool_full", fasthttp.StatusServiceUnavailable, "upstream connection pool exhausted")
	errUpstreamBadResponse = newUpstreamError("bad_response", fasthttp.StatusBadGateway, "upstream response headers too large")
)

// Bodies for requests fasthttp refuses before our handler runs.
var (
	errBadRequestBody     = newUpstreamError("", fasthttp.StatusBadRequest, "malformed request").body
	errBodyTooLargeBody   = newUpstreamError("", fasthttp.StatusRequestEntityTooLarge, "request body too large").body
	errHeaderTooLargeBody = newUpstreamError("", fasthttp.StatusRequestHeaderFieldsTooLarge, "request header fields too large").body
	errRequestTimeoutBody = newUpstreamError("", fasthttp.StatusRequestTimeout, "request timeout").body
)

// upstreamErrors lists every class; its order gives each its counter.
var upstreamErrors = [...]*upstreamError{errUpstreamTimeout, errUpstreamDown, errUpstreamTooLarge, errUpstreamPoolFull, errUpstreamBadResponse}

func init() {
	for i, e := range upstreamErrors {
		e.id = i
	}
}

// classify maps an error from HostClient to the answer the client gets.
func classify(err error) *upstreamError {
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return errUpstreamTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
		return errUpstreamTimeout
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return errUpstreamPoolFull
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return errUpstreamTooLarge
	case isSmallBuffer(err): // the upstream's response head does not fit the read buffer
		return errUpstreamBadResponse
	default:
		return errUpstreamDown
	}
}

func isSmallBuffer(err error) bool {
	var small *fasthttp.ErrSmallBuffer
	return errors.As(err, &small)
}

func isTooLarge(err error) bool {
	return errors.Is(err, fasthttp.ErrBodyTooLarge)
}

// writeJSONError answers with a pre-rendered JSON error body.
func writeJSONError(resp *fasthttp.Response, status int, body []byte) {
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/json")
	resp.SetBodyRaw(body)
}
