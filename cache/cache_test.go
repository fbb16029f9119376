package cache

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestServeHitMissAge(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, `{"id":"MLA1055"}`, "Content-Type: application/json", "ETag: \"v1\"")

	x := do(c, t0, "/categories/MLA1055", o.fetch)
	if x.res != Miss || x.header("X-Cache") != "MISS" || x.body != `{"id":"MLA1055"}` {
		t.Fatalf("first: %s X-Cache %q body %q", x.res, x.header("X-Cache"), x.body)
	}
	c.Wait()
	x = do(c, t0.Add(42*time.Second+900*time.Millisecond), "/categories/MLA1055", o.fetch)
	if x.res != Hit || x.header("X-Cache") != "HIT" || x.header("Age") != "42" {
		t.Fatalf("second: %s X-Cache %q Age %q", x.res, x.header("X-Cache"), x.header("Age"))
	}
	if x.status != 200 || x.body != `{"id":"MLA1055"}` || x.header("Content-Type") != "application/json" || x.header("ETag") != `"v1"` {
		t.Errorf("hit answer: %d %q %q %q", x.status, x.body, x.header("Content-Type"), x.header("ETag"))
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
}

func TestServeTTLExpiry(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(func(r *RuleConfig) { r.TTL = 10 * time.Second; r.NotFoundTTL = 2 * time.Second }))
	tests := []struct {
		path   string
		status int
		fresh  time.Duration
	}{
		{"/sites/MLA", 200, 10 * time.Second},
		{"/sites/NOPE", 404, 2 * time.Second},
	}
	for _, tt := range tests {
		o := newOrigin(tt.status, "x")
		do(c, t0, tt.path, o.fetch)
		c.Wait()
		if x := do(c, t0.Add(tt.fresh-time.Nanosecond), tt.path, o.fetch); x.res != Hit || x.status != tt.status {
			t.Errorf("%s just before expiry: %s %d, want HIT %d", tt.path, x.res, x.status, tt.status)
		}
		if x := do(c, t0.Add(tt.fresh), tt.path, o.fetch); x.res != Miss {
			t.Errorf("%s at expiry: %s, want MISS", tt.path, x.res)
		}
		if n := o.calls.Load(); n != 2 {
			t.Errorf("%s upstream calls = %d, want 2", tt.path, n)
		}
	}
}

func TestServeNeverStored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		headers []string
	}{
		{"429", 429, []string{"Retry-After: 1"}},
		{"500", 500, nil},
		{"503", 503, nil},
		{"302", 302, []string{"Location: /x"}},
		{"Set-Cookie", 200, []string{"Set-Cookie: session=abc"}},
		{"no-store", 200, []string{"Cache-Control: no-store"}},
		{"private", 200, []string{"Cache-Control: private"}},
		{"no-cache", 200, []string{"Cache-Control: no-cache"}},
		{"max-age=0", 200, []string{"Cache-Control: max-age=0"}},
		{"Vary *", 200, []string{"Vary: *"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCache(t, testConfig(nil))
			o := newOrigin(tt.status, "body", tt.headers...)
			for i := range 2 {
				x := do(c, t0, "/sites/MLA", o.fetch)
				if x.res != Miss || x.status != tt.status {
					t.Fatalf("request %d: %s %d, want MISS %d", i, x.res, x.status, tt.status)
				}
				c.Wait()
			}
			if n := o.calls.Load(); n != 2 {
				t.Errorf("upstream calls = %d, want 2 (nothing stored)", n)
			}
		})
	}
}

