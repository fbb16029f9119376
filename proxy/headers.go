package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// hopHeaders are meaningful only for one connection and must not be forwarded in either direction
// (RFC 9110 §7.6.1). fasthttp forwards them unless told otherwise, so the proxy removes them itself.
// Proxy-Authorization and Proxy-Authenticate are credentials for this hop, not for the upstream.
//
// The names are written exactly as fasthttp stores parsed header names ("TE" is stored "Te"), so
// they can be looked up with key normalisation switched off: normalising the same constant names
// on every request was half the cost of preparing a request (BenchmarkPrepareRequest).
var hopHeaders = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Te",
	"Transfer-Encoding",
	"Upgrade",
	"Trailer",
	"Proxy-Authorization",
	"Proxy-Authenticate",
}

// Canonical names of the headers the proxy sets, for use with normalisation off.
const (
	headerXForwardedFor   = "X-Forwarded-For"
	headerXForwardedProto = "X-Forwarded-Proto"
	headerVia             = "Via"
)

// viaToken is what this proxy adds to Via (RFC 9110 §7.6.3): protocol version and a pseudonym,
// never the host name.
const viaToken = "1.1 meliproxy"

// connectionTokens copies into dst the header names listed in every Connection line. They are
// copied because deleting headers moves the bytes Peek returned.
func connectionTokens(dst []byte, lines [][]byte) []byte {
	for _, line := range lines {
		dst = append(dst, line...)
		dst = append(dst, ',')
	}
	return dst
}

// forEachToken calls f for each comma-separated, trimmed, non-empty token of list.
func forEachToken(list []byte, f func(tok []byte)) {
	for len(list) > 0 {
		i := bytes.IndexByte(list, ',')
		tok := list
		if i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 {
			f(tok)
		}
	}
}

// isHopName reports whether a header name, as fasthttp stores it, is one of hopHeaders.
func isHopName(k []byte) bool {
	for _, h := range hopHeaders {
		if string(k) == h {
			return true
		}
	}
	return false
}

// prepareRequest readies a client request for the upstream: hop-by-hop fields removed, then
// X-Forwarded-For, X-Forwarded-Proto and Via set. Most requests carry no hop-by-hop field at all,
// so one scan of the head as received (RawHeaders) decides whether the removal, about twenty header
// lookups, runs; it also gathers the X-Forwarded-For and Via lines. A request without a raw head
// (built in code, not read from a client) always takes the full path.
func prepareRequest(h *fasthttp.RequestHeader, peer netip.Addr, scratch []byte) []byte {
	hop, buf, n, ok := scanHead(h.RawHeaders(), scratch[:0])
	if !ok || hop {
		buf = removeHop(h, buf[:0])
		return appendForwarded(h, peer, buf)
	}
	// The client's "Connection: close" (or HTTP/1.0) must not close the pooled upstream connection;
	// the exchange remembered it for the client side.
	h.ResetConnectionClose()
	// buf holds the client's X-Forwarded-For lines, then its Via lines; the new values follow.
	xff, via := buf[:n], buf[n:]
	start := len(buf)
	buf = peer.AppendTo(append(buf, xff...))
	h.SetCanonical(keyXForwardedFor, buf[start:])
	h.SetCanonical(keyXForwardedProto, valueHTTP)
	start = len(buf)
	buf = append(append(buf, via...), viaToken...)
	h.SetCanonical(keyVia, buf[start:])
	return buf
}

// Canonical header names and values as bytes, for SetCanonical without a conversion per request.
var (
	keyXForwardedFor   = []byte(headerXForwardedFor)
	keyXForwardedProto = []byte(headerXForwardedProto)
	keyVia             = []byte(headerVia)
	valueHTTP          = []byte("http")
)

