package cache

import (
	"bufio"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const (
	lastModified = "Tue, 14 Nov 2023 22:00:00 GMT"
	beforeLM     = "Tue, 14 Nov 2023 21:59:59 GMT"
	afterLM      = "Wed, 15 Nov 2023 08:00:00 GMT"
)

// TestConditionalHit: a fresh hit answers the client's own preconditions from memory, 304 with
// the validators and no body, and the full 200 when they do not match.
func TestConditionalHit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{"no precondition", nil, 200},
		{"If-None-Match equal", []string{`If-None-Match: "v1"`}, 304},
		{"weak comparison", []string{`If-None-Match: W/"v1"`}, 304},
		{"in a list", []string{`If-None-Match: "v0", "v1"`}, 304},
		{"list without spaces", []string{`If-None-Match: "v0","v1"`}, 304},
		{"star", []string{`If-None-Match: *`}, 304},
		{"other tag", []string{`If-None-Match: "v2"`}, 200},
		{"unquoted tag never matches", []string{`If-None-Match: v1`}, 200},
		{"If-Modified-Since after Last-Modified", []string{"If-Modified-Since: " + afterLM}, 304},
		{"If-Modified-Since equal", []string{"If-Modified-Since: " + lastModified}, 304},
		{"If-Modified-Since before", []string{"If-Modified-Since: " + beforeLM}, 200},
		{"If-Modified-Since invalid", []string{"If-Modified-Since: yesterday"}, 200},
		{"If-None-Match decides alone", []string{`If-None-Match: "v2"`, "If-Modified-Since: " + afterLM}, 200},
	}
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "body", `ETag: "v1"`, "Last-Modified: "+lastModified, "Cache-Control: max-age=60")
	do(c, t0, "/sites/MLA", o.fetch)
	c.Wait()
	for _, tt := range tests {
		for _, method := range []string{"GET", "HEAD"} {
			x := do(c, t0.Add(time.Second), method+" /sites/MLA", o.fetch, tt.headers...)
			if x.res != Hit || x.status != tt.want {
				t.Errorf("%s %s: %s %d, want HIT %d", method, tt.name, x.res, x.status, tt.want)
				continue
			}
			if tt.want == 304 {
				if !x.resp.SkipBody {
					t.Errorf("%s %s: 304 would carry the body", method, tt.name)
				}
				if x.header("ETag") != `"v1"` || x.header("Cache-Control") != "max-age=60" || x.header("X-Cache") != "HIT" || x.header("Age") != "1" {
					t.Errorf("%s %s: 304 fields ETag %q Cache-Control %q X-Cache %q Age %q", method, tt.name,
						x.header("ETag"), x.header("Cache-Control"), x.header("X-Cache"), x.header("Age"))
				}
			}
		}
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("upstream called %d times, want 1: every precondition is answered from memory", n)
	}
}

// TestConditionalOnlyValidates200: a stored 404 (or any non-200) is answered as is, whatever the
// client's preconditions say.
func TestConditionalOnlyValidates200(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(404, `{"error":"not_found"}`, `ETag: "v1"`)
	do(c, t0, "/sites/none", o.fetch)
	c.Wait()
	if x := do(c, t0, "/sites/none", o.fetch, "If-None-Match: *"); x.res != Hit || x.status != 404 || x.body == "" {
		t.Errorf("%s %d %q, want HIT 404 with its body", x.res, x.status, x.body)
	}
}

// recordingOrigin wraps o and keeps the If-None-Match and If-Modified-Since each fetch carried.
type recordingOrigin struct {
	*origin
	mu   sync.Mutex
	seen []string
}

func (r *recordingOrigin) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	r.mu.Lock()
	r.seen = append(r.seen, string(req.Header.Peek("If-None-Match"))+string(req.Header.Peek("If-Modified-Since")))
	r.mu.Unlock()
	return r.origin.fetch(req, resp)
}

