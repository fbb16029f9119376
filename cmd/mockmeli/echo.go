package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// echoReply describes a request exactly as it reached mockmeli, so proxy
// tests can assert on what was forwarded upstream.
type echoReply struct {
	Method       string      `json:"method"`
	URI          string      `json:"uri"`           // request target as received
	Path         string      `json:"path"`          // after fasthttp normalisation
	PathOriginal string      `json:"path_original"` // as received, not normalised
	RawQuery     string      `json:"raw_query"`
	Host         string      `json:"host"`
	Proto        string      `json:"proto"`
	Headers      [][2]string `json:"headers"` // every header line in arrival order, repeats kept
	BodyLength   int         `json:"body_length"`
	BodySHA256   string      `json:"body_sha256"`
	RemoteAddr   string      `json:"remote_addr"`
}

// echo answers any method with an echoReply. Query parameters shape the
// response, for tests of the response direction: status=N sets the status,
// and each set=Name:Value adds a response header line.
// Not on the hot path: it marshals JSON per request.
func (s *server) echo(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	sum := sha256.Sum256(body)
	r := echoReply{
		Method:       string(ctx.Method()),
		URI:          string(ctx.RequestURI()),
		Path:         string(ctx.Path()),
		PathOriginal: string(ctx.Request.URI().PathOriginal()),
		RawQuery:     string(ctx.Request.URI().QueryString()),
		Host:         string(ctx.Host()),
		Proto:        string(ctx.Request.Header.Protocol()),
		Headers:      requestHeaders(&ctx.Request.Header),
		BodyLength:   len(body),
		BodySHA256:   hex.EncodeToString(sum[:]),
		RemoteAddr:   ctx.RemoteAddr().String(),
	}
	out, err := json.Marshal(r)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	status := fasthttp.StatusOK
	if v := ctx.QueryArgs().GetUintOrZero("status"); v >= 200 && v <= 599 {
		status = v
	}
	for _, kv := range ctx.QueryArgs().PeekMulti("set") {
		if name, value, ok := bytes.Cut(kv, []byte{':'}); ok && len(name) > 0 {
			ctx.Response.Header.AddBytesKV(name, bytes.TrimSpace(value))
		}
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.Response.SetBody(out)
}

// requestHeaders lists the header lines as received. The raw header block is
// the faithful source (order, repeats, values untouched); names in it may
// have been normalised to canonical case by fasthttp.
func requestHeaders(h *fasthttp.RequestHeader) [][2]string {
	raw := h.RawHeaders()
	out := [][2]string{}
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		out = append(out, [2]string{string(name), string(bytes.TrimSpace(value))})
	}
	return out
}

// maxBig caps /big so a typo cannot ask for an endless body.
const maxBig = 16 << 30

// big answers /big?bytes=N with N bytes of a repeating 64-byte pattern,
// streamed with a Content-Length, or chunked with chunked=1.
func (s *server) big(ctx *fasthttp.RequestCtx) {
	n, err := strconv.ParseInt(string(ctx.QueryArgs().Peek("bytes")), 10, 64)
	if err != nil || n < 0 || n > maxBig {
		s.writeJSON(ctx, fasthttp.StatusBadRequest, badBigRequest)
		return
	}
	size := int(n)
	if ctx.QueryArgs().GetBool("chunked") {
		size = -1
	}
	ctx.Response.Header.SetContentType("application/octet-stream")
	ctx.SetBodyStream(&patternReader{left: n}, size)
}

var badBigRequest = apiError(400, "bad_request", "bytes must be an integer between 0 and 17179869184")

// bigPattern is what /big repeats; byte i of a body is bigPattern[i%64].
const bigPattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"

// patternReader yields left bytes of bigPattern.
type patternReader struct {
	off, left int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = bigPattern[(r.off+int64(i))%int64(len(bigPattern))]
	}
	r.off += int64(len(p))
	r.left -= int64(len(p))
	return len(p), nil
}

// status answers /status/{code} with that code and a small JSON body.
func (s *server) status(ctx *fasthttp.RequestCtx, code []byte) {
	c, err := strconv.Atoi(string(code))
	if err != nil || c < 200 || c > 599 {
		s.writeJSON(ctx, fasthttp.StatusNotFound, notFoundResource)
		return
	}
	var buf [24]byte
	ctx.SetStatusCode(c)
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.Response.SetBody(statusBody(buf[:0], c))
}

// maxSlow bounds /slow.
const maxSlow = 10 * time.Minute

// slow answers /slow?d=DUR after sleeping DUR (at most 10m; shutdown ends
// the sleep early).
func (s *server) slow(ctx *fasthttp.RequestCtx) {
	d, err := time.ParseDuration(string(ctx.QueryArgs().Peek("d")))
	if err != nil || d < 0 || d > maxSlow {
		s.writeJSON(ctx, fasthttp.StatusBadRequest, badSlowRequest)
		return
	}
	start := time.Now()
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-s.done:
		t.Stop()
	}
	ctx.Response.Header.SetContentTypeBytes(hContentType)
	ctx.SetBodyString(`{"slept":"` + time.Since(start).Round(time.Millisecond).String() + `"}`)
}

var badSlowRequest = apiError(400, "bad_request", "d must be a Go duration between 0 and 10m, e.g. 250ms")
