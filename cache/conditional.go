package cache

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
)

// Conditional requests (RFC 9110 §13, RFC 9111 §4.3.2): a client that already holds the stored
// response, and says so with If-None-Match or If-Modified-Since, gets 304 Not Modified from memory
// instead of the whole body again, as from nginx's proxy_cache. Only a 200 is validated; anything
// else answers as it would without the condition.
//
// On a miss the leader's fetch goes upstream without those two fields (stripConditional), as
// nginx does: the cache needs the whole 200 to store it and to hand it to coalesced requests,
// and an upstream 304 would be neither. The client's condition is then evaluated against what
// it is answered with: the stored entry, the stale copy, or the unstored 200.

// notModified reports whether the client's preconditions (If-None-Match and If-Modified-Since
// values, nil when absent) say its copy of e is current, so that e may be answered with 304.
func (e *entry) notModified(ifNoneMatch, ifModifiedSince []byte) bool {
	return preconditionsHold(e.head.StatusCode(), e.etag, e.lastModified, ifNoneMatch, ifModifiedSince)
}

// respNotModified is notModified for an answer that was not stored (a Cache-Control: no-cache
// 200, say): its validators are read from resp itself.
func respNotModified(resp *fasthttp.Response, ifNoneMatch, ifModifiedSince []byte) bool {
	if ifNoneMatch == nil && ifModifiedSince == nil {
		return false
	}
	etag, lastModified := validators(&resp.Header)
	return preconditionsHold(resp.StatusCode(), etag, lastModified, ifNoneMatch, ifModifiedSince)
}

// validators returns h's ETag (nil: none; it points into h) and Last-Modified (zero: none or
// invalid, so never validated against).
func validators(h *fasthttp.ResponseHeader) (etag []byte, lastModified time.Time) {
	if v := h.Peek(fasthttp.HeaderLastModified); v != nil {
		lastModified, _ = fasthttp.ParseHTTPDate(v)
	}
	return h.Peek(fasthttp.HeaderETag), lastModified
}

// preconditionsHold is the evaluation of RFC 9110 §13.2.2 for a GET or HEAD answered with status
// and the validators etag and lastModified (zero: none): If-None-Match, when present, decides
// alone; If-Modified-Since counts only without it and only against a Last-Modified. Only a 200 is
// validated.
func preconditionsHold(status int, etag []byte, lastModified time.Time, ifNoneMatch, ifModifiedSince []byte) bool {
	if status != fasthttp.StatusOK {
		return false
	}
	if ifNoneMatch != nil {
		return etagListMatches(ifNoneMatch, etag)
	}
	if lastModified.IsZero() || ifModifiedSince == nil {
		return false
	}
	since, err := fasthttp.ParseHTTPDate(ifModifiedSince)
	// An invalid date is ignored (§13.1.3).
	return err == nil && !lastModified.After(since)
}

// etagListMatches reports whether the If-None-Match field value list matches etag by weak
// comparison (§8.8.3.2: the W/ prefixes are ignored, the opaque tags must be equal). "*" matches
// any stored representation. The list is read tag by tag, not split on commas: a comma is a
// legal character inside an entity tag. A malformed member is skipped up to the next comma.
func etagListMatches(list, etag []byte) bool {
	if bytes.Equal(bytes.TrimSpace(list), []byte("*")) {
		return true
	}
	want, ok := opaqueTag(etag)
	if !ok {
		return false
	}
	for {
		list = bytes.TrimLeft(list, " \t,")
		if len(list) == 0 {
			return false
		}
		list = bytes.TrimPrefix(list, []byte("W/"))
		if len(list) == 0 {
			return false
		}
		if list[0] != '"' {
			i := bytes.IndexByte(list, ',')
			if i < 0 {
				return false
			}
			list = list[i+1:]
			continue
		}
		end := bytes.IndexByte(list[1:], '"')
		if end < 0 {
			return false
		}
		if bytes.Equal(list[:end+2], want) {
			return true
		}
		list = list[end+2:]
	}
}

// opaqueTag returns the quoted part of an entity tag (`"x"` or `W/"x"`), quotes included.
func opaqueTag(tag []byte) ([]byte, bool) {
	tag = bytes.TrimPrefix(tag, []byte("W/"))
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || bytes.IndexByte(tag[1:len(tag)-1], '"') >= 0 {
		return nil, false
	}
	return tag, true
}

// stripConditional removes the preconditions the cache evaluates itself from a request about
// to be fetched for the cache.
func stripConditional(h *fasthttp.RequestHeader) {
	h.Del(fasthttp.HeaderIfNoneMatch)
	h.Del(fasthttp.HeaderIfModifiedSince)
}

// writeNotModified turns a hit already written into resp into its 304: same fields (ETag,
// Cache-Control, Expires, Vary, Age, X-Cache... which §15.4.5 asks for), no body.
func writeNotModified(resp *fasthttp.Response) {
	resp.SetStatusCode(fasthttp.StatusNotModified)
	resp.SkipBody = true
}
