package cache

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// entry is one cached response, or a variant marker. Entries are immutable once built and shared
// by every reader: nothing in them refers to a fasthttp buffer, everything was copied.
type entry struct {
	key []byte // the full key: detects hash collisions, and holds the path for Purge
	// head is the stored status line and fields, already parsed into fasthttp's own form: a hit
	// copies it wholesale (ResponseHeader.CopyTo, a memmove per field) instead of setting each
	// field, which re-validates and searches the fields set so far, O(n²) per hit.
	head fasthttp.ResponseHeader
	body []byte

	// The validators of a stored 200, for conditional requests (conditional.go): read once here
	// because head is shared by every reader and its Peek writes into a scratch buffer.
	etag         []byte
	lastModified time.Time

	// Unix nanoseconds. stored is the Age origin (upstream Age already subtracted), 0 for a
	// response that was never stored (a coalesced non-storable answer: no Age stamped).
	stored, expires, staleUntil int64

	// vary, when non-nil, makes this a marker: the response for this base key varies on these
	// request headers (lower-case, sorted) and the variants live under base key + variant part.
	vary []string

	size int64 // key, header and body bytes: what max_entry_bytes bounds
	cost int64 // the ristretto cost: size plus the fixed overheads, the bytes held, roughly
}

// Canonical header names and X-Cache values as []byte, for SetCanonical.
var (
	xCacheName   = []byte(headerXCache)
	ageName      = []byte(fasthttp.HeaderAge)
	resultValues = [...][]byte{[]byte("BYPASS"), []byte("HIT"), []byte("MISS"), []byte("STALE")}
)

// entryOverhead approximates the fixed bytes of an entry (struct, slice headers) for its cost,
// and fieldOverhead those of each stored header field (fasthttp's key/value slice pair).
const (
	entryOverhead = 160 + int64(unsafe.Sizeof(fasthttp.ResponseHeader{}))
	fieldOverhead = 56
)

// dropAlways are response fields never copied into an entry: hop-by-hop fields (RFC 9110 §7.6.1;
// the proxy removes them too, this is a second line), fields fasthttp recomputes (Content-Length,
// Date) and our own X-Cache.
var dropAlways = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Content-Length", "Date", "X-Cache",
}

// dropStored are further fields never stored: per-client rate-limit state, stamped fresh by the
// proxy on every answer (draft-ietf-httpapi-ratelimit-headers), and Age, recomputed on each hit.
var dropStored = []string{"Ratelimit", "Ratelimit-Policy", "Retry-After", "Age"}

// newEntry copies resp into a new entry under key. stored selects the stricter header filter of
// entries kept in the cache; a snapshot handed only to coalesced waiters keeps rate-limit fields.
func newEntry(key []byte, resp *fasthttp.Response, stored bool) *entry {
	body := resp.Body()
	e := &entry{
		key: append([]byte(nil), key...), // copied: key is a pooled buffer
		// Copied: fasthttp reuses resp's buffers. Exact capacity, so an append by a reader of
		// a hit's body (SetBodyRaw) always reallocates and never writes into this entry.
		body: append(make([]byte, 0, len(body)), body...),
	}
	// Replay exactly what the origin sent: CopyTo carries this flag to every hit, so a response
	// that had no Content-Type does not gain fasthttp's default one.
	e.head.SetNoDefaultContentType(true)
	e.head.SetStatusCode(resp.StatusCode())
	for k, v := range resp.Header.All() {
		if dropField(k, stored) {
			continue
		}
		// Names came out of a parsed fasthttp header, so they are already in the form fasthttp
		// keeps (SetCanonical skips re-normalising); a repeated name is kept repeated.
		if e.head.PeekBytes(k) != nil {
			e.head.AddBytesKV(k, v)
		} else {
			e.head.SetCanonical(k, v)
		}
		e.size += int64(len(k) + len(v))
		e.cost += fieldOverhead
	}
	// X-Cache comes last, as HIT, the answer of almost every replay: a hit then copies it with the
	// rest instead of setting it (writeTo replaces it for the other results).
	e.head.SetCanonical(xCacheName, resultValues[Hit])
	etag, lm := validators(&resp.Header)
	e.etag, e.lastModified = bytes.Clone(etag), lm // cloned: etag points into resp
	e.size += int64(len(e.key) + len(e.body))
	e.cost += e.size + entryOverhead
	return e
}

// newMarker builds a variant marker for base key key.
func newMarker(key []byte, vary []string) *entry {
	e := &entry{key: append([]byte(nil), key...), vary: vary}
	e.cost = int64(len(e.key)) + entryOverhead
	for _, v := range vary {
		e.cost += int64(len(v)) + 16
	}
	return e
}

func dropField(k []byte, stored bool) bool {
	for _, f := range dropAlways {
		if strings.EqualFold(string(k), f) {
			return true
		}
	}
	if stored {
		for _, f := range dropStored {
			if strings.EqualFold(string(k), f) {
				return true
			}
		}
	}
	return false
}

// writeTo replaces resp with e. The body is shared, not copied (SetBodyRaw): it is immutable, and
// resp must not be modified in place afterwards (appending or replacing is fine).
func (e *entry) writeTo(resp *fasthttp.Response, now time.Time, r Result) {
	resp.Reset()
	e.head.CopyTo(&resp.Header)
	resp.SetBodyRaw(e.body)
	if r != Hit {
		resp.Header.SetCanonical(xCacheName, resultValues[r])
	}
	if e.stored != 0 {
		setAge(resp, now.UnixNano()-e.stored)
	}
}

// setAge sets Age to the whole seconds in d nanoseconds (RFC 9111 §5.1), never negative.
func setAge(resp *fasthttp.Response, d int64) {
	var buf [20]byte
	resp.Header.SetCanonical(ageName, strconv.AppendInt(buf[:0], max(d, 0)/int64(time.Second), 10))
}
