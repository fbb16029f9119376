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