func TestServeBypass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		target  string
		headers []string
	}{
		{"no rule", "/items/MLA1", nil},
		{"prefix without slash", "/categoriesX", nil},
		{"POST", "POST /categories/MLA1", nil},
		{"PUT", "PUT /categories/MLA1", nil},
		{"Authorization", "/categories/MLA1", []string{"Authorization: Bearer t"}},
		{"Cookie", "/categories/MLA1", []string{"Cookie: s=1"}},
		{"GET with body", "/categories/MLA1", []string{"Content-Length: 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCache(t, testConfig(nil))
			o := newOrigin(200, "ok")
			for range 2 {
				x := do(c, t0, tt.target, o.fetch, tt.headers...)
				if x.res != Bypass || x.header("X-Cache") != "BYPASS" {
					t.Fatalf("%s X-Cache %q, want BYPASS", x.res, x.header("X-Cache"))
				}
				c.Wait()
			}
			if n := o.calls.Load(); n != 2 {
				t.Errorf("upstream calls = %d, want 2", n)
			}
		})
	}
}

func TestServeCacheOff(t *testing.T) {
	t.Parallel()
	o := newOrigin(200, "ok")
	var nilCache *Cache
	for _, c := range []*Cache{nilCache, newTestCache(t, Config{})} {
		x := do(c, t0, "/categories/MLA1", o.fetch)
		if x.res != Bypass || x.header("X-Cache") != "" || x.body != "ok" {
			t.Errorf("%v: %s X-Cache %q body %q, want BYPASS, no X-Cache", c, x.res, x.header("X-Cache"), x.body)
		}
	}
	x := do(nilCache, t0, "/x", func(*fastReq, *fastResp) error { return errUpstream })
	if !errors.Is(x.err, errUpstream) {
		t.Errorf("nil cache error = %v", x.err)
	}
	nilCache.Close()
	nilCache.WriteMetrics(&bytes.Buffer{})
	if n := nilCache.Purge(""); n != 0 {
		t.Errorf("nil Purge = %d", n)
	}
}

func TestServeAllowAuthorized(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(func(r *RuleConfig) { r.AllowAuthorized = true }))
	o := &origin{status: 200, echo: "Authorization"}
	steps := []struct {
		auth string
		want Result
		body string
	}{
		{"Bearer alice", Miss, "Bearer alice"},
		{"Bearer bob", Miss, "Bearer bob"},
		{"Bearer alice", Hit, "Bearer alice"},
		{"Bearer bob", Hit, "Bearer bob"},
		{"", Miss, ""},
	}
	for i, s := range steps {
		var h []string
		if s.auth != "" {
			h = []string{"Authorization: " + s.auth}
		}
		x := do(c, t0, "/categories/MLA1", o.fetch, h...)
		if x.res != s.want || x.body != s.body {
			t.Errorf("step %d (%q): %s %q, want %s %q", i, s.auth, x.res, x.body, s.want, s.body)
		}
		c.Wait()
	}
}

func TestServeQueryCanonical(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "search")
	do(c, t0, "/sites/MLA/search?q=ipod&limit=10&offset=0", o.fetch)
	c.Wait()
	if x := do(c, t0, "/sites/MLA/search?offset=0&q=ipod&limit=10", o.fetch); x.res != Hit {
		t.Errorf("permuted query: %s, want HIT", x.res)
	}
	if x := do(c, t0, "/sites/MLA/search?offset=0&q=ipad&limit=10", o.fetch); x.res != Miss {
		t.Errorf("different query: %s, want MISS", x.res)
	}
}

func TestServeHead(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "0123456789")

	// A HEAD miss is fetched as GET, so it fills the cache for GETs.
	x := do(c, t0, "HEAD /sites/MLA", o.fetch)
	if x.res != Miss || !x.resp.SkipBody {
		t.Fatalf("HEAD miss: %s SkipBody %v", x.res, x.resp.SkipBody)
	}
	c.Wait()
	if x := do(c, t0, "/sites/MLA", o.fetch); x.res != Hit || x.body != "0123456789" {
		t.Errorf("GET after HEAD: %s %q, want HIT with body", x.res, x.body)
	}
	x = do(c, t0, "HEAD /sites/MLA", o.fetch)
	if x.res != Hit || !x.resp.SkipBody {
		t.Errorf("HEAD hit: %s SkipBody %v, want HIT without body", x.res, x.resp.SkipBody)
	}
	var wire bytes.Buffer
	if _, err := x.resp.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	if s := wire.String(); !strings.Contains(s, "Content-Length: 10\r\n") || strings.HasSuffix(s, "0123456789") {
		t.Errorf("HEAD hit on the wire:\n%s", s)
	}
	if n := o.calls.Load(); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
}

