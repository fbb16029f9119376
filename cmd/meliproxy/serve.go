package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/proxy"
)

// serve runs the proxy and admin listeners until SIGTERM or SIGINT, then drains and returns nil.
func serve(cfg *Config, stderr io.Writer) error {
	logger := newLogger(cfg.Log, stderr)
	accessLog, closeAccess, err := openAccessLog(cfg.Log.AccessLog)
	if err != nil {
		return &configError{err}
	}
	defer closeAccess()

	p, err := proxy.New(proxy.Options{
		Server:    cfg.Server,
		Upstream:  cfg.Upstream,
		Logger:    logger,
		AccessLog: accessLog,
	})
	if err != nil {
		return &configError{err}
	}

	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.Listen, err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin listen %s: %w", cfg.Admin.Listen, err)
	}
	admin := &fasthttp.Server{
		Handler:               proxy.NewAdminRouter(p.Ready).Handler,
		NoDefaultServerHeader: true,
		ReadTimeout:           cfg.Server.ReadTimeout,
		IdleTimeout:           cfg.Server.IdleTimeout,
		CloseOnShutdown:       true,
	}

	errc := make(chan error, 2)
	go func() { errc <- p.Serve(ln) }()
	go func() { errc <- admin.Serve(adminLn) }()
	logger.Info("meliproxy started", "version", buildVersion(), "listen", ln.Addr().String(),
		"admin", adminLn.Addr().String(), "upstream", cfg.Upstream.URL, "config", cfg.Path,
		"config_version", cfg.Version)

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigc)

	var runErr error
	select {
	case sig := <-sigc:
		logger.Info("draining", "signal", sig.String(), "timeout", cfg.Server.DrainTimeout.String())
	case runErr = <-errc:
		runErr = fmt.Errorf("serve: %w", runErr)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		logger.Warn("drain incomplete", "error", err)
	}
	_ = admin.Shutdown()
	logger.Info("meliproxy stopped")
	return runErr
}

func newLogger(c proxy.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openAccessLog opens the access log destination; "" means off.
func openAccessLog(dest string) (io.Writer, func(), error) {
	switch dest {
	case "":
		return nil, func() {}, nil
	case "stdout":
		return os.Stdout, func() {}, nil
	case "stderr":
		return os.Stderr, func() {}, nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("log.access_log: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}
