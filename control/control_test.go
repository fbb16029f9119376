package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/internal/syncbuf"
	"github.com/meliproxy/meliproxy/limiter"
)

const (
	adminSecret = "admin-secret-0123456789"
	readSecret  = "read-secret-0123456789"
)

// env is a Control over a real limiter and cache, with a reload that does what cmd/meliproxy's
// does for rules: read the rules file, append it to the inline rules, Update the limiter.
type env struct {
	t         *testing.T
	c         *Control
	lim       *limiter.Limiter
	cache     *cache.Cache
	h         fasthttp.RequestHandler
	rulesPath string
	logs      *syncbuf.Buffer

	mu        sync.Mutex
	inline    []limiter.RuleConfig
	sources   map[string]string
	version   int
	failNext  error // the next reload fails with this
	reloadErr string
	now       time.Time
}

const testRules = `
[[rules]]
id = "items-ip"
paths = ["/items/*"]
key = ["ip"]
rate = "5/m"

[[rules]]
id = "categories"
paths = ["/categories/**"]
rate = "100/m"
`

// newEnv builds an env. rulesFile "" means no limits.rules_file; tokens nil means open mode.
func newEnv(t *testing.T, rulesFile string, tokens []Token) *env {
	t.Helper()
	e := &env{t: t, logs: &syncbuf.Buffer{}, now: time.Now().Truncate(time.Second)}
	// Near the real time: the limiter prunes expired deny entries by its own clock.
	e.inline = []limiter.RuleConfig{{ID: "inline", Paths: []string{"/x"}, Rate: "5/s"}}
	if rulesFile != "" {
		e.rulesPath = filepath.Join(t.TempDir(), "rules.toml")
		if err := os.WriteFile(e.rulesPath, []byte(rulesFile), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	cfg, sources, err := e.load()
	if err != nil {
		t.Fatal(err)
	}
	e.sources = sources
	if e.lim, err = limiter.New(cfg); err != nil {
		t.Fatal(err)
	}
	if e.cache, err = cache.New(cache.Config{Rules: []cache.RuleConfig{{ID: "all", Paths: []string{"/**"}, TTL: time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cache.Close)
	e.c, err = New(Options{
		Tokens:   tokens,
		Limiter:  e.lim,
		Cache:    e.cache,
		Reload:   e.reload,
		Snapshot: e.snapshot,
		Logger:   slog.New(slog.NewTextHandler(e.logs, nil)),
		Clock:    func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New()
	r.GET("/healthz", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	r.GET("/stats", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("page") })
	e.c.Register(r)
	e.h = e.c.Protect(r.Handler)
	return e
}

func (e *env) load() (limiter.Config, map[string]string, error) {
	cfg := limiter.Config{Rules: append([]limiter.RuleConfig(nil), e.inline...)}
	sources := map[string]string{}
	for _, r := range e.inline {
		sources[r.ID] = "config.toml"
	}
	if e.rulesPath != "" {
		rules, err := limiter.LoadRulesFile(e.rulesPath)
		if err != nil {
			return cfg, nil, err
		}
		for _, r := range rules {
			if src, dup := sources[r.ID]; dup {
				return cfg, nil, fmt.Errorf("rule id %q is already defined in %s", r.ID, src)
			}
			sources[r.ID] = e.rulesPath
		}
		cfg.Rules = append(cfg.Rules, rules...)
	}
	return cfg, sources, cfg.Validate()
}

func (e *env) reload() (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.failNext
	e.failNext = nil
	var cfg limiter.Config
	var sources map[string]string
	if err == nil {
		cfg, sources, err = e.load()
	}
	if err == nil {
		err = e.lim.Update(cfg)
	}
	if err != nil {
		e.reloadErr = err.Error()
		return nil, err
	}
	e.reloadErr = ""
	e.sources = sources
	e.version++
	return map[string]any{"version": e.version}, nil
}

func (e *env) snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Snapshot{
		Path: "config.toml", Version: fmt.Sprint(e.version), RulesPath: e.rulesPath,
		RuleSources: e.sources, LastReloadError: e.reloadErr,
		Effective: map[string]any{
			"admin":   map[string]any{"listen": "127.0.0.1:9090", "tokens": []map[string]any{{"name": "ops", "token": adminSecret}}},
			"cluster": map[string]any{"redis_password": "hunter2", "addr": "x"},
		},
	}
}

// req is one test request; token "" sends no Authorization.
type req struct {
	method, path, body, token string
	header                    map[string]string
}

type resp struct {
	status int
	body   []byte
	header *fasthttp.ResponseHeader
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

func (e *env) do(q req) resp {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, nil)
	ctx.Request.Header.SetMethod(q.method)
	ctx.Request.SetRequestURI(q.path)
	ctx.Request.Header.SetHost("127.0.0.1:9090")
	if q.token != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+q.token)
	}
	for k, v := range q.header {
		if k == "Host" {
			ctx.Request.Header.SetHost(v)
			continue
		}
		ctx.Request.Header.Set(k, v)
	}
	if q.body != "" {
		ctx.Request.SetBodyString(q.body)
		ctx.Request.Header.SetContentType("application/json")
	}
	e.h(&ctx)
	var h fasthttp.ResponseHeader
	ctx.Response.Header.CopyTo(&h)
	return resp{status: ctx.Response.StatusCode(), body: append([]byte(nil), ctx.Response.Body()...), header: &h}
}

func tokens() []Token {
	return []Token{{Name: "ops", Secret: adminSecret, Scope: Admin}, {Name: "grafana", Secret: readSecret, Scope: Read}}
}

func (e *env) fileRules() []limiter.RuleConfig {
	e.t.Helper()
	rules, err := limiter.LoadRulesFile(e.rulesPath)
	if err != nil {
		e.t.Fatalf("rules file does not load: %v", err)
	}
	return rules
}

func (e *env) running(id string) (limiter.RuleConfig, bool) {
	for _, r := range e.lim.Rules() {
		if r.ID == id {
			return r, true
		}
	}
	return limiter.RuleConfig{}, false
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	patch := `{"rate":"6/m"}`
	tests := []struct {
		name       string
		q          req
		wantStatus int
		wantAuth   string // substring of WWW-Authenticate
	}{
		{"health open", req{method: "GET", path: "/healthz"}, 200, ""},
		{"no token", req{method: "GET", path: "/api/v1/rules"}, 401, `Bearer realm="meliproxy-admin"`},
		{"no token on stats", req{method: "GET", path: "/stats"}, 401, "Bearer"},
		{"no token on unknown route", req{method: "GET", path: "/nope"}, 401, "Bearer"},
		{"unknown token", req{method: "GET", path: "/api/v1/rules", token: "wrong-wrong-wrong-wrong"}, 401, `error="invalid_token"`},
		{"prefix of a token", req{method: "GET", path: "/api/v1/rules", token: adminSecret[:10]}, 401, "invalid_token"},
		{"token plus a byte", req{method: "GET", path: "/api/v1/rules", token: adminSecret + "x"}, 401, "invalid_token"},
		{"basic scheme", req{method: "GET", path: "/api/v1/rules", header: map[string]string{"Authorization": "Basic " + adminSecret}}, 401, "Bearer"},
		{"read reads", req{method: "GET", path: "/api/v1/rules", token: readSecret}, 200, ""},
		{"read reads stats", req{method: "GET", path: "/stats", token: readSecret}, 200, ""},
		{"read cannot patch", req{method: "PATCH", path: "/api/v1/rules/items-ip", body: patch, token: readSecret}, 403, `error="insufficient_scope", scope="admin"`},
		{"read cannot reload", req{method: "POST", path: "/api/v1/reload", token: readSecret}, 403, "insufficient_scope"},
		{"read cannot purge", req{method: "POST", path: "/api/v1/cache/purge", body: `{"all":true}`, token: readSecret}, 403, "insufficient_scope"},
		{"admin reads", req{method: "GET", path: "/api/v1/config", token: adminSecret}, 200, ""},
		{"admin patches", req{method: "PATCH", path: "/api/v1/rules/items-ip", body: patch, token: adminSecret}, 200, ""},
		{"lower-case scheme", req{method: "GET", path: "/api/v1/rules", header: map[string]string{"Authorization": "bearer " + readSecret}}, 200, ""},
		{"cross-site change", req{method: "POST", path: "/api/v1/reload", token: adminSecret, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, ""},
		{"other origin change", req{method: "POST", path: "/api/v1/reload", token: adminSecret, header: map[string]string{"Origin": "http://evil.example"}}, 403, ""},
		{"same origin change", req{method: "POST", path: "/api/v1/reload", token: adminSecret, header: map[string]string{"Origin": "http://127.0.0.1:9090"}}, 200, ""},
		{"other Host is fine with tokens", req{method: "GET", path: "/api/v1/rules", token: readSecret, header: map[string]string{"Host": "admin.internal:9090"}}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.q)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			got := string(r.header.Peek("WWW-Authenticate"))
			if tt.wantAuth != "" && !strings.Contains(got, tt.wantAuth) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", got, tt.wantAuth)
			}
			if r.status >= 400 && tt.q.path != "/nope" {
				if msg, _ := r.json(t)["error"].(string); msg == "" {
					t.Errorf("error body without a message: %s", r.body)
				}
			}
		})
	}
	if strings.Contains(e.logs.String(), adminSecret) || strings.Contains(e.logs.String(), readSecret) {
		t.Errorf("a secret reached the log:\n%s", e.logs.String())
	}
}

func TestStatsCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	r := e.do(req{method: "GET", path: "/stats?token=" + adminSecret})
	if r.status != 303 || !strings.HasSuffix(string(r.header.Peek("Location")), "/stats") {
		t.Fatalf("login: status %d Location %q, want 303 to /stats", r.status, r.header.Peek("Location"))
	}
	var ck fasthttp.Cookie
	ck.SetKey(cookieName)
	if !r.header.Cookie(&ck) {
		t.Fatal("no session cookie")
	}
	if !ck.HTTPOnly() || ck.SameSite() != fasthttp.CookieSameSiteStrictMode || strings.Contains(string(ck.Value()), adminSecret) {
		t.Errorf("cookie %s: want HttpOnly, SameSite=Strict, no token inside", ck.String())
	}
	cookie := map[string]string{"Cookie": cookieName + "=" + string(ck.Value())}
	tampered := map[string]string{"Cookie": cookieName + "=" + strings.Replace(string(ck.Value()), "b3Bz", "Z3JhZmFuYQ", 1)}
	tests := []struct {
		name string
		q    req
		want int
	}{
		{"page", req{method: "GET", path: "/stats", header: cookie}, 200},
		{"json api", req{method: "GET", path: "/api/v1/rules", header: cookie}, 200},
		{"no change with a cookie, even of an admin token", req{method: "POST", path: "/api/v1/reload", header: cookie}, 401},
		{"tampered", req{method: "GET", path: "/stats", header: tampered}, 401},
		{"garbage", req{method: "GET", path: "/stats", header: map[string]string{"Cookie": cookieName + "=x.y.z"}}, 401},
		{"bad login", req{method: "GET", path: "/stats?token=nope"}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.do(tt.q); r.status != tt.want {
				t.Errorf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
		})
	}
	e.mu.Lock()
	e.now = e.now.Add(cookieTTL + time.Second)
	e.mu.Unlock()
	if r := e.do(req{method: "GET", path: "/stats", header: cookie}); r.status != 401 {
		t.Errorf("expired session: status %d, want 401", r.status)
	}
}

func TestOpenMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, nil)
	tests := []struct {
		name string
		q    req
		want int
	}{
		{"loopback read", req{method: "GET", path: "/api/v1/rules"}, 200},
		{"loopback change", req{method: "POST", path: "/api/v1/cache/purge", body: `{"all":true}`}, 200},
		{"localhost", req{method: "GET", path: "/api/v1/rules", header: map[string]string{"Host": "localhost:9090"}}, 200},
		{"ipv6 loopback", req{method: "GET", path: "/api/v1/rules", header: map[string]string{"Host": "[::1]:9090"}}, 200},
		{"rebound name", req{method: "GET", path: "/api/v1/rules", header: map[string]string{"Host": "evil.example:9090"}}, 403},
		{"cross-site form", req{method: "POST", path: "/api/v1/reload", header: map[string]string{"Origin": "http://evil.example"}}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.do(tt.q); r.status != tt.want {
				t.Errorf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
		})
	}
	if !strings.Contains(e.logs.String(), "token=open") {
		t.Errorf("audit line of an open-mode change does not say token=open:\n%s", e.logs.String())
	}
}