func TestServeStripsStoredFields(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "x",
		"Content-Type: application/json", "X-Request-Id: r1",
		`RateLimit: "default";r=5;t=30`, `RateLimit-Policy: "default";q=100;w=60`, "Retry-After: 30",
		"X-Cache: HIT from upstream", "Age: 3", "Keep-Alive: timeout=5", "Upgrade: h2c")
	miss := do(c, t0, "/sites/MLA", o.fetch)
	if miss.header("RateLimit") == "" {
		t.Error("the miss lost the upstream's RateLimit: only stored copies drop it")
	}
	c.Wait()
	x := do(c, t0.Add(10*time.Second), "/sites/MLA", o.fetch)
	if x.res != Hit {
		t.Fatalf("%s, want HIT", x.res)
	}
	for _, k := range []string{"RateLimit", "RateLimit-Policy", "Retry-After", "Keep-Alive", "Upgrade"} {
		if v := x.header(k); v != "" {
			t.Errorf("hit carries %s: %q", k, v)
		}
	}
	if x.header("X-Cache") != "HIT" || x.header("Age") != "13" {
		t.Errorf("X-Cache %q Age %q, want HIT 13 (upstream Age 3 + 10s)", x.header("X-Cache"), x.header("Age"))
	}
	if x.header("Content-Type") != "application/json" || x.header("X-Request-Id") != "r1" {
		t.Errorf("end-to-end fields lost: %q %q", x.header("Content-Type"), x.header("X-Request-Id"))
	}
	if n := bytes.Count(x.resp.Header.Header(), []byte("X-Cache")); n != 1 {
		t.Errorf("%d X-Cache lines", n)
	}
}

// A hit replays the stored header as the origin sent it: repeated fields stay repeated and in
// order, and a response without Content-Type does not gain fasthttp's default one.
func TestHitReplaysHeader(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(203, "x", "Link: <a>", "X-Trace: t", "Link: <b>")
	fetch := func(req *fasthttp.Request, resp *fasthttp.Response) error {
		err := o.fetch(req, resp)
		resp.Header.SetNoDefaultContentType(true) // HostClient keeps it across its Reset; o.fetch does not
		return err
	}
	serve := func() (Result, *fasthttp.Response) {
		var req fasthttp.Request
		req.SetRequestURI("/sites/MLA")
		// As the proxy's server is configured: no default Content-Type on what it answers.
		resp := new(fasthttp.Response)
		resp.Header.SetNoDefaultContentType(true)
		res, _ := c.Serve(t0, &req, resp, fetch)
		return res, resp
	}
	serve()
	c.Wait()
	res, resp := serve()
	if res != Hit || resp.StatusCode() != 203 {
		t.Fatalf("%s %d, want HIT 203", res, resp.StatusCode())
	}
	head := string(resp.Header.Header())
	if i, j := strings.Index(head, "Link: <a>"), strings.Index(head, "Link: <b>"); i < 0 || j < i {
		t.Errorf("repeated Link fields lost or reordered:\n%s", head)
	}
	if strings.Contains(strings.ToLower(head), "content-type") {
		t.Errorf("hit gained a Content-Type the origin never sent:\n%s", head)
	}
}

