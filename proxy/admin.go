package proxy

import (
	"errors"
	"fmt"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// AdminConfig is the [admin] section: the operators' listener for health, metrics, stats and control.
// It is never the proxy port.
type AdminConfig struct {
	// Listen is the admin TCP address. Default "127.0.0.1:9090" (loopback only). A non-loopback
	// address requires at least one token.
	Listen string `toml:"listen"`
	// Tokens are the bearer tokens the admin API accepts ([[admin.tokens]]). None, on a loopback
	// listener: the API is open to local processes. See docs/admin-api.md.
	Tokens []AdminToken `toml:"tokens"`
}

// AdminToken is one [[admin.tokens]] entry. Exactly one of Token and TokenEnv is set; the secret is
// never logged nor shown by the API.
type AdminToken struct {
	// Name identifies the token in audit lines: 1–64 characters, unique.
	Name string `toml:"name"`
	// Token is the secret inline, at least 16 characters. Prefer TokenEnv.
	Token string `toml:"token"`
	// TokenEnv names the environment variable holding the secret (read at start).
	TokenEnv string `toml:"token_env"`
	// Scope is "read" (GET routes: stats, metrics, rules, limits, config) or "admin" (every route).
	Scope string `toml:"scope"`
}

// MinAdminTokenLen is the shortest secret accepted: `openssl rand -hex 32` makes a good one.
const MinAdminTokenLen = 16

// SetDefaults fills zero fields with their documented defaults.
func (c *AdminConfig) SetDefaults() {
	setDefault(&c.Listen, "127.0.0.1:9090")
}

// Validate reports every problem in the section, each naming its key.
func (c *AdminConfig) Validate() error {
	var errs []error
	if err := checkAddr(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("admin.listen: %w", err))
	} else if len(c.Tokens) == 0 && !isLoopback(c.Listen) {
		errs = append(errs, fmt.Errorf("admin.listen: %q is not a loopback address: add [[admin.tokens]] or listen on 127.0.0.1", c.Listen))
	}
	names := make(map[string]bool, len(c.Tokens))
	for i, t := range c.Tokens {
		key := fmt.Sprintf("admin.tokens[%d] (name %q)", i, t.Name)
		switch {
		case t.Name == "" || len(t.Name) > 64:
			errs = append(errs, fmt.Errorf("%s: name: want 1 to 64 characters", key))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("%s: name: duplicate", key))
		}
		names[t.Name] = true
		if (t.Token == "") == (t.TokenEnv == "") {
			errs = append(errs, fmt.Errorf("%s: set exactly one of token and token_env", key))
		} else if t.Token != "" && len(t.Token) < MinAdminTokenLen {
			errs = append(errs, fmt.Errorf("%s: token: want at least %d characters", key, MinAdminTokenLen))
		}
		if t.Scope != "read" && t.Scope != "admin" {
			errs = append(errs, fmt.Errorf("%s: scope %q: want \"read\" or \"admin\"", key, t.Scope))
		}
	}
	return errors.Join(errs...)
}

// ReadyFunc reports whether the node should receive traffic.
type ReadyFunc func() bool

// NewAdminRouter returns the admin routes every node has: /healthz answers 200 while the process
// runs; /readyz answers 200 only while ready() holds (config loaded, listening, not draining), so a
// load balancer stops sending traffic before the node drains.
func NewAdminRouter(ready ReadyFunc) *router.Router {
	r := router.New()
	r.GET("/healthz", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}` + "\n")
	})
	// Profiles for "measure, never guess" in production: go tool pprof http://ADMIN/debug/pprof/profile
	r.GET("/debug/pprof/{profile:*}", pprofhandler.PprofHandler)
	r.GET("/readyz", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		if !ready() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"status":"not ready"}` + "\n")
			return
		}
		ctx.SetBodyString(`{"status":"ready"}` + "\n")
	})
	return r
}
