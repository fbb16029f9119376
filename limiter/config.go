package limiter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultMaxKeys    = 1_000_000
	DefaultIPv4Prefix = 32
	DefaultIPv6Prefix = 64

	// maxMaxKeys bounds max_keys: the table costs up to 44 B per key up front.
	maxMaxKeys = 100_000_000
)

// Config is the [limits] section of config.toml. The zero value is valid: no
// rules, nothing denied, defaults as documented per field.
type Config struct {
	// TrustedProxies are CIDRs (or single addresses) of proxies in front of
	// meliproxy whose X-Forwarded-For lines we believe. Empty: the TCP peer is
	// always the client.
	TrustedProxies []string `toml:"trusted_proxies"`
	// MaxKeys caps the number of keys tracked across all rules. Memory is
	// allocated up front once there are rules: 22–44 bytes per key depending
	// on power-of-two rounding (34 MiB for the default).
	// When full, idle keys are reused first, then the keys closest to a full
	// bucket are evicted (meliproxy_limiter_evictions_total). Default 1000000.
	MaxKeys int `toml:"max_keys"`
	// Headers adds RateLimit-Policy and RateLimit to allowed responses.
	// Limited responses always carry them. Default true.
	Headers *bool `toml:"headers"`
	// IPv4Prefix groups IPv4 clients for the "ip" key part: 32 = each address,
	// 24 = each /24. Default 32.
	IPv4Prefix int `toml:"ipv4_prefix"`
	// IPv6Prefix groups IPv6 clients for the "ip" key part. Default 64: one
	// host often owns a whole /64.
	IPv6Prefix int `toml:"ipv6_prefix"`
	// Deny lists CIDRs answered 403 before any rule. Checked before Exempt.
	Deny []string `toml:"deny"`
	// Exempt lists CIDRs that skip every rule.
	Exempt []string `toml:"exempt"`
	// RulesFile optionally names a TOML file holding more [[rules]]; a
	// relative path is relative to the config file's directory. The caller
	// loads it with LoadRulesFile and appends the rules to Rules.
	RulesFile string `toml:"rules_file"`
	// Rules are evaluated in order; every matching rule applies.
	Rules []RuleConfig `toml:"rules"`
}

// RuleConfig is one [[limits.rules]] entry. See docs/rules.md for the full
// reference. Empty match lists match everything; all given criteria must hold.
type RuleConfig struct {
	// ID names the rule in responses, headers and metrics: 1–64 characters
	// from [A-Za-z0-9._-], unique.
	ID string `toml:"id"`
	// Paths are path globs; any may match. "*" stays within one segment, a
	// final "/**" matches the path and everything below it. Matched against
	// the normalised path the proxy forwards.
	Paths []string `toml:"paths"`
	// Methods are upper-case HTTP methods; any may match.
	Methods []string `toml:"methods"`
	// CIDRs are client networks (after X-Forwarded-For resolution); any may
	// match.
	CIDRs []string `toml:"cidrs"`
	// Headers maps a header name to a value glob ("*" anything, including
	// "/"); all must match. "*" requires the header to be present.
	Headers map[string]string `toml:"headers"`
	// Query maps a query parameter name to a value glob; all must match.
	Query map[string]string `toml:"query"`
	// UserAgents are User-Agent value globs; any may match.
	UserAgents []string `toml:"user_agents"`
	// Key lists the parts that identify a bucket: "ip" (grouped by
	// ipv4_prefix/ipv6_prefix), "ip/N" (IPv4 /N), "ip/N/M" (IPv4 /N, IPv6
	// /M), "path", "method", "header:Name", "query:name", "user_agent".
	// Values are hashed, never stored. Empty: one bucket for the whole rule.
	Key []string `toml:"key"`
	// Rate is "N/s", "N/m", "N/h", "N/d", or with a window multiplier
	// ("30/10s"). Required.
	Rate string `toml:"rate"`
	// Burst is the bucket size: requests admitted at once from a full bucket.
	// Default: the rate's count. Must be at least Cost.
	Burst int `toml:"burst"`
	// Action is "enforce" (default: reject with 429) or "shadow" (count and
	// report "would have limited", never reject).
	Action string `toml:"action"`
	// Cost is the tokens each matching request takes. Default 1.
	Cost int `toml:"cost"`
	// Scope is "local" (default: this instance's counters) or "cluster" (one
	// limit across every node sharing the [cluster] Redis; without [cluster]
	// it is enforced locally). See docs/cluster.md.
	Scope string `toml:"scope"`
	// Fail is what a cluster rule does while Redis is unreachable: "local"
	// (default: each node enforces its share, limit / live nodes), "open"
	// (admit) or "closed" (reject). Only for scope = "cluster".
	Fail string `toml:"fail"`
}

// Validate reports every problem in c, joined with errors.Join, each naming
// its key (e.g. limits.rules[2] (id "items-ip"): rate "10/x": ...).
func (c *Config) Validate() error {
	_, err := compile(c, "limits.")
	return err
}

// LoadRulesFile reads a TOML file of [[rules]] tables (the same fields as
// [[limits.rules]]). Decoding is strict: unknown keys are errors. Each rule is
// validated on its own (duplicate ids across files are caught by the Config
// they are appended to); errors name the file and the rule.
func LoadRulesFile(path string) ([]RuleConfig, error) {
	var f struct {
		Rules []RuleConfig `toml:"rules"`
	}
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("rules file %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	cfg := Config{Rules: f.Rules}
	if _, err := compile(&cfg, path+": "); err != nil {
		return nil, err
	}
	return f.Rules, nil
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c *Config) withDefaults() Config {
	d := *c
	if d.MaxKeys == 0 {
		d.MaxKeys = DefaultMaxKeys
	}
	if d.IPv4Prefix == 0 {
		d.IPv4Prefix = DefaultIPv4Prefix
	}
	if d.IPv6Prefix == 0 {
		d.IPv6Prefix = DefaultIPv6Prefix
	}
	return d
}

func (c *Config) checkScalars(prefix string) []error {
	var errs []error
	if c.MaxKeys < 0 || c.MaxKeys > maxMaxKeys {
		errs = append(errs, fmt.Errorf("%smax_keys: %d out of range 1..%d (0 = default %d)", prefix, c.MaxKeys, maxMaxKeys, DefaultMaxKeys))
	}
	if c.IPv4Prefix < 0 || c.IPv4Prefix > 32 {
		errs = append(errs, fmt.Errorf("%sipv4_prefix: %d out of range 1..32", prefix, c.IPv4Prefix))
	}
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("%sipv6_prefix: %d out of range 1..128", prefix, c.IPv6Prefix))
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