// TestMatchConstantTime checks that match hashes before comparing and looks at every token: a
// wrong first byte and a wrong last byte take the same time (loose bound: the comparison is of
// fixed-size digests, so only noise separates them).
func TestMatchConstantTime(t *testing.T) {
	t.Parallel()
	var ts []Token
	for i := range 8 {
		ts = append(ts, Token{Name: fmt.Sprint(i), Secret: fmt.Sprintf("secret-%02d-0123456789abcdef", i), Scope: Read})
	}
	c, err := New(Options{Tokens: ts, Limiter: &limiter.Limiter{}, Cache: &cache.Cache{}, Reload: func() (any, error) { return nil, nil }, Snapshot: func() Snapshot { return Snapshot{} }})
	if err != nil {
		t.Fatal(err)
	}
	last := ts[7].Secret
	if tok, ok := c.match([]byte(last)); !ok || tok.name != "7" {
		t.Fatalf("the last token did not match: %v %v", tok, ok)
	}
	for _, bad := range []string{"", last[:len(last)-1], last + "0", "X" + last[1:], last[:len(last)-1] + "X"} {
		if _, ok := c.match([]byte(bad)); ok {
			t.Errorf("%q matched", bad)
		}
	}
	if testing.Short() {
		return
	}
	median := func(s string) time.Duration {
		b := []byte(s)
		var ds []time.Duration
		for range 301 {
			start := time.Now()
			for range 50 {
				c.match(b)
			}
			ds = append(ds, time.Since(start))
		}
		slicesSort(ds)
		return ds[len(ds)/2]
	}
	early, late := median("X"+last[1:]), median(last[:len(last)-1]+"X")
	ratio := float64(early) / float64(late)
	t.Logf("median of 50 matches: wrong first byte %v, wrong last byte %v (ratio %.2f)", early, late, ratio)
	if ratio < 0.5 || ratio > 2 {
		t.Errorf("timing depends on where the token differs: ratio %.2f", ratio)
	}
}

