// Command mockmeli is a local stand-in for api.mercadolibre.com: realistic
// JSON for categories, sites, items and users, MercadoLibre-style errors,
// echo and sizing endpoints for proxy tests, and latency and fault injection
// for tests and benchmarks.
//
// Usage:
//
//	mockmeli -listen 127.0.0.1:8081 [-latency 2ms] [-jitter 1ms]
//	         [-fail-rate 0.01 -fail-mode 5xx|reset|stall] [-stall 1m] [-seed 1] [-bare]
//
// Routes (GET/HEAD unless noted):
//
//	/categories/{id}        MLA97994, MLA1055, MLA1051 (404 otherwise)
//	/sites, /sites/{id}     MLA, MLB
//	/sites/{id}/categories  MLA, MLB
//	/items/{id}             any well-formed id such as MLA1100000001
//	/users/{id}             any positive numeric id
//	/echo                   any method: JSON describing the request as received;
//	                        ?status=N sets the status, ?set=Name:Value adds a response header
//	/big?bytes=N            N bytes (Content-Length; &chunked=1 for chunked)
//	/status/{code}          that status with a small JSON body
//	/slow?d=DUR             answers after DUR
//	/__stats                {"requests":N,"faults":F}; not itself counted, never faulted
//
// With -bare every path returns the /categories/MLA97994 body and nothing
// else: the ceiling a proxy is measured against.
//
// The listening address is printed to stdout as "mockmeli listening on ADDR",
// so -listen 127.0.0.1:0 works for tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// shutdownTimeout bounds the graceful drain at SIGTERM/SIGINT.
const shutdownTimeout = 10 * time.Second

// errUsage marks command-line errors (exit status 2).
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "mockmeli:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	fx, err := loadFixtures()
	if err != nil {
		return err
	}
	s := newServer(cfg, fx)
	handler := s.handle
	if cfg.bare {
		handler = bareHandler(fx.exact["/categories/MLA97994"].body)
	}
	srv := &fasthttp.Server{
		Handler:            handler,
		Name:               "mockmeli",
		ReadTimeout:        30 * time.Second,
		IdleTimeout:        90 * time.Second,
		ReadBufferSize:     16 << 10, // headers up to 16 KiB: proxies under test add some
		MaxRequestBodySize: 64 << 20,
		CloseOnShutdown:    true,
		Logger:             slogLogger{slog.New(slog.NewTextHandler(stderr, nil))},
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mockmeli listening on %s\n", ln.Addr())
	return serve(srv, ln, s.done)
}

// serve runs srv until it fails or a signal arrives, then drains: done is
// closed first so stalled and sleeping requests end, then in-flight requests
// get up to shutdownTimeout.
func serve(srv *fasthttp.Server, ln net.Listener, done chan struct{}) error {
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-sig.Done():
	}
	close(done)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("mockmeli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var mode string
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8081", "address to listen on (port 0 picks a free port)")
	fs.DurationVar(&cfg.latency, "latency", 0, "fixed latency added to every response")
	fs.DurationVar(&cfg.jitter, "jitter", 0, "extra latency, uniform in [0, jitter)")
	fs.Float64Var(&cfg.failRate, "fail-rate", 0, "fraction of requests (0..1) that fail with -fail-mode")
	fs.StringVar(&mode, "fail-mode", "5xx", "how requests fail: 5xx (503 JSON), reset (TCP RST, no response), stall (no response)")
	fs.DurationVar(&cfg.stall, "stall", time.Minute, "longest a stalled request is held before its connection is closed")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed for fault and jitter decisions (same seed, same sequence)")
	fs.BoolVar(&cfg.bare, "bare", false, "benchmark ceiling: answer every path with the MLA97994 body, no routing or faults")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usagef(stderr, "unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.failMode, err = parseFaultMode(mode); err != nil {
		return cfg, usagef(stderr, "%v", err)
	}
	switch {
	case cfg.failRate < 0 || cfg.failRate > 1:
		return cfg, usagef(stderr, "-fail-rate %v: must be between 0 and 1", cfg.failRate)
	case cfg.latency < 0 || cfg.jitter < 0 || cfg.stall <= 0:
		return cfg, usagef(stderr, "-latency and -jitter must be >= 0 and -stall > 0")
	}
	return cfg, nil
}

func usagef(stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, "mockmeli: "+format+"\n", args...)
	return errUsage
}

// slogLogger routes fasthttp's internal messages to slog.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, args ...any) {
	l.l.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
