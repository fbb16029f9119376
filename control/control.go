// Package control is meliproxy's control plane: the admin REST API that lists and edits rate-limit
// rules, the run-time deny list, per-key limiter state and the response cache, shows the effective
// configuration and triggers reloads. Requests are authenticated with bearer tokens of two scopes
// (read, admin) and every change is written to the log as an audit line.
//
// Rule edits persist: they are written atomically to the rules file and applied through the same
// reload path as SIGHUP, so the file stays the source of truth. See docs/admin-api.md.
package control

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/fasthttp/router"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/limiter"
)

// Snapshot describes the configuration the process runs now. The caller builds it on demand.
type Snapshot struct {
	// Path is the config file.
	Path string
	// Version is the hash of the config and rules files' bytes.
	Version string
	// RulesPath is limits.rules_file resolved ("" when unset): the file rule edits are written to.
	RulesPath string
	// RuleSources maps each rule id to the file defining it.
	RuleSources map[string]string
	// LoadedAt is the time of the last successful load or reload.
	LoadedAt time.Time
	// LastReloadError is the error of the last reload, "" after a success.
	LastReloadError string
	// Effective is the running configuration as TOML keys and values (as decoded into a map).
	// Values under keys that name secrets (token, password, secret) are redacted before output.
	Effective map[string]any
}

// Options are the inputs of New. Limiter, Cache, Reload and Snapshot are required.
type Options struct {
	// Tokens are the accepted bearer tokens. None: the API is open, which the caller allows only on
	// a loopback listener; requests must then name a loopback Host (against DNS rebinding).
	Tokens []Token
	// Limiter is the running limiter: rules, deny list and key state.
	Limiter *limiter.Limiter
	// Cache is the running response cache: purge.
	Cache *cache.Cache
	// Reload re-reads the config and rules files and applies them, exactly as SIGHUP does. It
	// returns what changed (marshalled to JSON as is) or every problem found, in which case
	// nothing changed.
	Reload func() (any, error)
	// Snapshot returns the running configuration.
	Snapshot func() Snapshot
	// Logger receives the audit lines (msg "audit") and edit failures (nil = slog.Default()).
	Logger *slog.Logger
	// Clock returns the current time (nil = time.Now).
	Clock func() time.Time
}

// Control serves the admin API. It is safe for concurrent use; rule edits are serialised.
type Control struct {
	o      Options
	tokens []token
	// cookieKey signs /stats browser sessions; random per process, so a restart ends them.
	cookieKey [32]byte
	// editMu serialises rule edits from read of the rules file to the reload that applies it:
	// concurrent edits are applied one after the other, the last one wins, and the file is never
	// written by two requests at once.
	editMu sync.Mutex
}

// New returns a Control serving o.
func New(o Options) (*Control, error) {
	if o.Limiter == nil || o.Cache == nil || o.Reload == nil || o.Snapshot == nil {
		return nil, errors.New("control: Limiter, Cache, Reload and Snapshot are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	c := &Control{o: o}
	var err error
	if c.tokens, err = compileTokens(o.Tokens); err != nil {
		return nil, err
	}
	if _, err := rand.Read(c.cookieKey[:]); err != nil {
		return nil, err
	}
	return c, nil
}

// Register adds the API routes to r. They are plain handlers: wrap the router's handler with
// Protect to authenticate them.
//
//	GET    /api/v1/rules            list (effective values, source file, editable)
//	PUT    /api/v1/rules            replace every rules-file rule
//	POST   /api/v1/rules            add one rule
//	GET    /api/v1/rules/{id}       one rule
//	PATCH  /api/v1/rules/{id}       change rate, burst or action
//	DELETE /api/v1/rules/{id}       delete one rule
//	GET    /api/v1/deny             deny list (config and run-time entries)
//	POST   /api/v1/deny             add a run-time entry
//	DELETE /api/v1/deny?cidr=…      remove a run-time entry
//	GET    /api/v1/limits/{rule}?…  a key's remaining tokens and reset time
//	DELETE /api/v1/limits/{rule}?…  refill a key's bucket
//	POST   /api/v1/cache/purge      purge by path prefix or all
//	GET    /api/v1/config           effective config, version, rule sources, last reload error
//	POST   /api/v1/reload           reload the files (same as SIGHUP)
func (c *Control) Register(r *router.Router) {
	r.GET("/api/v1/rules", c.listRules)
	r.PUT("/api/v1/rules", c.replaceRules)
	r.POST("/api/v1/rules", c.addRule)
	r.GET("/api/v1/rules/{id}", c.getRule)
	r.PATCH("/api/v1/rules/{id}", c.patchRule)
	r.DELETE("/api/v1/rules/{id}", c.deleteRule)
	r.GET("/api/v1/deny", c.listDeny)
	r.POST("/api/v1/deny", c.addDeny)
	r.DELETE("/api/v1/deny", c.removeDeny)
	r.GET("/api/v1/limits/{rule}", c.keyState)
	r.DELETE("/api/v1/limits/{rule}", c.resetKey)
	r.POST("/api/v1/cache/purge", c.purgeCache)
	r.GET("/api/v1/config", c.showConfig)
	r.POST("/api/v1/reload", c.reload)
}