func TestServeVary(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := &origin{status: 200, echo: "Accept-Encoding", headers: []string{"Vary: Accept-Encoding"}}
	steps := []struct {
		headers []string
		want    Result
		body    string
	}{
		{[]string{"Accept-Encoding: gzip"}, Miss, "gzip"},
		{[]string{"Accept-Encoding: br"}, Miss, "br"},
		{[]string{"Accept-Encoding: gzip"}, Hit, "gzip"},
		{[]string{"Accept-Encoding: br"}, Hit, "br"},
		{nil, Miss, ""},
		{nil, Hit, ""},
		{[]string{"Accept-Encoding: br", "Accept-Encoding: gzip"}, Miss, "br"},
	}
	for i, s := range steps {
		x := do(c, t0, "/sites/MLA", o.fetch, s.headers...)
		if x.res != s.want || x.body != s.body {
			t.Errorf("step %d %q: %s %q, want %s %q", i, s.headers, x.res, x.body, s.want, s.body)
		}
		c.Wait()
	}
}

// TestServeVaryUsesClientHeaders: the proxy's fetch rewrites request headers (X-Forwarded-For);
// variants must be keyed on what the client sent, or a client could send the rewritten value and
// be served another client's variant.
func TestServeVaryUsesClientHeaders(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := &origin{status: 200, echo: "X-Forwarded-For", headers: []string{"Vary: X-Forwarded-For"}}
	rewrite := func(req *fastReq, resp *fastResp) error {
		req.Header.Set("X-Forwarded-For", "10.0.0.1")
		return o.fetch(req, resp)
	}
	do(c, t0, "/sites/MLA", rewrite)
	c.Wait()
	if x := do(c, t0, "/sites/MLA", rewrite, "X-Forwarded-For: 10.0.0.1"); x.res != Miss {
		t.Errorf("client sending the rewritten value: %s, want MISS", x.res)
	}
	if x := do(c, t0, "/sites/MLA", rewrite); x.res != Hit {
		t.Errorf("same client headers again: %s, want HIT", x.res)
	}
}

func TestServeStale(t *testing.T) {
	t.Parallel()
	const ttl, stale = 10 * time.Second, 30 * time.Second
	tests := []struct {
		name    string
		fail    func(o *origin)
		at      time.Duration
		headers []string // on the stored response
		want    Result
		status  int
		wantErr bool
	}{
		{"error within window", func(o *origin) { o.err = errUpstream }, ttl + stale - time.Second, nil, Stale, 200, false},
		{"error beyond window", func(o *origin) { o.err = errUpstream }, ttl + stale, nil, Miss, 0, true},
		{"503 within window", func(o *origin) { o.status = 503 }, ttl + time.Second, nil, Stale, 200, false},
		{"500 within window", func(o *origin) { o.status = 500 }, ttl + time.Second, nil, Stale, 200, false},
		{"503 beyond window", func(o *origin) { o.status = 503 }, ttl + stale + time.Second, nil, Miss, 503, false},
		{"429 is not a failure", func(o *origin) { o.status = 429 }, ttl + time.Second, nil, Miss, 429, false},
		{"must-revalidate", func(o *origin) { o.err = errUpstream }, ttl + time.Second, []string{"Cache-Control: must-revalidate"}, Miss, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCache(t, testConfig(func(r *RuleConfig) { r.TTL = ttl; r.Stale = stale }))
			o := newOrigin(200, "good", tt.headers...)
			do(c, t0, "/sites/MLA", o.fetch)
			c.Wait()
			o.set(func(o *origin) { o.headers = nil; tt.fail(o) })
			x := do(c, t0.Add(tt.at), "/sites/MLA", o.fetch)
			if x.res != tt.want || (x.err != nil) != tt.wantErr {
				t.Fatalf("%s err %v, want %s err %v", x.res, x.err, tt.want, tt.wantErr)
			}
			if tt.wantErr {
				if !errors.Is(x.err, errUpstream) {
					t.Errorf("error %v, want the fetch error untouched", x.err)
				}
				return
			}
			if x.status != tt.status {
				t.Errorf("status %d, want %d", x.status, tt.status)
			}
			if tt.want == Stale {
				age := fmt.Sprint(int(tt.at / time.Second))
				if x.body != "good" || x.header("X-Cache") != "STALE" || x.header("Age") != age {
					t.Errorf("stale answer %q X-Cache %q Age %q, want good STALE %s", x.body, x.header("X-Cache"), x.header("Age"), age)
				}
			}
		})
	}
}