// TestConditionalMiss: the leader's fetch goes upstream without the client's preconditions (the
// cache needs the whole 200), and the client's condition is evaluated against what came back.
func TestConditionalMiss(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := &recordingOrigin{origin: newOrigin(200, "body", `ETag: "v1"`)}
	x := do(c, t0, "/sites/MLA", o.fetch, `If-None-Match: "v1"`, "If-Modified-Since: "+afterLM)
	if x.res != Miss || x.status != 304 || !x.resp.SkipBody {
		t.Errorf("matching miss: %s %d skip body %v, want MISS 304 without body", x.res, x.status, x.resp.SkipBody)
	}
	if x := do(c, t0, "/categories/MLA1", o.fetch, `If-None-Match: "old"`); x.res != Miss || x.status != 200 || x.body != "body" {
		t.Errorf("non-matching miss: %s %d %q, want MISS 200 body", x.res, x.status, x.body)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, s := range o.seen {
		if s != "" {
			t.Errorf("fetch %d carried the client's preconditions upstream: %q", i, s)
		}
	}
}

// TestConditionalLeaderDoesNotLeak304: a conditional leader and an unconditional request
// coalesced behind it each get their own answer: 304 for the leader, the whole 200 for the other.
// (Before the leader's preconditions were stripped, an upstream 304 was handed to both.)
func TestConditionalLeaderDoesNotLeak304(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "body", `ETag: "v1"`, "Cache-Control: no-cache") // shared, never stored
	gate := make(chan struct{})
	o.set(func(o *origin) { o.gate = gate })
	// Like a real upstream: a matching If-None-Match gets 304 without a body.
	fetch := func(req *fasthttp.Request, resp *fasthttp.Response) error {
		err := o.fetch(req, resp)
		if string(req.Header.Peek("If-None-Match")) == `"v1"` {
			resp.SetStatusCode(fasthttp.StatusNotModified)
			resp.ResetBody()
		}
		return err
	}
	var leader, follower exchange
	var wg sync.WaitGroup
	wg.Go(func() { leader = do(c, t0, "/sites/MLA", fetch, `If-None-Match: "v1"`) })
	waitFor(t, func() bool { return o.calls.Load() == 1 })
	wg.Go(func() { follower = do(c, t0, "/sites/MLA", fetch) })
	waitFor(t, func() bool { return waiters(c) == 1 })
	close(gate)
	wg.Wait()
	if follower.status != 200 || follower.body != "body" || follower.resp.SkipBody {
		t.Errorf("follower: %d %q skip body %v, want the whole 200", follower.status, follower.body, follower.resp.SkipBody)
	}
	if leader.status != 304 {
		t.Errorf("leader: %d, want 304 (its tag matches what was fetched)", leader.status)
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("upstream called %d times, want 1 (coalesced)", n)
	}
}

// TestPartialRequestsBypass: Range, If-Range, If-Match and If-Unmodified-Since ask for an answer
// meant for this request alone (206, 412): such requests bypass the cache, neither stored nor
// coalesced, even on a cached path.
func TestPartialRequestsBypass(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"Range: bytes=0-1", `If-Range: "v1"`, `If-Match: "v1"`, "If-Unmodified-Since: " + lastModified, "range: bytes=0-1"} {
		c := newTestCache(t, testConfig(nil))
		o := newOrigin(206, "bo", `ETag: "v1"`)
		x := do(c, t0, "/sites/MLA", o.fetch, h)
		if x.res != Bypass || x.status != 206 {
			t.Errorf("%s: %s %d, want BYPASS 206", h, x.res, x.status)
		}
	}
}

func FuzzETagListMatches(f *testing.F) {
	for _, s := range []string{`"v1"`, `W/"v1"`, `"a", W/"b"`, `*`, ``, `"`, `W/`, `,,,`, `"a"b"`, `"a,b"`, `x, "v1"`} {
		f.Add(s, `"v1"`)
	}
	f.Fuzz(func(t *testing.T, list, etag string) {
		got := etagListMatches([]byte(list), []byte(etag)) // must not panic, whatever the input
		if _, ok := opaqueTag([]byte(etag)); ok {
			// A valid tag matches itself: alone, after another tag, and weak when stored strong.
			lists := []string{etag, `"zz", ` + etag, `"zz",` + etag}
			if !strings.HasPrefix(etag, "W/") {
				lists = append(lists, "W/"+etag)
			}
			for _, l := range lists {
				if !etagListMatches([]byte(l), []byte(etag)) {
					t.Errorf("%q does not match its own tag %q", l, etag)
				}
			}
		} else if got && strings.TrimSpace(list) != "*" {
			t.Errorf("invalid stored tag %q matched list %q: only * may", etag, list)
		}
	})
}