// scanHead walks a raw request head once. It reports whether any hop-by-hop field is present and
// appends to dst the X-Forwarded-For values, then the Via values, each line followed by ", ";
// dst[:n] are the former. ok is false when the head is empty or holds something this scan does not
// handle (a folded line, too many Via lines), so the caller takes the careful path.
func scanHead(raw, dst []byte) (hop bool, out []byte, n int, ok bool) {
	if len(raw) == 0 {
		return false, dst, 0, false
	}
	var viaLines [8][]byte
	nVia := 0
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		line := raw
		if i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return false, dst, 0, false // obs-fold: leave it to fasthttp's own lookups
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		name, value := line[:c], bytes.TrimSpace(line[c+1:])
		switch {
		case isHopNameFold(name):
			hop = true
		case asciiEqualFold(name, headerXForwardedFor):
			if len(value) > 0 {
				dst = append(append(dst, value...), ", "...)
			}
		case asciiEqualFold(name, headerVia):
			if nVia == len(viaLines) {
				return false, dst, 0, false
			}
			viaLines[nVia] = value
			nVia++
		}
	}
	n = len(dst)
	for _, v := range viaLines[:nVia] {
		dst = append(append(dst, v...), ", "...)
	}
	return hop, dst, n, true
}

// isHopNameFold is isHopName for a name in any case, as received.
func isHopNameFold(name []byte) bool {
	for _, h := range hopHeaders {
		if asciiEqualFold(name, h) {
			return true
		}
	}
	return false
}

// asciiEqualFold compares an ASCII header name without regard to case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}

// hopFields is what hop-by-hop removal needs of a request or response header.
type hopFields interface {
	PeekAll(key string) [][]byte
	Del(key string)
	DelBytes(key []byte)
	DisableNormalizing() (was bool)
	EnableNormalizing() (was bool)
}

var (
	_ hopFields = (*fasthttp.RequestHeader)(nil)
	_ hopFields = (*fasthttp.ResponseHeader)(nil)
)

// removeHop strips hop-by-hop fields, and every field the Connection lines name, from h. Deleting
// Connection also clears fasthttp's close flag, so a "Connection: close" ends only its own hop.
// The fixed names are looked up with normalisation off (they are written as stored); the
// Connection tokens, in whatever case the peer sent, with it on. scratch is a reusable buffer;
// the grown buffer is returned.
func removeHop(h hopFields, scratch []byte) []byte {
	off := h.DisableNormalizing()
	scratch = connectionTokens(scratch[:0], h.PeekAll("Connection"))
	restoreNormalizing(h, off)
	forEachToken(scratch, h.DelBytes)
	h.DisableNormalizing()
	for _, name := range hopHeaders {
		h.Del(name)
	}
	restoreNormalizing(h, off)
	return scratch
}

// restoreNormalizing puts back the normalisation setting DisableNormalizing reported.
func restoreNormalizing(h hopFields, wasOff bool) {
	if !wasOff {
		h.EnableNormalizing()
	}
}

// removeResponseHop strips hop-by-hop fields from an upstream response before it is stored or sent.
func removeResponseHop(h *fasthttp.ResponseHeader, scratch []byte) []byte {
	// One walk over the stored fields finds the usual case, none present, without a lookup per name.
	for k := range h.All() {
		if isHopName(k) {
			return removeHop(h, scratch)
		}
	}
	return scratch
}

// appendForwarded sets X-Forwarded-For (all existing lines joined, then the peer, as nginx's
// $proxy_add_x_forwarded_for), X-Forwarded-Proto from our own listener and Via. scratch is reused.
func appendForwarded(h *fasthttp.RequestHeader, peer netip.Addr, scratch []byte) []byte {
	defer restoreNormalizing(h, h.DisableNormalizing())
	scratch = scratch[:0]
	for _, line := range h.PeekAll(headerXForwardedFor) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		scratch = append(scratch, line...)
		scratch = append(scratch, ", "...)
	}
	scratch = peer.AppendTo(scratch)
	h.SetBytesV(headerXForwardedFor, scratch)

	h.Set(headerXForwardedProto, "http")

	scratch = scratch[:0]
	for _, line := range h.PeekAll(headerVia) {
		scratch = append(scratch, line...)
		scratch = append(scratch, ", "...)
	}
	scratch = append(scratch, viaToken...)
	h.SetBytesV(headerVia, scratch)
	return scratch
}