func TestServeSizeBounds(t *testing.T) {
	t.Parallel()
	t.Run("max_entry_bytes", func(t *testing.T) {
		t.Parallel()
		c := newTestCache(t, Config{MaxEntryBytes: 1000, Rules: testConfig(nil).Rules})
		small, big := newOrigin(200, strings.Repeat("s", 500)), newOrigin(200, strings.Repeat("b", 1000))
		for range 2 {
			do(c, t0, "/sites/small", small.fetch)
			if x := do(c, t0, "/sites/big", big.fetch); len(x.body) != 1000 {
				t.Fatalf("big body %d bytes, want it forwarded whole", len(x.body))
			}
			c.Wait()
		}
		if s, b := small.calls.Load(), big.calls.Load(); s != 1 || b != 2 {
			t.Errorf("upstream calls small %d big %d, want 1 and 2", s, b)
		}
	})
	t.Run("max_bytes", func(t *testing.T) {
		t.Parallel()
		const maxBytes = 64 << 10
		c := newTestCache(t, Config{MaxBytes: maxBytes, MaxEntryBytes: 4 << 10, Rules: testConfig(nil).Rules})
		o := newOrigin(200, strings.Repeat("x", 2000))
		for i := range 500 { // ~1 MB offered to a 64 KiB cache
			do(c, t0, fmt.Sprintf("/sites/%d", i), o.fetch)
			if i%50 == 0 {
				c.Wait()
			}
		}
		c.Wait()
		var m bytes.Buffer
		c.WriteMetrics(&m)
		held := c.m.bytes.Load()
		if held <= 0 || held > maxBytes {
			t.Errorf("bytes held %d, want within (0, %d]\n%s", held, maxBytes, m.String())
		}
		if c.m.evictions.Load()+c.m.rejections.Load() == 0 {
			t.Error("no evictions or rejections while offering 15x max_bytes")
		}
	})
}

func TestPurge(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "x", "Vary: Accept-Encoding")
	plain := newOrigin(200, "y")
	paths := []string{"/categories/MLA1", "/categories/MLA2", "/categories/MLA2/attributes", "/sites/MLA"}
	for _, p := range paths {
		do(c, t0, p, plain.fetch)
	}
	do(c, t0, "/sites/MLB", o.fetch, "Accept-Encoding: gzip") // a marker and one variant
	c.Wait()
	if n := c.Purge("/categories/MLA2"); n != 2 {
		t.Errorf("Purge(/categories/MLA2) = %d, want 2", n)
	}
	c.Wait()
	want := map[string]Result{"/categories/MLA1": Hit, "/categories/MLA2": Miss, "/categories/MLA2/attributes": Miss, "/sites/MLA": Hit}
	for p, r := range want {
		if x := do(c, t0, p, plain.fetch); x.res != r {
			t.Errorf("after purge %s: %s, want %s", p, x.res, r)
		}
	}
	c.Wait()
	if n := c.Purge(""); n != 5 {
		t.Errorf("Purge(\"\") = %d, want 5 responses", n)
	}
	c.Wait()
	if e := c.m.entries.Load(); e != 0 {
		t.Errorf("entries after purging all = %d", e)
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Config{})
	o := newOrigin(200, "x")
	if x := do(c, t0, "/items/MLA1", o.fetch); x.res != Bypass {
		t.Fatalf("no rules: %s", x.res)
	}
	items := Config{MaxBytes: 1 << 20, Rules: []RuleConfig{{ID: "items", Paths: []string{"/items/*"}}}}
	if err := c.Update(items); err != nil {
		t.Fatal(err)
	}
	do(c, t0, "/items/MLA1", o.fetch)
	c.Wait()
	if x := do(c, t0, "/items/MLA1", o.fetch); x.res != Hit {
		t.Errorf("after Update: %s, want HIT", x.res)
	}
	items.MaxBytes = 2 << 20
	if err := c.Update(items); err != nil {
		t.Fatal(err)
	}
	if got := c.state.Load().store.MaxCost(); got != 2<<20 {
		t.Errorf("MaxCost after Update = %d", got)
	}
	if err := c.Update(Config{Rules: []RuleConfig{{ID: "bad"}}}); err == nil || !strings.Contains(err.Error(), "paths") {
		t.Errorf("Update(invalid) = %v", err)
	}
	if err := c.Update(Config{}); err != nil {
		t.Fatal(err)
	}
	if x := do(c, t0, "/items/MLA1", o.fetch); x.res != Bypass || x.header("X-Cache") != "" {
		t.Errorf("rules removed: %s %q, want untouched BYPASS", x.res, x.header("X-Cache"))
	}
	c.Close()
	if err := c.Update(items); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v", err)
	}
}

