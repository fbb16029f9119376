package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/meliproxy/meliproxy/cache"
	"github.com/meliproxy/meliproxy/control"
	"github.com/meliproxy/meliproxy/limiter"
	"github.com/meliproxy/meliproxy/proxy"
	"github.com/meliproxy/meliproxy/stats"
)

// Config is the whole of config.toml. Each section is owned by the package that uses it.
type Config struct {
	Server   proxy.ServerConfig   `toml:"server"`
	Upstream proxy.UpstreamConfig `toml:"upstream"`
	Admin    proxy.AdminConfig    `toml:"admin"`
	Log      proxy.LogConfig      `toml:"log"`
	Limits   limiter.Config       `toml:"limits"`
	Cache    cache.Config         `toml:"cache"`
	Stats    stats.Config         `toml:"stats"`
	// Cluster shares scope = "cluster" limits through Redis; absent: every limit is per node.
	Cluster limiter.ClusterConfig `toml:"cluster"`

	// RuleSources maps each limit rule id to the file that defines it: the config file itself or
	// limits.rules_file. Only rules_file rules are edited through the admin API.
	RuleSources map[string]string `toml:"-"`
	// RulesPath is limits.rules_file resolved against the config file's folder ("" when unset).
	RulesPath string `toml:"-"`
	// Path is the file the config was read from; relative paths inside it resolve against its folder.
	Path string `toml:"-"`
	// Version is a short hash of the file's bytes: unchanged bytes, unchanged version.
	Version string `toml:"-"`
}

// configError marks problems with the configuration: the process exits 2 for them.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// loadConfig reads, strictly decodes, defaults and validates the file at path. Every problem is
// reported at once, each naming the file and key.
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{fmt.Errorf("read config: %w", err)}
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		return nil, &configError{err}
	}
	return cfg, nil
}

func parseConfig(path string, data []byte) (*Config, error) {
	cfg := &Config{Path: path}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s: %s", path, perr.ErrorWithPosition())
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for _, key := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("%s: unknown key %q%s", path, key.String(), validKeysHint(cfg, key)))
	}
	cfg.setDefaults()
	if err := cfg.loadRules(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	if err := cfg.validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("%s: %w", path, e))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The version covers the rules file too: editing only rules.toml is a change.
	h := sha256.New()
	h.Write(data)
	if cfg.RulesPath != "" {
		rules, err := os.ReadFile(cfg.RulesPath)
		if err != nil {
			return nil, fmt.Errorf("%s: limits.rules_file: %w", path, err)
		}
		h.Write(rules)
	}
	cfg.Version = hex.EncodeToString(h.Sum(nil)[:6])
	return cfg, nil
}

func (c *Config) setDefaults() {
	c.Server.SetDefaults()
	c.Upstream.SetDefaults()
	c.Admin.SetDefaults()
	c.Log.SetDefaults()
	if c.Stats.DataDir == "" {
		c.Stats.DataDir = stats.DefaultDataDir
	}
	c.Stats.DataDir = c.resolve(c.Stats.DataDir)
}

func (c *Config) validate() error {
	return errors.Join(
		c.Server.Validate(),
		c.Upstream.Validate(),
		c.Admin.Validate(),
		c.adminTokensErr(),
		c.Log.Validate(),
		// Each package names its own keys (limits.…, cache.…, stats.…), as the contract asks.
		c.Limits.Validate(),
		c.Cache.Validate(),
		c.Stats.Validate(),
		c.Cluster.Validate(),
		c.clusterPassword(),
	)
}

// clusterPassword reads cluster.password_env into cluster.password at load, so -check and start-up
// report an unset variable.
func (c *Config) clusterPassword() error {
	if c.Cluster.PasswordEnv == "" {
		return nil
	}
	if c.Cluster.Password != "" {
		return errors.New("cluster.password_env: set password or password_env, not both")
	}
	if c.Cluster.Password = os.Getenv(c.Cluster.PasswordEnv); c.Cluster.Password == "" {
		return fmt.Errorf("cluster.password_env: $%s is unset or empty", c.Cluster.PasswordEnv)
	}
	return nil
}

// adminTokens resolves [[admin.tokens]] for the control plane. token_env is read here, at load, so
// that -check and start-up report an unset variable; secrets are never logged.
func (c *Config) adminTokens() ([]control.Token, error) {
	var out []control.Token
	var errs []error
	for i, t := range c.Admin.Tokens {
		secret := t.Token
		if t.TokenEnv != "" {
			secret = os.Getenv(t.TokenEnv)
			if len(secret) < proxy.MinAdminTokenLen {
				errs = append(errs, fmt.Errorf("admin.tokens[%d] (name %q): token_env: $%s is unset or shorter than %d characters",
					i, t.Name, t.TokenEnv, proxy.MinAdminTokenLen))
				continue
			}
		}
		scope, err := control.ParseScope(t.Scope)
		if err != nil || secret == "" {
			continue // reported by AdminConfig.Validate
		}
		out = append(out, control.Token{Name: t.Name, Secret: secret, Scope: scope})
	}
	return out, errors.Join(errs...)
}

func (c *Config) adminTokensErr() error {
	_, err := c.adminTokens()
	return err
}

// loadRules appends the rules of limits.rules_file to the inline ones and records where each
// rule came from.
func (c *Config) loadRules() error {
	c.RuleSources = make(map[string]string, len(c.Limits.Rules))
	for _, r := range c.Limits.Rules {
		c.RuleSources[r.ID] = c.Path
	}
	if c.Limits.RulesFile == "" {
		return nil
	}
	c.RulesPath = c.resolve(c.Limits.RulesFile)
	rules, err := limiter.LoadRulesFile(c.RulesPath)
	if err != nil {
		return fmt.Errorf("limits.rules_file: %w", err)
	}
	for _, r := range rules {
		if src, dup := c.RuleSources[r.ID]; dup {
			return fmt.Errorf("limits.rules_file: %s: rule id %q is already defined in %s", c.RulesPath, r.ID, src)
		}
		c.RuleSources[r.ID] = c.RulesPath
	}
	c.Limits.Rules = append(c.Limits.Rules, rules...)
	return nil
}

// resolve makes a relative path relative to the config file's folder, so the process's working
// directory does not change what a config means.
func (c *Config) resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(c.Path), path)
}

// unjoin flattens errors.Join trees so each problem is printed on its own line.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// validKeysHint lists the keys the parent table of an unknown key accepts.
func validKeysHint(cfg *Config, key toml.Key) string {
	t := reflect.TypeOf(*cfg)
	for _, part := range key[:len(key)-1] {
		f, ok := fieldByTag(t, part)
		if !ok {
			return ""
		}
		t = f.Type
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag := tagName(t.Field(i)); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	sort.Strings(keys)
	where := "top level"
	if len(key) > 1 {
		where = "[" + strings.Join(key[:len(key)-1], ".") + "]"
	}
	return fmt.Sprintf(": valid keys in %s are %s", where, strings.Join(keys, ", "))
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func tagName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return tag
}
