package limiter

import (
	"testing"

	"github.com/BurntSushi/toml"
)

// TestConfigTOML decodes a [limits] section using every key, strictly, so a
// misspelt toml tag cannot ship.
func TestConfigTOML(t *testing.T) {
	t.Parallel()
	const doc = `
[limits]
trusted_proxies = ["10.0.0.0/8"]
max_keys = 5000
headers = false
ipv4_prefix = 24
ipv6_prefix = 56
deny = ["203.0.113.0/24"]
exempt = ["192.0.2.10"]
rules_file = "rules.toml"

[[limits.rules]]
id = "all-fields"
paths = ["/items/*"]
methods = ["GET"]
cidrs = ["0.0.0.0/0"]
headers = { "X-Api-Key" = "*" }
query = { site = "MLA" }
user_agents = ["*"]
key = ["ip", "header:X-Api-Key"]
rate = "10/m"
burst = 20
action = "shadow"
cost = 2
scope = "cluster"
`
	var f struct {
		Limits Config `toml:"limits"`
	}
	md, err := toml.Decode(doc, &f)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("undecoded keys: %v", und)
	}
	c := f.Limits
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Rules[0]
	if c.MaxKeys != 5000 || *c.Headers || c.IPv6Prefix != 56 || c.RulesFile != "rules.toml" ||
		r.Headers["X-Api-Key"] != "*" || r.Query["site"] != "MLA" || r.Cost != 2 || r.Scope != "cluster" || r.Burst != 20 {
		t.Fatalf("decoded %+v", c)
	}
	l := newLimiter(t, c)
	if got := l.Rules()[0]; got.Action != "shadow" || got.Scope != "cluster" {
		t.Fatalf("Rules() = %+v", got)
	}
	if got := l.Config(); got.IPv4Prefix != 24 || got.MaxKeys != 5000 || len(got.Rules) != 1 {
		t.Fatalf("Config() = %+v", got)
	}
}

func TestDefaultsInRules(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Rules: []RuleConfig{{ID: "r", Rate: "10/m"}}})
	got := l.Rules()[0]
	if got.Burst != 10 || got.Cost != 1 || got.Action != "enforce" || got.Scope != "local" {
		t.Fatalf("defaults not reported: %+v", got)
	}
	got.Paths = append(got.Paths, "/mutated")
	if len(l.Rules()[0].Paths) != 0 {
		t.Fatal("Rules() shares memory with the limiter")
	}
	var zero Config
	if c := zero.withDefaults(); c.MaxKeys != DefaultMaxKeys || c.IPv4Prefix != 32 || c.IPv6Prefix != 64 {
		t.Fatalf("withDefaults = %+v", c)
	}
}
