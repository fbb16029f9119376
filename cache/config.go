package cache

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meliproxy/meliproxy/limiter/glob"
)

// Defaults applied to zero-valued Config and RuleConfig fields.
const (
	DefaultMaxBytes      = 256 << 20 // 256 MiB
	DefaultMaxEntryBytes = 1 << 20   // 1 MiB
	DefaultTTL           = time.Minute
	maxNotFoundTTL       = 30 * time.Second
)

// Config is the [cache] section of config.toml. The zero value caches nothing: with no rules every
// request bypasses the cache and no memory is reserved.
type Config struct {
	// MaxBytes bounds the memory held by cached responses, counted as key + header + body bytes
	// plus ristretto's per-item bookkeeping. Default 256 MiB.
	MaxBytes int64 `toml:"max_bytes"`

	// MaxEntryBytes is the largest single response (key + header + body bytes) that is stored;
	// larger responses are forwarded but never kept. Default 1 MiB; must not exceed MaxBytes.
	MaxEntryBytes int64 `toml:"max_entry_bytes"`

	// Rules select the cacheable paths. The first rule whose path pattern matches wins; a request
	// matching no rule bypasses the cache. No rules means the cache is off.
	Rules []RuleConfig `toml:"rules"`
}

// RuleConfig is one [[cache.rules]] table: which paths are cacheable and for how long.
type RuleConfig struct {
	// ID names the rule in errors, logs and docs. Required, unique.
	ID string `toml:"id"`

	// Paths are glob patterns matched against the normalised path the proxy forwards (no query),
	// with the same syntax as limit rules (package limiter/glob): "*" matches within one path
	// segment, a final "/**" matches the path and everything below it: "/categories/*" matches
	// "/categories/MLA1055" but not "/categories/MLA1055/attributes"; "/categories/**" matches all three.
	// and "/categories/MLA1055/attributes" but not "/categories". There are no other wildcards.
	// Each pattern must start with "/". At least one is required.
	Paths []string `toml:"paths"`

	// TTL is how long a 200, 203 or 301 response is served from the cache. Upstream
	// Cache-Control max-age / s-maxage (or Expires) can only shorten it. Default 1m.
	TTL time.Duration `toml:"ttl"`

	// NotFoundTTL is how long a 404 is served from the cache. Default min(ttl, 30s).
	NotFoundTTL time.Duration `toml:"not_found_ttl"`

	// Stale is the window after expiry during which the expired copy is still served (with
	// X-Cache: STALE) when the upstream fails: a transport error, a timeout or a 5xx. Entries
	// stay in memory for TTL + Stale. Default 0: no stale serving.
	Stale time.Duration `toml:"stale"`

	// AllowAuthorized caches requests that carry Authorization or Cookie. Those header values then
	// become part of the cache key, so each credential gets its own entries and no client is ever
	// served a response fetched with another client's credentials. Default false: such requests
	// bypass the cache.
	AllowAuthorized bool `toml:"allow_authorized"`
}

// Validate reports every problem in c, joined, each naming the key and the rule id.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("cache.max_bytes %d: must be >= 0 (0 = default %d)", c.MaxBytes, DefaultMaxBytes))
	}
	if c.MaxEntryBytes < 0 {
		errs = append(errs, fmt.Errorf("cache.max_entry_bytes %d: must be >= 0 (0 = default %d)", c.MaxEntryBytes, DefaultMaxEntryBytes))
	}
	if d := c.withDefaults(); c.MaxBytes >= 0 && c.MaxEntryBytes >= 0 && d.MaxEntryBytes > d.MaxBytes {
		errs = append(errs, fmt.Errorf("cache.max_entry_bytes %d: must not exceed max_bytes %d", d.MaxEntryBytes, d.MaxBytes))
	}
	seen := make(map[string]int, len(c.Rules))
	for i := range c.Rules {
		errs = append(errs, c.Rules[i].validate(i, seen)...)
	}
	return errors.Join(errs...)
}

// validate checks one rule; seen maps ids already used to their index.
func (r *RuleConfig) validate(i int, seen map[string]int) []error {
	var errs []error
	where := fmt.Sprintf("cache.rules[%d] (id %q)", i, r.ID)
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(where+": "+format, args...))
	}
	switch j, dup := seen[r.ID]; {
	case r.ID == "":
		bad("id: required")
	case dup:
		bad("id: duplicate of cache.rules[%d]", j)
	default:
		seen[r.ID] = i
	}
	if len(r.Paths) == 0 {
		bad("paths: at least one pattern required, e.g. \"/categories/*\"")
	}
	for j, p := range r.Paths {
		if _, err := glob.Path(p); err != nil {
			bad("paths[%d] %q: %v", j, p, err)
		}
		if strings.ContainsAny(p, "?# \t\r\n") {
			bad("paths[%d] %q: must not contain '?', '#' or whitespace (the query is never matched)", j, p)
		}
	}
	if r.TTL < 0 {
		bad("ttl %q: must be positive (0 = default %s)", r.TTL, DefaultTTL)
	}
	if r.NotFoundTTL < 0 {
		bad("not_found_ttl %q: must be positive (0 = default min(ttl, 30s))", r.NotFoundTTL)
	}
	if r.Stale < 0 {
		bad("stale %q: must be >= 0", r.Stale)
	}
	return errs
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	return c
}

// withDefaults returns a copy of r with zero durations set to their defaults.
func (r RuleConfig) withDefaults() RuleConfig {
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if r.NotFoundTTL == 0 {
		r.NotFoundTTL = min(r.TTL, maxNotFoundTTL)
	}
	return r
}
