package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// minProxyFlag makes the bench binary serve the fasthttp-min target instead
// of running the harness: `bench -serve-minproxy ADDR -upstream ADDR`. It is
// not in -help; the harness re-executes itself with it (startMinProxy), so the
// calibration target needs no binary of its own in cmd/.
const minProxyFlag = "-serve-minproxy"

// minProxyTimeout bounds each upstream exchange of the fasthttp-min target.
const minProxyTimeout = 5 * time.Second

// serveMinProxy runs the fasthttp-min target (newMinProxy) on the address
// of -serve-minproxy until SIGTERM or SIGINT.
func serveMinProxy(args []string) error {
	fs := flag.NewFlagSet("serve-minproxy", flag.ContinueOnError)
	listen := fs.String("serve-minproxy", "", "listen address")
	upstream := fs.String("upstream", "", "upstream host:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *upstream == "" {
		return errors.New("-serve-minproxy and -upstream are both required")
	}
	srv := newMinProxy(*upstream)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-sig.Done():
		return srv.ShutdownWithContext(context.Background())
	}
}

// newMinProxy is the fasthttp-min server, forwarding to upstream (host:port):
// the least a fasthttp reverse proxy can do. Its handler hands the request to
// a HostClient and answers with the upstream's response; no header rules, no
// limiter, cache, stats or logging. Its CPU per request is what the
// Go/fasthttp substrate costs, so meliproxy's CPU minus this is meliproxy's
// own work.
func newMinProxy(upstream string) *fasthttp.Server {
	hc := &fasthttp.HostClient{
		Addr: upstream,
		// As many upstream connections as HAProxy's backend gets in the bench.
		MaxConns:     1024,
		ReadTimeout:  minProxyTimeout,
		WriteTimeout: minProxyTimeout,
	}
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := hc.DoTimeout(&ctx.Request, &ctx.Response, minProxyTimeout); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		},
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           90 * time.Second,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
}

// startMinProxy starts the fasthttp-min target: this very program, re-executed
// with minProxyFlag.
func startMinProxy(ctx context.Context, e *env) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench program to re-execute: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(e.dir, "fasthttp-min", self, minProxyFlag, addr, "-upstream", e.upstream)
	if err != nil {
		return nil, err
	}
	e.fleet.add(p)
	t := &target{name: "fasthttp-min", base: "http://" + addr, proc: p,
		notes:   []string{"fasthttp.Server → HostClient.DoTimeout: no header rules, no limiter, cache or stats; pass-through only"},
		version: "fasthttp " + moduleVersion("github.com/valyala/fasthttp") + ", " + runtime.Version()}
	return t, waitHTTP(ctx, p, t.base+"/categories/MLA97994", startTimeout)
}

// moduleVersion is the version of module path built into this program.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}
