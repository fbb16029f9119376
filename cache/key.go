package cache

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/valyala/fasthttp"
)

// Cache keys are byte strings built per request into a pooled buffer and hashed with maphash; the
// entry keeps a copy of the full key so a hash collision is detected and treated as a miss.
//
// Layout (every variable field is length-prefixed, so distinct inputs never produce equal keys:
// a path holding a decoded "%3F" cannot pose as a query, a header value cannot pose as another):
//
//	'G'                                  method class: HEAD is answered from GET entries
//	len path                             the normalised path the proxy forwards
//	n  (len param)*n                     query params, stably sorted by name
//	['A' values(Authorization) values(Cookie)]   only for rules with allow_authorized
//	['V' (len name values(name))*]       variant part: the request headers the upstream varies on
//
// where values(h) = count, then each line of h length-prefixed (all lines: PeekAll).

const (
	classGet   = 'G'
	tagAuth    = 'A'
	tagVariant = 'V'
)

// param is one "name=value" member of a raw query string; nameLen bytes of kv are the name.
type param struct {
	kv      []byte
	nameLen int
}

// appendBaseKey appends the key of req's resource, without the variant part, to dst. params is
// scratch space for sorting the query, returned for reuse. Nothing of req is retained: the key
// bytes are copies.
func appendBaseKey(dst []byte, params []param, req *fasthttp.Request, auth bool) ([]byte, []param) {
	u := req.URI()
	dst = append(dst, classGet)
	dst = appendField(dst, u.Path())
	dst, params = appendQuery(dst, params, u.QueryString())
	if auth {
		dst = append(dst, tagAuth)
		dst = appendValues(dst, req.Header.PeekAll(fasthttp.HeaderAuthorization))
		dst = appendValues(dst, req.Header.PeekAll(fasthttp.HeaderCookie))
	}
	return dst, params
}

// appendVariant appends the variant part for the header names (lower-case, sorted) to dst,
// reading the values from h.
func appendVariant(dst []byte, h *fasthttp.RequestHeader, names []string) []byte {
	dst = append(dst, tagVariant)
	for _, name := range names {
		dst = appendField(dst, name)
		dst = appendValues(dst, h.PeekAll(name))
	}
	return dst
}

// appendQuery appends the canonical form of the raw query q: its '&'-separated members, empty
// ones dropped, stably sorted by name. Members with the same name keep their relative order
// ("a=1&a=2" and "a=2&a=1" may mean different lists upstream); values are not decoded, so
// "a=%41" and "a=A" are different keys (a miss at worst, never a wrong answer).
func appendQuery(dst []byte, params []param, q []byte) ([]byte, []param) {
	params = params[:0]
	for len(q) > 0 {
		m := q
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			m, q = q[:i], q[i+1:]
		} else {
			q = nil
		}
		if len(m) == 0 {
			continue
		}
		n := bytes.IndexByte(m, '=')
		if n < 0 {
			n = len(m)
		}
		params = append(params, param{kv: m, nameLen: n})
	}
	slices.SortStableFunc(params, cmpParamName)
	dst = binary.AppendUvarint(dst, uint64(len(params)))
	for i := range params {
		dst = appendField(dst, params[i].kv)
	}
	clear(params) // drop references to the request's bytes before the slice goes back to the pool
	return dst, params
}

func cmpParamName(a, b param) int {
	return bytes.Compare(a.kv[:a.nameLen], b.kv[:b.nameLen])
}

func appendField[T string | []byte](dst []byte, b T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendValues(dst []byte, lines [][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(lines)))
	for _, l := range lines {
		dst = appendField(dst, l)
	}
	return dst
}

// keyPath returns the path inside a key built by appendBaseKey (a sub-slice of key).
func keyPath(key []byte) []byte {
	if len(key) < 2 {
		return nil
	}
	n, w := binary.Uvarint(key[1:])
	if w <= 0 || uint64(len(key)-1-w) < n {
		return nil
	}
	return key[1+w : 1+w+int(n)]
}
