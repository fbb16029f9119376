package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// hopHeaders are meaningful only for one connection and must not be forwarded in either direction
// (RFC 9110 §7.6.1). fasthttp forwards them unless told otherwise, so the proxy removes them itself.
// Proxy-Authorization and Proxy-Authenticate are credentials for this hop, not for the upstream.
var hopHeaders = []string{
	fasthttp.HeaderConnection,
	"Keep-Alive",
	"Proxy-Connection",
	fasthttp.HeaderTE,
	fasthttp.HeaderTransferEncoding,
	fasthttp.HeaderUpgrade,
	fasthttp.HeaderTrailer,
	fasthttp.HeaderProxyAuthorization,
	fasthttp.HeaderProxyAuthenticate,
}

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

// removeRequestHop strips hop-by-hop fields from a request about to go upstream. scratch is a reusable
// buffer; the grown buffer is returned.
func removeRequestHop(h *fasthttp.RequestHeader, scratch []byte) []byte {
	scratch = connectionTokens(scratch[:0], h.PeekAll(fasthttp.HeaderConnection))
	forEachToken(scratch, h.DelBytes)
	for _, name := range hopHeaders {
		h.Del(name)
	}
	return scratch
}

// removeResponseHop strips hop-by-hop fields from an upstream response before it is stored or sent.
// Deleting Connection also clears fasthttp's close flag, so an upstream "Connection: close" ends only
// the upstream connection, never the client's.
func removeResponseHop(h *fasthttp.ResponseHeader, scratch []byte) []byte {
	scratch = connectionTokens(scratch[:0], h.PeekAll(fasthttp.HeaderConnection))
	forEachToken(scratch, h.DelBytes)
	for _, name := range hopHeaders {
		h.Del(name)
	}
	return scratch
}

// appendForwarded sets X-Forwarded-For (all existing lines joined, then the peer, as nginx's
// $proxy_add_x_forwarded_for), X-Forwarded-Proto from our own listener and Via. scratch is reused.
func appendForwarded(h *fasthttp.RequestHeader, peer netip.Addr, scratch []byte) []byte {
	scratch = scratch[:0]
	for _, line := range h.PeekAll(fasthttp.HeaderXForwardedFor) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		scratch = append(scratch, line...)
		scratch = append(scratch, ", "...)
	}
	scratch = peer.AppendTo(scratch)
	h.SetBytesV(fasthttp.HeaderXForwardedFor, scratch)

	h.Set(fasthttp.HeaderXForwardedProto, "http")

	scratch = scratch[:0]
	for _, line := range h.PeekAll(fasthttp.HeaderVia) {
		scratch = append(scratch, line...)
		scratch = append(scratch, ", "...)
	}
	scratch = append(scratch, viaToken...)
	h.SetBytesV(fasthttp.HeaderVia, scratch)
	return scratch
}
