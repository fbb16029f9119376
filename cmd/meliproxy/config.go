package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/meliproxy/meliproxy/proxy"
)

// Config is the whole of config.toml. Each section is owned by the package that uses it.
type Config struct {
	Server   proxy.ServerConfig   `toml:"server"`
	Upstream proxy.UpstreamConfig `toml:"upstream"`
	Admin    proxy.AdminConfig    `toml:"admin"`
	Log      proxy.LogConfig      `toml:"log"`

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
	if err := cfg.validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("%s: %w", path, e))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sum := sha256.Sum256(data)
	cfg.Version = hex.EncodeToString(sum[:6])
	return cfg, nil
}

func (c *Config) setDefaults() {
	c.Server.SetDefaults()
	c.Upstream.SetDefaults()
	c.Admin.SetDefaults()
	c.Log.SetDefaults()
}

func (c *Config) validate() error {
	return errors.Join(
		c.Server.Validate(),
		c.Upstream.Validate(),
		c.Admin.Validate(),
		c.Log.Validate(),
	)
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
