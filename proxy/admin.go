package proxy

import (
	"errors"
	"fmt"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// AdminConfig is the [admin] section: the operators' listener for health, metrics, stats and control.
// It is never the proxy port.
type AdminConfig struct {
	// Listen is the admin TCP address. Default "127.0.0.1:9090" (loopback only).
	Listen string `toml:"listen"`
}

// SetDefaults fills zero fields with their documented defaults.
func (c *AdminConfig) SetDefaults() {
	setDefault(&c.Listen, "127.0.0.1:9090")
}

// Validate reports every problem in the section, each naming its key.
func (c *AdminConfig) Validate() error {
	var errs []error
	if err := checkAddr(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("admin.listen: %w", err))
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