func TestGetDetectsCollision(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	st := c.state.Load()
	e := &entry{key: []byte("one key"), cost: 10}
	st.store.Set(42, e, e.cost)
	st.store.Wait()
	if got := st.get(42, []byte("one key")); got != e {
		t.Fatalf("get(own key) = %v", got)
	}
	if got := st.get(42, []byte("another key with the same hash")); got != nil {
		t.Errorf("get(colliding key) = %v, want nil", got)
	}
}

func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "x")
	do(c, t0, "/sites/MLA", o.fetch)
	c.Wait()
	do(c, t0, "/sites/MLA", o.fetch)
	do(c, t0, "/items/1", o.fetch)
	var b bytes.Buffer
	c.WriteMetrics(&b)
	for _, want := range []string{
		`meliproxy_cache_requests_total{result="hit"} 1`,
		`meliproxy_cache_requests_total{result="miss"} 1`,
		`meliproxy_cache_requests_total{result="stale"} 0`,
		`meliproxy_cache_requests_total{result="bypass"} 1`,
		"meliproxy_cache_coalesced_total 0",
		"meliproxy_cache_stores_total 1",
		"meliproxy_cache_evictions_total 0",
		"meliproxy_cache_entries 1",
		"meliproxy_cache_bytes ",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func TestResultString(t *testing.T) {
	t.Parallel()
	for r, want := range map[Result]string{Bypass: "BYPASS", Hit: "HIT", Miss: "MISS", Stale: "STALE"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), want)
		}
	}
}

// TestHitBodyIsReadOnly: a hit's body is the entry's memory; appending to or replacing it in one
// response must not change what the next hit gets.
func TestHitBodyIsReadOnly(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "original")
	do(c, t0, "/sites/MLA", o.fetch)
	c.Wait()
	x := do(c, t0, "/sites/MLA", o.fetch)
	x.resp.AppendBodyString(" tampered")
	y := do(c, t0, "/sites/MLA", o.fetch)
	y.resp.SetBodyString("replaced")
	if z := do(c, t0, "/sites/MLA", o.fetch); z.res != Hit || z.body != "original" {
		t.Errorf("%s %q, want HIT original", z.res, z.body)
	}
}

func TestServeAfterClose(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	o := newOrigin(200, "x")
	do(c, t0, "/sites/MLA", o.fetch)
	c.Wait()
	c.Close()
	c.Close()
	if x := do(c, t0, "/sites/MLA", o.fetch); x.res != Bypass || x.body != "x" {
		t.Errorf("after Close: %s %q, want BYPASS", x.res, x.body)
	}
}
