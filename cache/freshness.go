package cache

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// verdict says whether a response may be stored and, if not, why. Tests assert on it.
type verdict uint8

const (
	storable  verdict = iota
	badStatus         // only 200, 203, 301 and 404 are stored; never 429 (RFC 6585 §4) or 5xx
	setCookie         // a Set-Cookie belongs to one client (RFC 9111 §7.3)
	noStore           // Cache-Control: no-store (RFC 9111 §5.2.2.5)
	private           // Cache-Control: private, meant for a single user (RFC 9111 §5.2.2.7)
	noCache           // Cache-Control: no-cache demands revalidation, which we do not do (§5.2.2.4)
	varyStar          // Vary: * can never be matched (RFC 9110 §12.5.5)
	notFresh          // max-age=0, s-maxage=0, Age beyond max-age, Expires in the past or invalid
	tooBig            // larger than max_entry_bytes
)

var verdictNames = [...]string{"storable", "status", "set-cookie", "no-store", "private", "no-cache", "vary-star", "not-fresh", "too-big"}

func (v verdict) String() string { return verdictNames[v] }

// freshness is what a response's status and headers allow for one rule.
type freshness struct {
	ttl     time.Duration // how long the entry is fresh, from now
	age     time.Duration // the upstream's Age: the entry is already this old
	noStale bool          // must-revalidate, proxy-revalidate or s-maxage: never serve it stale (§4.2.4)
	vary    []string      // lower-case, sorted, deduplicated header names from Vary
}

// assess decides whether resp, fetched for a request matched by r, may be stored.
func (r *rule) assess(resp *fasthttp.Response, now time.Time) (freshness, verdict) {
	var f freshness
	switch resp.StatusCode() {
	case fasthttp.StatusOK, fasthttp.StatusNonAuthoritativeInfo, fasthttp.StatusMovedPermanently:
		f.ttl = r.ttl
	case fasthttp.StatusNotFound:
		f.ttl = r.notFoundTTL
	default:
		return f, badStatus
	}
	if hasSetCookie(&resp.Header) {
		return f, setCookie
	}
	cc := parseCacheControl(resp.Header.PeekAll(fasthttp.HeaderCacheControl))
	switch {
	case cc.noStore:
		return f, noStore
	case cc.private:
		return f, private
	case cc.noCache:
		return f, noCache
	}
	f.age = parseAge(resp.Header.Peek(fasthttp.HeaderAge))
	f.noStale = cc.mustRevalidate || cc.sMaxAge >= 0
	switch {
	case cc.sMaxAge >= 0: // a shared cache prefers s-maxage (§5.2.2.10)
		f.ttl = min(f.ttl, time.Duration(cc.sMaxAge)*time.Second-f.age)
	case cc.maxAge >= 0:
		f.ttl = min(f.ttl, time.Duration(cc.maxAge)*time.Second-f.age)
	default:
		if exp := resp.Header.Peek(fasthttp.HeaderExpires); exp != nil {
			t, err := fasthttp.ParseHTTPDate(exp)
			if err != nil { // an invalid Expires means "already expired" (§5.3)
				return f, notFresh
			}
			f.ttl = min(f.ttl, t.Sub(now))
		}
	}
	if f.ttl <= 0 {
		return f, notFresh
	}
	var star bool
	f.vary, star = parseVary(resp.Header.PeekAll(fasthttp.HeaderVary))
	if star {
		return f, varyStar
	}
	return f, storable
}

// shareable reports whether resp may be handed to coalesced waiters even when it is not stored:
// anything but a response meant for one client (Set-Cookie, Cache-Control: private).
func shareable(resp *fasthttp.Response) bool {
	return !hasSetCookie(&resp.Header) && !parseCacheControl(resp.Header.PeekAll(fasthttp.HeaderCacheControl)).private
}

func hasSetCookie(h *fasthttp.ResponseHeader) bool {
	for range h.Cookies() {
		return true
	}
	return false
}

// cacheControl holds the response directives we act on. Ages are seconds, -1 when absent.
type cacheControl struct {
	noStore, private, noCache, mustRevalidate bool
	maxAge, sMaxAge                           int64
}

// parseCacheControl reads every Cache-Control line. A directive given twice keeps its smallest
// value and an unparsable age counts as 0: when in doubt, store less (RFC 9111 §4.2.1).
// Field-qualified forms (private="x", no-cache="x") are treated as unqualified: stricter, simpler.
func parseCacheControl(lines [][]byte) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	for _, line := range lines {
		for len(line) > 0 {
			var d []byte
			if i := bytes.IndexByte(line, ','); i >= 0 {
				d, line = line[:i], line[i+1:]
			} else {
				d, line = line, nil
			}
			cc.apply(bytes.TrimSpace(d))
		}
	}
	return cc
}

func (cc *cacheControl) apply(d []byte) {
	name, value, _ := bytes.Cut(d, []byte{'='})
	name = bytes.TrimSpace(name)
	switch {
	case equalFold(name, "no-store"):
		cc.noStore = true
	case equalFold(name, "private"):
		cc.private = true
	case equalFold(name, "no-cache"):
		cc.noCache = true
	case equalFold(name, "must-revalidate"), equalFold(name, "proxy-revalidate"):
		cc.mustRevalidate = true
	case equalFold(name, "max-age"):
		cc.maxAge = minAge(cc.maxAge, parseSeconds(value))
	case equalFold(name, "s-maxage"):
		cc.sMaxAge = minAge(cc.sMaxAge, parseSeconds(value))
	}
}

func equalFold(b []byte, s string) bool { return strings.EqualFold(string(b), s) }

func minAge(old, v int64) int64 {
	if old < 0 {
		return v
	}
	return min(old, v)
}

// parseSeconds parses a delta-seconds value, quoted or not; invalid input yields 0.
// Values beyond ~31 years saturate, as RFC 9111 §1.2.2 allows.
func parseSeconds(v []byte) int64 {
	v = bytes.Trim(bytes.TrimSpace(v), `"`)
	if len(v) == 0 {
		return 0
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		if n < 1<<30 {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, 1<<30)
}

// parseAge reads the upstream's Age header; absent or invalid is 0.
func parseAge(v []byte) time.Duration {
	if len(v) == 0 {
		return 0
	}
	return time.Duration(parseSeconds(v)) * time.Second
}

// parseVary returns the lower-case, sorted, deduplicated field names listed by Vary, and whether
// one of them is "*".
func parseVary(lines [][]byte) (names []string, star bool) {
	for _, line := range lines {
		for f := range bytes.SplitSeq(line, []byte{','}) {
			f = bytes.TrimSpace(f)
			switch {
			case len(f) == 0:
			case len(f) == 1 && f[0] == '*':
				star = true
			default:
				names = append(names, strings.ToLower(string(f)))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), star
}
