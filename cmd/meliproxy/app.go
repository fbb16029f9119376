package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/control"
	"github.com/meliproxy/meliproxy/control/sdnotify"
	"github.com/meliproxy/meliproxy/limiter"
	"github.com/meliproxy/meliproxy/proxy"
	"github.com/meliproxy/meliproxy/stats"
)

// app is one running meliproxy: its components and the configuration they were built from.
type app struct {
	log   *slog.Logger
	lim   *limiter.Limiter
	cache *cache.Cache
	stats *stats.Stats
	proxy *proxy.Proxy
	ctl   *control.Control
	// notify tells systemd about start, reloads and stop (nil: not run by systemd).
	notify *sdnotify.Notifier

	cfg      atomic.Pointer[Config]
	loadedAt atomic.Int64 // unix seconds of the last successful load

	reloadMu  sync.Mutex // one reload at a time: SIGHUP and the API may race
	reloadOK  atomic.Bool
	reloadErr atomic.Pointer[string]
	closeOnce sync.Once
}

// newApp builds every component from cfg. Nothing listens yet.
func newApp(cfg *Config, logger *slog.Logger, accessLog io.Writer) (*app, error) {
	a := &app{log: logger}
	a.cfg.Store(cfg)
	a.loadedAt.Store(time.Now().Unix())
	a.reloadOK.Store(true)

	var err error
	if a.lim, err = limiter.New(cfg.Limits); err != nil {
		return nil, &configError{fmt.Errorf("limits: %w", err)}
	}
	if err := a.lim.StartCluster(cfg.Cluster, logger); err != nil {
		return nil, &configError{err}
	}
	if a.cache, err = cache.New(cfg.Cache); err != nil {
		_ = a.lim.Close()
		return nil, &configError{fmt.Errorf("cache: %w", err)}
	}
	a.stats, err = stats.New(cfg.Stats, stats.Options{
		Info: a.pageInfo,
		Extra: []func(io.Writer){a.lim.WriteMetrics, a.cache.WriteMetrics, func(w io.Writer) {
			a.proxy.WriteMetrics(w) // set below; /metrics is served only after newApp returns
		}},
		Version: buildVersion(),
		Logger:  logger,
	})
	if err != nil {
		a.cache.Close()
		_ = a.lim.Close()
		return nil, fmt.Errorf("stats: %w", err)
	}
	a.registerMetrics()
	a.proxy, err = proxy.New(proxy.Options{
		Server:    cfg.Server,
		Upstream:  cfg.Upstream,
		Limiter:   a.lim,
		Cache:     a.cache,
		Stats:     a.stats,
		Logger:    logger,
		AccessLog: accessLog,
	})
	if err != nil {
		a.close()
		return nil, &configError{err}
	}
	tokens, err := cfg.adminTokens()
	if err == nil {
		a.ctl, err = control.New(control.Options{Tokens: tokens, Limiter: a.lim, Cache: a.cache,
			Reload: a.apiReload, Snapshot: a.snapshot, Logger: logger})
	}
	if err != nil {
		a.close()
		return nil, &configError{err}
	}
	return a, nil
}

// apiReload is the control plane's reload: the same path as SIGHUP.
func (a *app) apiReload() (any, error) {
	res, err := a.logReload("api")
	if err != nil {
		return nil, err
	}
	return res, nil
}

// snapshot describes the running configuration for the control plane.
func (a *app) snapshot() control.Snapshot {
	cfg := a.cfg.Load()
	return control.Snapshot{
		Path:            cfg.Path,
		Version:         cfg.Version,
		RulesPath:       cfg.RulesPath,
		RuleSources:     maps.Clone(cfg.RuleSources),
		LoadedAt:        time.Unix(a.loadedAt.Load(), 0),
		LastReloadError: a.lastReloadError(),
		Effective:       effectiveConfig(cfg, a.lim.Config()),
	}
}

// effectiveConfig is cfg as TOML keys and values, the names operators write (the control plane
// redacts secrets), with the limiter's defaults applied. (The cache section shows 0 for its
// defaults: cache has no getter for its effective Config.)
func effectiveConfig(cfg *Config, limits limiter.Config) map[string]any {
	eff := *cfg
	eff.Limits = limits
	out := map[string]any{}
	b, err := toml.Marshal(&eff)
	if err == nil {
		err = toml.Unmarshal(b, &out)
	}
	if err != nil {
		return map[string]any{"error": "BUG: encode config: " + err.Error()}
	}
	return out
}

// registerMetrics exports the reload state with the names Prometheus and Alertmanager use.
func (a *app) registerMetrics() {
	set := a.stats.Set()
	set.NewGauge("meliproxy_config_last_reload_successful", func() float64 {
		if a.reloadOK.Load() {
			return 1
		}
		return 0
	})
	set.NewGauge("meliproxy_config_last_reload_success_timestamp_seconds", func() float64 {
		return float64(a.loadedAt.Load())
	})
}

// close releases what the components hold, after the proxy has drained: the cache must not be
// closed while a request may still store into it.
func (a *app) close() {
	a.closeOnce.Do(func() {
		_ = a.lim.Close() // leaves the cluster: the other nodes' shares grow at once
		if err := a.stats.Close(); err != nil {
			a.log.Error("stats: final flush", "error", err)
		}
		a.cache.Close()
	})
}