func slicesSort(ds []time.Duration) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

func TestNewRefusesBadTokens(t *testing.T) {
	t.Parallel()
	base := Options{Limiter: &limiter.Limiter{}, Cache: &cache.Cache{}, Reload: func() (any, error) { return nil, nil }, Snapshot: func() Snapshot { return Snapshot{} }}
	for _, ts := range [][]Token{
		{{Name: "a", Secret: "", Scope: Read}},
		{{Name: "", Secret: "x", Scope: Read}},
		{{Name: "a", Secret: "x", Scope: 0}},
		{{Name: "a", Secret: "same", Scope: Read}, {Name: "b", Secret: "same", Scope: Admin}},
	} {
		o := base
		o.Tokens = ts
		if _, err := New(o); err == nil {
			t.Errorf("New accepted %+v", ts)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New accepted missing dependencies")
	}
}

func TestRulesEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		q         req
		want      int
		wantField string
		wantIn    string                     // substring of the body
		check     func(t *testing.T, e *env) // after the request
	}{
		{name: "list", q: req{method: "GET", path: "/api/v1/rules"}, want: 200, wantIn: `"editable": false`,
			check: func(t *testing.T, e *env) {}},
		{name: "get", q: req{method: "GET", path: "/api/v1/rules/items-ip"}, want: 200, wantIn: `"burst": 5`},
		{name: "get unknown", q: req{method: "GET", path: "/api/v1/rules/nope"}, want: 404, wantField: "id"},
		{name: "add", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"sites","paths":["/sites/**"],"rate":"7/s","user_agents":["curl/*"],"headers":{"X-Api-Key":"*"}}`}, want: 200,
			check: func(t *testing.T, e *env) {
				r, ok := e.running("sites")
				if !ok || r.Rate != "7/s" || r.UserAgents[0] != "curl/*" || r.Headers["X-Api-Key"] != "*" {
					t.Errorf("running rule %+v", r)
				}
				if rules := e.fileRules(); len(rules) != 3 || rules[2].ID != "sites" {
					t.Errorf("file rules %+v", rules)
				}
			}},
		{name: "add existing", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"items-ip","rate":"1/s"}`}, want: 409, wantField: "id"},
		{name: "add inline id", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"inline","rate":"1/s"}`}, want: 409, wantIn: "config.toml"},
		{name: "add without id", q: req{method: "POST", path: "/api/v1/rules", body: `{"rate":"1/s"}`}, want: 400, wantField: "id"},
		{name: "add invalid rate", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"z","rate":"1/x"}`}, want: 400, wantIn: "unit must be"},
		{name: "add unknown field", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"z","rate":"1/s","colour":"red"}`}, want: 400, wantField: "colour"},
		{name: "add wrong type", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"z","rate":"1/s","paths":"/a"}`}, want: 400, wantField: "paths"},
		{name: "add not an object", q: req{method: "POST", path: "/api/v1/rules", body: `[1]`}, want: 400},
		{name: "patch", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"rate":"9/m","burst":12,"action":"shadow"}`}, want: 200,
			check: func(t *testing.T, e *env) {
				r, _ := e.running("items-ip")
				if r.Rate != "9/m" || r.Burst != 12 || r.Action != "shadow" {
					t.Errorf("running rule %+v", r)
				}
				if f := e.fileRules()[0]; f.Rate != "9/m" || f.Burst != 12 || f.Action != "shadow" || f.Paths[0] != "/items/*" {
					t.Errorf("file rule %+v", f)
				}
			}},
		{name: "patch inline", q: req{method: "PATCH", path: "/api/v1/rules/inline", body: `{"rate":"1/s"}`}, want: 409, wantIn: "config.toml"},
		{name: "patch unknown", q: req{method: "PATCH", path: "/api/v1/rules/nope", body: `{"rate":"1/s"}`}, want: 404},
		{name: "patch bad rate", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"rate":"fast"}`}, want: 400, wantField: "rate"},
		{name: "patch bad burst", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"burst":-1}`}, want: 400, wantField: "burst"},
		{name: "patch burst type", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"burst":"big"}`}, want: 400, wantField: "burst"},
		{name: "patch bad action", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"action":"block"}`}, want: 400, wantField: "action"},
		{name: "patch other field", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"paths":["/a"]}`}, want: 400, wantField: "paths"},
		{name: "patch nothing", q: req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{}`}, want: 400},
		{name: "patch empty body", q: req{method: "PATCH", path: "/api/v1/rules/items-ip"}, want: 400},
		{name: "patch burst below cost", q: req{method: "POST", path: "/api/v1/rules", body: `{"id":"c","rate":"1/s","burst":1,"cost":3}`}, want: 400, wantIn: "burst"},
		{name: "delete", q: req{method: "DELETE", path: "/api/v1/rules/categories"}, want: 200,
			check: func(t *testing.T, e *env) {
				if _, ok := e.running("categories"); ok {
					t.Error("deleted rule still runs")
				}
				if rules := e.fileRules(); len(rules) != 1 {
					t.Errorf("file rules %+v", rules)
				}
			}},
		{name: "delete inline", q: req{method: "DELETE", path: "/api/v1/rules/inline"}, want: 409},
		{name: "delete unknown", q: req{method: "DELETE", path: "/api/v1/rules/nope"}, want: 404},
		{name: "replace", q: req{method: "PUT", path: "/api/v1/rules", body: `{"rules":[{"id":"a","rate":"1/s"},{"id":"b","rate":"2/s","key":["ip"]}]}`}, want: 200,
			check: func(t *testing.T, e *env) {
				ids := []string{}
				for _, r := range e.lim.Rules() {
					ids = append(ids, r.ID)
				}
				if strings.Join(ids, ",") != "inline,a,b" {
					t.Errorf("running rules %v, want inline,a,b", ids)
				}
			}},
		{name: "replace with none", q: req{method: "PUT", path: "/api/v1/rules", body: `{"rules":[]}`}, want: 200,
			check: func(t *testing.T, e *env) {
				if n := len(e.lim.Rules()); n != 1 {
					t.Errorf("%d rules run, want the inline one", n)
				}
			}},
		{name: "replace invalid is atomic", q: req{method: "PUT", path: "/api/v1/rules", body: `{"rules":[{"id":"a","rate":"1/s"},{"id":"a","rate":"2/s"}]}`}, want: 400, wantIn: "duplicate"},
		{name: "replace unknown field", q: req{method: "PUT", path: "/api/v1/rules", body: `{"rules":[{"id":"a","rate":"1/s"},{"id":"b","rat":"2/s"}]}`}, want: 400, wantField: "rules[1].rat"},
		{name: "replace without rules", q: req{method: "PUT", path: "/api/v1/rules", body: `{}`}, want: 400, wantField: "rules"},
		{name: "replace with inline id", q: req{method: "PUT", path: "/api/v1/rules", body: `{"rules":[{"id":"inline","rate":"1/s"}]}`}, want: 409},
		{name: "replace bad JSON", q: req{method: "PUT", path: "/api/v1/rules", body: `{"rules":[`}, want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, testRules, tokens())
			before, _ := os.ReadFile(e.rulesPath)
			tt.q.token = adminSecret
			r := e.do(tt.q)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			m := r.json(t)
			if tt.wantField != "" && m["field"] != tt.wantField {
				t.Errorf("field %v, want %q: %s", m["field"], tt.wantField, r.body)
			}
			if tt.wantIn != "" && !strings.Contains(string(r.body), tt.wantIn) {
				t.Errorf("body lacks %q: %s", tt.wantIn, r.body)
			}
			after, _ := os.ReadFile(e.rulesPath)
			changed := tt.q.method != "GET" && r.status == 200
			if !changed && !bytes.Equal(before, after) {
				t.Errorf("refused or read-only request changed the rules file:\n%s", after)
			}
			if changed {
				if _, ok := m["reload"]; !ok {
					t.Errorf("no reload result: %s", r.body)
				}
				if !strings.Contains(e.logs.String(), "msg=audit token=ops") {
					t.Errorf("no audit line:\n%s", e.logs.String())
				}
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

func TestEditWithoutRulesFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", tokens())
	r := e.do(req{method: "PATCH", path: "/api/v1/rules/inline", body: `{"rate":"1/s"}`, token: adminSecret})
	if r.status != 409 || !strings.Contains(string(r.body), "rules_file") {
		t.Errorf("status %d %s, want 409 with advice about limits.rules_file", r.status, r.body)
	}
}

func TestEditRestoresFileWhenReloadFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	before, _ := os.ReadFile(e.rulesPath)
	e.mu.Lock()
	e.failNext = errors.Join(errors.New("config.toml: upstream.url: broken"), errors.New("config.toml: log.level: loud"))
	e.mu.Unlock()
	r := e.do(req{method: "PATCH", path: "/api/v1/rules/items-ip", body: `{"rate":"1/s"}`, token: adminSecret})
	if r.status != 422 {
		t.Fatalf("status %d, want 422: %s", r.status, r.body)
	}
	if errs, _ := r.json(t)["errors"].([]any); len(errs) != 2 {
		t.Errorf("errors %v, want both problems", errs)
	}
	if after, _ := os.ReadFile(e.rulesPath); !bytes.Equal(before, after) {
		t.Errorf("rules file not restored:\n%s", after)
	}
	if rule, _ := e.running("items-ip"); rule.Rate != "5/m" {
		t.Errorf("running rate %q, want the old 5/m", rule.Rate)
	}
	if strings.Contains(e.logs.String(), "msg=audit") {
		t.Errorf("refused change was audited:\n%s", e.logs.String())
	}
}

func TestEditRefusesInvalidFileOnDisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	if err := os.WriteFile(e.rulesPath, []byte("[[rules]]\nid = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.do(req{method: "DELETE", path: "/api/v1/rules/items-ip", token: adminSecret})
	if r.status != 409 || !strings.Contains(string(r.body), "invalid") {
		t.Errorf("status %d %s, want 409 saying the file on disk is invalid", r.status, r.body)
	}
}

// TestConcurrentEdits: edits are serialised; every added rule survives (no lost update), the
// patched rule ends with one of the written rates, the file parses, and the running rules equal
// the file's.
func TestConcurrentEdits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	const n = 16
	var wg sync.WaitGroup
	codes := make(chan int, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			codes <- e.do(req{method: "PATCH", path: "/api/v1/rules/items-ip", body: fmt.Sprintf(`{"rate":"%d/m"}`, i+1), token: adminSecret}).status
		}()
		go func() {
			defer wg.Done()
			codes <- e.do(req{method: "POST", path: "/api/v1/rules", body: fmt.Sprintf(`{"id":"r%d","rate":"%d/s"}`, i, i+1), token: adminSecret}).status
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("edit answered %d", c)
		}
	}
	file := e.fileRules()
	if len(file) != 2+n {
		t.Errorf("%d rules in the file, want %d", len(file), 2+n)
	}
	running := e.lim.Rules()[1:] // after the inline rule
	if len(running) != len(file) {
		t.Fatalf("%d running rules, %d in the file", len(running), len(file))
	}
	for i := range file {
		if running[i].ID != file[i].ID || running[i].Rate != file[i].Rate {
			t.Errorf("running %s %s, file %s %s", running[i].ID, running[i].Rate, file[i].ID, file[i].Rate)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(e.rulesPath))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestDenyEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	if err := e.lim.Update(limiter.Config{Deny: []string{"198.51.100.0/24"}, Rules: e.lim.Rules()}); err != nil {
		t.Fatal(err)
	}
	future := e.now.Add(time.Hour).Format(time.RFC3339)
	tests := []struct {
		name      string
		q         req
		want      int
		wantField string
	}{
		{"add with ttl", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"203.0.113.0/24","ttl":"1h","reason":"scraper"}`}, 200, ""},
		{"add address", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"2001:db8::1"}`}, 200, ""},
		{"add with expires", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"192.0.2.7/32","expires":"` + future + `"}`}, 200, ""},
		{"add both", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"192.0.2.8","ttl":"1h","expires":"` + future + `"}`}, 400, "ttl"},
		{"add past", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"192.0.2.8","expires":"2000-01-01T00:00:00Z"}`}, 400, "expires"},
		{"add bad ttl", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"192.0.2.8","ttl":"soon"}`}, 400, "ttl"},
		{"add bad cidr", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"300.1.1.1/8"}`}, 400, "cidr"},
		{"add no cidr", req{method: "POST", path: "/api/v1/deny", body: `{"reason":"x"}`}, 400, "cidr"},
		{"add bad expires type", req{method: "POST", path: "/api/v1/deny", body: `{"cidr":"192.0.2.8","expires":"tomorrow"}`}, 400, ""},
		{"list", req{method: "GET", path: "/api/v1/deny"}, 200, ""},
		{"remove", req{method: "DELETE", path: "/api/v1/deny?cidr=203.0.113.0/24"}, 200, ""},
		{"remove again", req{method: "DELETE", path: "/api/v1/deny?cidr=203.0.113.0/24"}, 404, "cidr"},
		{"remove config entry", req{method: "DELETE", path: "/api/v1/deny?cidr=198.51.100.0/24"}, 409, "cidr"},
		{"remove without cidr", req{method: "DELETE", path: "/api/v1/deny"}, 400, "cidr"},
	}
	for _, tt := range tests { // in order: they build on each other
		tt.q.token = adminSecret
		r := e.do(tt.q)
		if r.status != tt.want {
			t.Errorf("%s: status %d, want %d: %s", tt.name, r.status, tt.want, r.body)
			continue
		}
		if f := r.json(t)["field"]; tt.wantField != "" && f != tt.wantField {
			t.Errorf("%s: field %v, want %q", tt.name, f, tt.wantField)
		}
		if tt.name == "list" && (!strings.Contains(string(r.body), `"reason": "scraper"`) || !strings.Contains(string(r.body), `"source": "config"`)) {
			t.Errorf("list lacks entries: %s", r.body)
		}
	}
	got := map[netip.Prefix]bool{}
	for _, d := range e.lim.DenyList() {
		got[d.Prefix] = true
	}
	for _, want := range []string{"2001:db8::1/128", "192.0.2.7/32"} {
		if !got[netip.MustParsePrefix(want)] {
			t.Errorf("%s not in the running deny list %v", want, e.lim.DenyList())
		}
	}
	if len(got) != 2 {
		t.Errorf("deny list %v, want 2 entries", e.lim.DenyList())
	}
	if !strings.Contains(e.logs.String(), "action=deny.remove target=203.0.113.0/24") {
		t.Errorf("no audit line for the removal:\n%s", e.logs.String())
	}
}

func TestLimitsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	var d limiter.Decision
	var rq fasthttp.Request
	rq.SetRequestURI("/items/MLA1")
	ip := netip.MustParseAddr("203.0.113.9")
	for range 5 {
		e.lim.Check(e.now, &rq, ip, &d)
	}
	state := func() map[string]any {
		r := e.do(req{method: "GET", path: "/api/v1/limits/items-ip?ip=203.0.113.9", token: readSecret})
		if r.status != 200 {
			t.Fatalf("state: %d %s", r.status, r.body)
		}
		return r.json(t)
	}
	if s := state(); s["remaining"] != 0.0 || s["reset_seconds"].(float64) < 59 {
		t.Errorf("after 5 of 5/m: %v, want remaining 0 and reset ~60s", s)
	}
	for _, tt := range []struct {
		q         req
		want      int
		wantField string
	}{
		{req{method: "GET", path: "/api/v1/limits/nope?ip=1.2.3.4"}, 404, "rule"},
		{req{method: "GET", path: "/api/v1/limits/items-ip"}, 400, "key"},
		{req{method: "GET", path: "/api/v1/limits/items-ip?ip=banana"}, 400, "key"},
		{req{method: "DELETE", path: "/api/v1/limits/nope?ip=1.2.3.4"}, 404, "rule"},
		{req{method: "DELETE", path: "/api/v1/limits/items-ip?ip=203.0.113.9"}, 200, ""},
	} {
		tt.q.token = adminSecret
		r := e.do(tt.q)
		if r.status != tt.want || (tt.wantField != "" && r.json(t)["field"] != tt.wantField) {
			t.Errorf("%s %s: %d %s, want %d field %q", tt.q.method, tt.q.path, r.status, r.body, tt.want, tt.wantField)
		}
	}
	if s := state(); s["remaining"] != 5.0 {
		t.Errorf("after reset: %v, want remaining 5", s)
	}
	if e.lim.Check(e.now, &rq, ip, &d); d.Rejected() {
		t.Error("client still limited after the reset")
	}
}

func TestCachePurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	for _, p := range []string{"/categories/A", "/categories/B", "/sites/MLA"} {
		var rq fasthttp.Request
		var rs fasthttp.Response
		rq.SetRequestURI(p)
		_, err := e.cache.Serve(e.now, &rq, &rs, func(_ *fasthttp.Request, resp *fasthttp.Response) error {
			resp.SetStatusCode(200)
			resp.Header.Set("Cache-Control", "max-age=60")
			resp.SetBodyString("x")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.cache.Wait()
	tests := []struct {
		body      string
		want      int
		wantField string
		purged    float64
	}{
		{`{"prefix":"/categories/"}`, 200, "", 2},
		{`{"prefix":"categories"}`, 400, "prefix", 0},
		{`{}`, 400, "prefix", 0},
		{`{"all":true,"prefix":"/x"}`, 400, "all", 0},
		{`{"prefx":"/x"}`, 400, "prefx", 0},
		{`{"all":true}`, 200, "", 1},
	}
	for _, tt := range tests {
		r := e.do(req{method: "POST", path: "/api/v1/cache/purge", body: tt.body, token: adminSecret})
		m := r.json(t)
		if r.status != tt.want || (tt.wantField != "" && m["field"] != tt.wantField) || (r.status == 200 && m["purged"] != tt.purged) {
			t.Errorf("%s: %d %s, want %d field %q purged %v", tt.body, r.status, r.body, tt.want, tt.wantField, tt.purged)
		}
	}
}

func TestConfigAndReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRules, tokens())
	r := e.do(req{method: "GET", path: "/api/v1/config", token: readSecret})
	if r.status != 200 {
		t.Fatalf("config: %d %s", r.status, r.body)
	}
	body := string(r.body)
	for _, leak := range []string{adminSecret, "hunter2"} {
		if strings.Contains(body, leak) {
			t.Errorf("config view shows a secret %q:\n%s", leak, body)
		}
	}
	for _, want := range []string{`"redis_password": "<redacted>"`, `"name": "ops"`, `"addr": "x"`, `"rule_sources"`, `"version"`, `"last_reload_successful": true`} {
		if !strings.Contains(body, want) {
			t.Errorf("config view lacks %s:\n%s", want, body)
		}
	}

	if r := e.do(req{method: "POST", path: "/api/v1/reload", token: adminSecret}); r.status != 200 || !strings.Contains(string(r.body), `"version"`) {
		t.Errorf("reload: %d %s", r.status, r.body)
	}
	e.mu.Lock()
	e.failNext = errors.New("config.toml: limits.rules[0]: rate: broken")
	e.mu.Unlock()
	r = e.do(req{method: "POST", path: "/api/v1/reload", token: adminSecret})
	if r.status != 422 || !strings.Contains(string(r.body), "rate: broken") {
		t.Errorf("failed reload: %d %s, want 422 naming the problem", r.status, r.body)
	}
	r = e.do(req{method: "GET", path: "/api/v1/config", token: readSecret})
	if m := r.json(t); m["last_reload_successful"] != false || !strings.Contains(m["last_reload_error"].(string), "rate: broken") {
		t.Errorf("config after a failed reload: %s", r.body)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"token": "s", "tokens": []any{map[string]any{"token": "s", "token_env": "ENV"}},
		"redis": map[string]any{"password": "s", "redis_password": "s", "addr": "a"},
		"rules": []map[string]any{{"secret": "s"}},
	}
	out := fmt.Sprint(redact(in))
	if strings.Contains(strings.ReplaceAll(out, "<redacted>", ""), " s") || strings.Contains(out, ":s") {
		t.Errorf("secret left: %s", out)
	}
	if !strings.Contains(out, "token_env:ENV") || !strings.Contains(out, "addr:a") {
		t.Errorf("non-secret redacted: %s", out)
	}
}
