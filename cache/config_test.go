package cache

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := RuleConfig{ID: "catalog", Paths: []string{"/categories/*"}, TTL: time.Minute}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none = valid
	}{
		{"zero value", Config{}, nil},
		{"shipped shape", Config{MaxBytes: 64 << 20, Rules: []RuleConfig{good}}, nil},
		{"defaults only", Config{Rules: []RuleConfig{{ID: "x", Paths: []string{"/x"}}}}, nil},
		{"negative sizes", Config{MaxBytes: -1, MaxEntryBytes: -2}, []string{"cache.max_bytes -1", "cache.max_entry_bytes -2"}},
		{"entry above total", Config{MaxBytes: 1 << 10, MaxEntryBytes: 1 << 20}, []string{"cache.max_entry_bytes 1048576: must not exceed max_bytes 1024"}},
		{"default entry above small total", Config{MaxBytes: 1 << 10}, []string{"must not exceed max_bytes"}},
		{"missing id and paths", Config{Rules: []RuleConfig{{}}}, []string{`cache.rules[0] (id ""): id: required`, "paths: at least one"}},
		{"duplicate id", Config{Rules: []RuleConfig{good, good}}, []string{`cache.rules[1] (id "catalog"): id: duplicate of cache.rules[0]`}},
		{"bad patterns", Config{Rules: []RuleConfig{{ID: "p", Paths: []string{"categories/*", "/a?b=1", "/a b"}}}},
			[]string{`paths[0] "categories/*": must start with "/"`, `paths[1] "/a?b=1"`, `paths[2] "/a b"`}},
		{"negative durations", Config{Rules: []RuleConfig{{ID: "d", Paths: []string{"/d"}, TTL: -1, NotFoundTTL: -1, Stale: -1}}},
			[]string{`cache.rules[0] (id "d"): ttl`, "not_found_ttl", "stale"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if _, err := New(tt.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestRuleDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in            RuleConfig
		ttl, notFound time.Duration
	}{
		{RuleConfig{}, DefaultTTL, 30 * time.Second},
		{RuleConfig{TTL: 10 * time.Second}, 10 * time.Second, 10 * time.Second},
		{RuleConfig{TTL: time.Hour}, time.Hour, 30 * time.Second},
		{RuleConfig{TTL: time.Hour, NotFoundTTL: 5 * time.Minute}, time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		r := newRule(tt.in)
		if r.ttl != tt.ttl || r.notFoundTTL != tt.notFound {
			t.Errorf("newRule(%+v): ttl %s not_found_ttl %s, want %s %s", tt.in, r.ttl, r.notFoundTTL, tt.ttl, tt.notFound)
		}
	}
}

// TestRulePaths: cache rules use the limiter's path syntax (limiter/glob), so a pattern means the
// same in both: "*" stays within one segment, a final "/**" covers a subtree.
func TestRulePaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/categories/*", "/categories/MLA1055", true},
		{"/categories/*", "/categories/MLA1055/attributes", false},
		{"/categories/**", "/categories/MLA1055/attributes", true},
		{"/categories/**", "/categories", true},
		{"/categories/*", "/categories/", true},
		{"/categories/*", "/categories", false},
		{"/categories/*", "/categoriesX/1", false},
		{"/sites", "/sites", true},
		{"/sites", "/sites/MLA", false},
		{"/sites/*/categories", "/sites/MLA/categories", true},
		{"/sites/*/categories", "/sites/MLA/categories/x", false},
		{"/sites/*/categories", "/sites/categories", false},
		{"/a/*/b/*/c", "/a/1/b/2/c", true},
		{"/a/*/b/*/c", "/a/1/c/2/b", false},
		{"/**", "/anything/at/all", true},
		{"/x*x", "/x", false},
	}
	for _, tt := range tests {
		r := newRule(RuleConfig{ID: "r", Paths: []string{tt.pattern}})
		if got := r.matches([]byte(tt.path)); got != tt.want {
			t.Errorf("pattern %q on %q = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}