// pageInfo is what /stats shows about the running configuration.
func (a *app) pageInfo() stats.PageInfo {
	cfg := a.cfg.Load()
	info := stats.PageInfo{ConfigVersion: cfg.Version, LoadedAt: time.Unix(a.loadedAt.Load(), 0)}
	for _, r := range a.lim.Rules() { // defaults (action, scope) already applied by the limiter
		info.Rules = append(info.Rules, stats.RuleInfo{ID: r.ID, Rate: r.Rate, Action: r.Action, Scope: r.Scope})
	}
	if cs := a.lim.ClusterStatus(time.Now()); cs.Enabled {
		info.Cluster = &stats.ClusterInfo{
			NodeID: cs.NodeID, Nodes: cs.Nodes, Degraded: cs.Degraded, HotKeys: cs.HotKeys, Errors: cs.Errors,
			SyncLagMs: float64(cs.SyncLag) / float64(time.Millisecond),
		}
	}
	return info
}

// ReloadResult says what a reload changed. Settings that only a restart applies are listed, not
// silently ignored.
type ReloadResult struct {
	Version       string   `json:"version"`
	Unchanged     bool     `json:"unchanged,omitempty"`
	RulesAdded    []string `json:"rules_added,omitempty"`
	RulesRemoved  []string `json:"rules_removed,omitempty"`
	RulesChanged  []string `json:"rules_changed,omitempty"`
	CacheChanged  bool     `json:"cache_changed,omitempty"`
	LimitsChanged bool     `json:"limits_changed,omitempty"`
	NeedsRestart  []string `json:"needs_restart,omitempty"`
}

// reload re-reads the config file (and rules file) and applies it: parse, validate everything,
// then swap. On any error nothing changes and the old configuration keeps serving. Unchanged bytes
// are a no-op.
func (a *app) reload() (*ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	old := a.cfg.Load()
	cfg, err := loadConfig(old.Path)
	if err != nil {
		return nil, a.reloadFailed(err)
	}
	res := &ReloadResult{Version: cfg.Version}
	if cfg.Version == old.Version {
		res.Unchanged = true
		a.reloadSucceeded()
		return res, nil
	}
	res.NeedsRestart = restartOnly(old, cfg)
	// What needs a restart keeps its running value, so the effective config is what runs.
	cfg.Server, cfg.Upstream, cfg.Admin, cfg.Log, cfg.Stats = old.Server, old.Upstream, old.Admin, old.Log, old.Stats
	cfg.Cluster = old.Cluster

	if err := a.lim.Update(cfg.Limits); err != nil {
		return nil, a.reloadFailed(fmt.Errorf("limits: %w", err))
	}
	if err := a.cache.Update(cfg.Cache); err != nil {
		if rerr := a.lim.Update(old.Limits); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore limits: %w", rerr))
		}
		return nil, a.reloadFailed(fmt.Errorf("cache: %w", err))
	}
	res.RulesAdded, res.RulesRemoved, res.RulesChanged = diffRules(old.Limits.Rules, cfg.Limits.Rules)
	res.CacheChanged = !reflect.DeepEqual(old.Cache, cfg.Cache)
	oldLimits, newLimits := old.Limits, cfg.Limits
	oldLimits.Rules, newLimits.Rules = nil, nil
	res.LimitsChanged = !reflect.DeepEqual(oldLimits, newLimits)
	a.cfg.Store(cfg)
	a.reloadSucceeded()
	return res, nil
}

func (a *app) reloadSucceeded() {
	a.reloadOK.Store(true)
	a.reloadErr.Store(nil)
	a.loadedAt.Store(time.Now().Unix())
}

func (a *app) reloadFailed(err error) error {
	msg := err.Error()
	a.reloadOK.Store(false)
	a.reloadErr.Store(&msg)
	return err
}

// lastReloadError is the error of the last reload, "" after a success.
func (a *app) lastReloadError() string {
	if p := a.reloadErr.Load(); p != nil {
		return *p
	}
	return ""
}

// restartOnly lists the changed sections that a reload cannot apply.
func restartOnly(old, cfg *Config) []string {
	var out []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	check("server", old.Server, cfg.Server)
	check("upstream", old.Upstream, cfg.Upstream)
	check("admin", old.Admin, cfg.Admin)
	check("log", old.Log, cfg.Log)
	check("stats", old.Stats, cfg.Stats)
	check("cluster", old.Cluster, cfg.Cluster)
	return out
}

// diffRules names the rules added, removed and changed between two rule lists.
func diffRules(old, cur []limiter.RuleConfig) (added, removed, changed []string) {
	byID := make(map[string]limiter.RuleConfig, len(old))
	for _, r := range old {
		byID[r.ID] = r
	}
	for _, r := range cur {
		prev, ok := byID[r.ID]
		switch {
		case !ok:
			added = append(added, r.ID)
		case !reflect.DeepEqual(prev, r):
			changed = append(changed, r.ID)
		}
		delete(byID, r.ID)
	}
	for id := range byID {
		removed = append(removed, id)
	}
	slices.Sort(removed)
	return added, removed, changed
}
