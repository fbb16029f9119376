package proxy

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzRequestHeaders: whatever header block a client sends, preparing it for the upstream never
// panics, leaves no hop-by-hop field (nor any field its Connection lines named), and ends with our
// X-Forwarded-For and Via.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\n")
	f.Add("Connection: close\r\nConnection: ,,X-A ,\r\nX-A: 1\r\nX-Forwarded-For: 1.2.3.4\r\n")
	f.Add("Upgrade: websocket\r\nConnection: Upgrade\r\nVia: 1.0 a\r\nVia: 1.1 b\r\n")
	f.Add("Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: x\r\n")
	f.Add("TE : trailers\r\nUpgrade\t: h2c\r\nX-Forwarded-For:\r\nvia:  1.0 x \r\n")
	f.Add("X-Folded: a\r\n b\r\nkeep-alive: 1\r\n")
	f.Fuzz(func(t *testing.T, headers string) {
		raw := "GET /x HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n"
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // fasthttp refuses it before our handler would run
		}
		var named []string
		for _, line := range req.Header.PeekAll(fasthttp.HeaderConnection) {
			forEachToken(line, func(tok []byte) { named = append(named, string(tok)) })
		}
		// The fast path (one scan of the raw head) must agree with the careful one (lookups by name).
		var careful fasthttp.Request
		req.CopyTo(&careful)
		careful.Header.SetNoDefaultContentType(true)
		scratch := removeHop(&careful.Header, nil)
		appendForwarded(&careful.Header, netip.MustParseAddr("192.0.2.1"), scratch)
		prepareRequest(&req.Header, netip.MustParseAddr("192.0.2.1"), nil)
		for _, k := range []string{"X-Forwarded-For", "Via", "X-Forwarded-Proto"} {
			if a, b := strings.TrimSpace(string(req.Header.Peek(k))), strings.TrimSpace(string(careful.Header.Peek(k))); strings.ReplaceAll(a, " ", "") != strings.ReplaceAll(b, " ", "") {
				t.Fatalf("%s: fast path %q, careful path %q", k, a, b)
			}
		}
		if a, b := headerNames(&req.Header), headerNames(&careful.Header); a != b {
			t.Fatalf("fields left: fast path %s, careful path %s", a, b)
		}
		for _, h := range hopHeaders {
			if v := req.Header.Peek(h); len(v) > 0 {
				t.Fatalf("hop-by-hop %s survived: %q", h, v)
			}
		}
		for _, n := range named {
			if strings.EqualFold(n, "Via") || strings.EqualFold(n, "X-Forwarded-For") || strings.EqualFold(n, "X-Forwarded-Proto") || strings.EqualFold(n, "Host") {
				continue // set again by the proxy after removal
			}
			if v := req.Header.Peek(n); len(v) > 0 {
				t.Fatalf("%s was named by Connection but survived: %q", n, v)
			}
		}
		if !bytes.HasSuffix(req.Header.Peek(fasthttp.HeaderXForwardedFor), []byte("192.0.2.1")) {
			t.Fatalf("X-Forwarded-For %q does not end with the peer", req.Header.Peek(fasthttp.HeaderXForwardedFor))
		}
		if !bytes.HasSuffix(req.Header.Peek(fasthttp.HeaderVia), []byte(viaToken)) {
			t.Fatalf("Via %q does not end with ours", req.Header.Peek(fasthttp.HeaderVia))
		}
	})
}

// headerNames lists a request's header names in order, for comparing two preparations.
func headerNames(h *fasthttp.RequestHeader) string {
	var b strings.Builder
	for k := range h.All() {
		b.Write(k)
		b.WriteByte(' ')
	}
	return b.String()
}
