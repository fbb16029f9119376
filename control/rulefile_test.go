package control

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/meliproxy/meliproxy/limiter"
)

// fullRule sets every RuleConfig field, by reflection, so that a field the limiter adds later is
// covered (the test fails if encodeRules cannot write its type).
func fullRule(t *testing.T, id string) limiter.RuleConfig {
	t.Helper()
	r := limiter.RuleConfig{
		ID: id, Paths: []string{"/items/*", "/a b/**"}, Methods: []string{"GET", "POST"},
		CIDRs: []string{"10.0.0.0/8"}, Headers: map[string]string{"X-Api-Key": "*", "X-Other": `a"b\c`},
		Query: map[string]string{"q": "x*"}, UserAgents: []string{"curl/*", "Mozilla \"5\"\t*"},
		Key: []string{"ip", "header:X-Api-Key"}, Rate: "30/10s", Burst: 40, Action: "shadow", Cost: 2, Scope: "cluster", Fail: "closed",
	}
	v := reflect.ValueOf(r)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("fullRule leaves %s unset: add it here", v.Type().Field(i).Name)
		}
	}
	return r
}

func TestEncodeRulesRoundTrip(t *testing.T) {
	t.Parallel()
	rules := []limiter.RuleConfig{fullRule(t, "full"), {ID: "min", Rate: "1/s"}, {ID: "ünï", Rate: "1/s", Paths: []string{"/é/\x01"}}}
	rules[2].ID = "uni" // ids are ASCII; paths need not be
	data, err := encodeRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := limiter.LoadRulesFile(path)
	if err != nil {
		t.Fatalf("written file does not load: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, rules) {
		t.Errorf("round trip:\n got %+v\nwant %+v\nfile:\n%s", got, rules, data)
	}
	if strings.Contains(string(data), "burst = 0") || strings.Contains(string(data), `action = ""`) {
		t.Errorf("zero values written:\n%s", data)
	}
}

func TestRuleJSONRoundTrip(t *testing.T) {
	t.Parallel()
	r := fullRule(t, "full")
	b, err := json.Marshal(ruleJSON(r))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"user_agents"`) {
		t.Errorf("JSON does not use TOML keys: %s", b)
	}
	got, err := parseRule(b, "")
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("parseRule(ruleJSON(r)) = %+v, %v; want %+v", got, err, r)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "real.toml")
	link := filepath.Join(dir, "link.toml")
	if err := os.WriteFile(real, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.toml", link); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(real); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left behind: %v", entries)
	}
	if err := writeFileAtomic(filepath.Join(dir, "no", "such", "dir.toml"), nil); err == nil {
		t.Error("write into a missing folder succeeded")
	}
}

// FuzzRuleRoundTrip: any JSON body the API accepts as a valid rule is written to a file that
// limiter.LoadRulesFile reads back as exactly that rule (TOML quoting of untrusted strings).
func FuzzRuleRoundTrip(f *testing.F) {
	f.Add(`{"id":"a","rate":"1/s","paths":["/x\"y\\z"],"headers":{"X-\u0001":"\u007f"}}`)
	f.Add(`{"id":"a","rate":"10/m","user_agents":["é\n\t"],"query":{"":"*"}}`)
	f.Add(`{"id":"a","rate":"1/s","burst":3,"cost":2,"action":"shadow","key":["ip/24"]}`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		r, err := parseRule(json.RawMessage(body), "")
		if err != nil {
			return
		}
		if (&limiter.Config{Rules: []limiter.RuleConfig{r}}).Validate() != nil {
			return
		}
		data, err := encodeRules([]limiter.RuleConfig{r})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "rules.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := limiter.LoadRulesFile(path)
		if err != nil {
			t.Fatalf("valid rule %+v written as unreadable TOML: %v\n%s", r, err, data)
		}
		if len(got) != 1 || !reflect.DeepEqual(ruleJSON(got[0]), ruleJSON(r)) {
			t.Fatalf("round trip: got %+v, want %+v\n%s", got, r, data)
		}
	})
}
