package main

import (
	"strings"
	"testing"
)

func TestShippedConfigLoads(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../../config.toml", "../../deploy/demo.toml"} {
		if _, err := loadConfig(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestConfigVersionFollowsBytes(t *testing.T) {
	t.Parallel()
	a, err := parseConfig("a.toml", []byte("[upstream]\nurl = \"http://x\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseConfig("b.toml", []byte("[upstream]\nurl = \"http://x\"\n"))
	c, _ := parseConfig("c.toml", []byte("[upstream]\nurl = \"http://y\"\n"))
	if a.Version != b.Version || a.Version == c.Version {
		t.Errorf("versions %s %s %s: same bytes must give the same version, different bytes another", a.Version, b.Version, c.Version)
	}
}

// FuzzParseConfig: no input panics, and every rejection names the file.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("[server]\nlisten = \":8080\"\n[upstream]\nurl = \"https://api.mercadolibre.com\"\n"))
	f.Add([]byte("[server\n"))
	f.Add([]byte("[[upstream]]\nurl = 1\n"))
	f.Add([]byte("a.b.c = 1\n[x.y]\nz = [1,2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseConfig("fuzz.toml", data)
		if err != nil && !strings.Contains(err.Error(), "fuzz.toml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

// TestSectionErrorsNameTheirKeys: each package validates its own section and names the full key,
// so every line -check prints points at one place in the file.
func TestSectionErrorsNameTheirKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ toml, want string }{
		{"[limits]\nmax_keys = -1\n", "limits.max_keys"},
		{"[[limits.rules]]\nid = \"a\"\nrate = \"1/x\"\n", `limits.rules[0] (id "a"): rate`},
		{"[cache]\nmax_bytes = -1\n", "cache.max_bytes"},
		{"[[cache.rules]]\nid = \"c\"\npaths = [\"nope\"]\n", `cache.rules[0] (id "c"): paths[0]`},
		{"[stats]\nflush_interval = \"1ms\"\n", "stats.flush_interval"},
		{"[cluster]\naddrs = [\"x\"]\n", "cluster.addrs[0]"},
	}
	for _, tt := range tests {
		_, err := parseConfig("c.toml", []byte("[upstream]\nurl = \"http://x\"\n"+tt.toml))
		if err == nil || !strings.Contains(err.Error(), "c.toml: "+tt.want) {
			t.Errorf("%q: error %v, want one starting c.toml: %s", tt.toml, err, tt.want)
		}
	}
}
