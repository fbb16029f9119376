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

	"github.com/meliproxy/meliproxy/control/sdnotify"
	"github.com/meliproxy/meliproxy/proxy"
)

// serve runs the proxy and admin listeners until SIGTERM or SIGINT, then drains and returns nil.
// SIGHUP reloads the configuration; a bad file is refused and the old one keeps serving.
func serve(cfg *Config, stderr io.Writer) error {
	logger := newLogger(cfg.Log, stderr)
	accessLog, closeAccess, err := openAccessLog(cfg.Log.AccessLog)
	if err != nil {
		return &configError{err}
	}
	defer closeAccess()

	a, err := newApp(cfg, logger, accessLog)
	if err != nil {
		return err
	}
	defer a.close()
	a.notify = sdnotify.New(os.Getenv("NOTIFY_SOCKET"))

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
		Handler:               a.adminHandler(),
		NoDefaultServerHeader: true,
		ReadTimeout:           cfg.Server.ReadTimeout,
		IdleTimeout:           cfg.Server.IdleTimeout,
		CloseOnShutdown:       true,
	}

	errc := make(chan error, 2)
	go func() { errc <- a.proxy.Serve(ln) }()
	go func() { errc <- admin.Serve(adminLn) }()
	logger.Info("meliproxy started", "version", buildVersion(), "listen", ln.Addr().String(),
		"admin", adminLn.Addr().String(), "upstream", cfg.Upstream.URL, "config", cfg.Path,
		"config_version", cfg.Version, "rules", len(cfg.Limits.Rules), "cache_rules", len(cfg.Cache.Rules),
		"admin_tokens", len(cfg.Admin.Tokens))
	if len(cfg.Admin.Tokens) == 0 {
		logger.Warn("admin API has no tokens: open to local processes on the loopback listener", "admin", adminLn.Addr().String())
	}
	a.notifyReady()

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigc)

	var runErr error
wait:
	for {
		select {
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				_, _ = a.logReload("SIGHUP")
				continue
			}
			_ = a.notify.Stopping()
			logger.Info("draining", "signal", sig.String(), "timeout", cfg.Server.DrainTimeout.String())
			break wait
		case runErr = <-errc:
			runErr = fmt.Errorf("serve: %w", runErr)
			break wait
		}
	}
	if err := a.proxy.Shutdown(context.Background()); err != nil {
		logger.Warn("drain incomplete", "error", err)
	}
	_ = admin.Shutdown()
	a.close()
	logger.Info("meliproxy stopped")
	return runErr
}

// logReload reloads and logs the outcome: every problem on failure, what changed on success.
// systemd (Type=notify) is told RELOADING=1 before and READY=1 after, whatever the outcome.
func (a *app) logReload(trigger string) (*ReloadResult, error) {
	_ = a.notify.Reloading()
	defer a.notifyReady()
	res, err := a.reload()
	if err != nil {
		for _, e := range unjoin(err) {
			a.log.Error("reload refused, old configuration kept", "trigger", trigger, "error", e)
		}
		return nil, err
	}
	a.log.Info("reloaded", "trigger", trigger, "version", res.Version, "unchanged", res.Unchanged,
		"rules_added", res.RulesAdded, "rules_removed", res.RulesRemoved, "rules_changed", res.RulesChanged,
		"cache_changed", res.CacheChanged, "needs_restart", res.NeedsRestart)
	return res, nil
}

// notifyReady sends READY=1 with a status line systemctl status shows.
func (a *app) notifyReady() {
	status := "serving, config " + a.cfg.Load().Version
	if e := a.lastReloadError(); e != "" {
		status += "; last reload refused (see logs)"
	}
	if err := a.notify.Ready(status); err != nil {
		a.log.Warn("sd_notify", "error", err)
	}
}

// adminHandler is the admin listener's router: health, metrics, stats and the control plane, all
// but health behind the control plane's authentication.
func (a *app) adminHandler() fasthttp.RequestHandler {
	r := proxy.NewAdminRouter(a.proxy.Ready)
	a.stats.Register(r)
	a.ctl.Register(r)
	return a.ctl.Protect(r.Handler)
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