// TestBypassScanKeepsCookieBytes: deciding whether a request may use the cache must not change
// what is forwarded. A Cookie reaches the upstream byte for byte (fasthttp re-serialises cookies
// once they are parsed), and with allow_authorized a Cookie request with Range still bypasses.
func TestBypassScanKeepsCookieBytes(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(func(r *RuleConfig) { r.AllowAuthorized = true }))
	o := &origin{status: 200, echo: "Cookie"} // the body is the Cookie the upstream received
	for _, tt := range []struct {
		head string
		want Result
	}{
		{"GET /sites/MLA HTTP/1.1\r\nHost: x\r\nCookie: a=1;b=2\r\n\r\n", Miss},
		{"GET /sites/other HTTP/1.1\r\nHost: x\r\nCookie: a=1;b=2\r\nRange: bytes=0-0\r\n\r\n", Bypass},
		{"GET /sites/third HTTP/1.1\r\nHost: x\r\nCookie: a=1;b=2\r\nIf-Match: \"v\"\r\n\r\n", Bypass},
	} {
		// Parsed from the wire, as the server hands it over: the Cookie field not yet parsed.
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(tt.head))); err != nil {
			t.Fatal(err)
		}
		resp := new(fasthttp.Response)
		if res, _ := c.Serve(t0, &req, resp, o.fetch); res != tt.want {
			t.Errorf("%q: %s, want %s", tt.head, res, tt.want)
		}
		if got := string(resp.Body()); got != "a=1;b=2" {
			t.Errorf("%q: the upstream received Cookie %q, want the client's bytes a=1;b=2", tt.head, got)
		}
	}
}

// TestConditionalWithCookie: with allow_authorized, a request carrying a Cookie is read by peeks
// rather than one pass (scanRequest); its preconditions count all the same.
func TestConditionalWithCookie(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(func(r *RuleConfig) { r.AllowAuthorized = true }))
	o := newOrigin(200, "body", `ETag: "v1"`, "Last-Modified: "+lastModified)
	do(c, t0, "/sites/MLA", o.fetch, "Cookie: a=1")
	c.Wait()
	for _, h := range []string{`If-None-Match: "v1"`, "If-Modified-Since: " + afterLM} {
		if x := do(c, t0, "/sites/MLA", o.fetch, "Cookie: a=1", h); x.res != Hit || x.status != 304 {
			t.Errorf("%s with a Cookie: %s %d, want HIT 304", h, x.res, x.status)
		}
	}
}

// TestConditionalStaleAndUnstored: the client's preconditions are checked against whatever a
// cached path answers with: a stale copy served because the upstream failed, or a 200 fetched
// but not stored (no-cache), alone with no request waiting on it.
func TestConditionalStaleAndUnstored(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil)) // ttl 1m, stale 5m
	o := newOrigin(200, "body", `ETag: "v1"`)
	do(c, t0, "/sites/MLA", o.fetch)
	c.Wait()
	o.set(func(o *origin) { o.err = errUpstream })
	x := do(c, t0.Add(2*time.Minute), "/sites/MLA", o.fetch, `If-None-Match: "v1"`)
	if x.res != Stale || x.status != 304 || !x.resp.SkipBody {
		t.Errorf("stale copy, matching tag: %s %d skip body %v, want STALE 304 without body", x.res, x.status, x.resp.SkipBody)
	}
	if x := do(c, t0.Add(2*time.Minute), "/sites/MLA", o.fetch, `If-None-Match: "v0"`); x.res != Stale || x.status != 200 {
		t.Errorf("stale copy, other tag: %s %d, want STALE 200", x.res, x.status)
	}

	u := newOrigin(200, "body", `ETag: "u1"`, "Cache-Control: no-cache")
	if x := do(c, t0, "/sites/unstored", u.fetch, `If-None-Match: "u1"`); x.res != Miss || x.status != 304 {
		t.Errorf("unstored 200, matching tag: %s %d, want MISS 304", x.res, x.status)
	}
	if x := do(c, t0, "/sites/unstored", u.fetch, `If-None-Match: "u0"`); x.res != Miss || x.status != 200 || x.body != "body" {
		t.Errorf("unstored 200, other tag: %s %d %q, want MISS 200 body", x.res, x.status, x.body)
	}
}
