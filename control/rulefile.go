package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/meliproxy/meliproxy/limiter"
)

// The rules file and the API both name rule fields by their TOML keys (limiter.RuleConfig's toml
// tags), read by reflection: a field the limiter adds later is carried through without a change
// here. (limiter.RuleConfig has no json tags, and encoding/json would call user_agents UserAgents.)

// ruleFields lists RuleConfig's fields in declaration order with their TOML keys.
var ruleFields = func() []ruleField {
	t := reflect.TypeFor[limiter.RuleConfig]()
	var out []ruleField
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if key != "" && key != "-" {
			out = append(out, ruleField{key: key, index: i})
		}
	}
	return out
}()

type ruleField struct {
	key   string
	index int
}

func ruleFieldKeys() string {
	keys := make([]string, len(ruleFields))
	for i, f := range ruleFields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

// ruleJSON returns r as a JSON object keyed by TOML keys, zero values left out.
func ruleJSON(r limiter.RuleConfig) map[string]any {
	v := reflect.ValueOf(r)
	out := make(map[string]any, len(ruleFields))
	for _, f := range ruleFields {
		if fv := v.Field(f.index); !fv.IsZero() {
			out[f.key] = fv.Interface()
		}
	}
	return out
}

// parseRule decodes a JSON object keyed by TOML keys into a RuleConfig. Unknown keys and wrong
// types are errors naming the field (prefixed with at, e.g. "rules[2]."). It does not validate
// values: limiter.Config.Validate does.
func parseRule(raw json.RawMessage, at string) (limiter.RuleConfig, error) {
	var r limiter.RuleConfig
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return r, badRequest(strings.TrimSuffix(at, "."), "%swant a JSON object with keys %s", at, ruleFieldKeys())
	}
	v := reflect.ValueOf(&r).Elem()
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same first error every time
	for _, k := range keys {
		i := slices.IndexFunc(ruleFields, func(f ruleField) bool { return f.key == k })
		if i < 0 {
			return r, badRequest(at+k, "%s%s: unknown field; valid fields are %s", at, k, ruleFieldKeys())
		}
		fv := v.Field(ruleFields[i].index)
		if err := json.Unmarshal(obj[k], fv.Addr().Interface()); err != nil {
			return r, badRequest(at+k, "%s%s: want %s: %v", at, k, fv.Type(), err)
		}
	}
	return r, nil
}

// encodeRules writes rules as a TOML file of [[rules]] tables, fields in declaration order, zero
// values left out, so that limiter.LoadRulesFile reads back exactly rules.
func encodeRules(rules []limiter.RuleConfig) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# meliproxy rate-limit rules (see docs/rules.md), named by limits.rules_file.\n")
	b.WriteString("# Written by the admin API: edits through it rewrite this file and drop comments.\n")
	for _, r := range rules {
		b.WriteString("\n[[rules]]\n")
		v := reflect.ValueOf(r)
		for _, f := range ruleFields {
			fv := v.Field(f.index)
			if fv.IsZero() {
				continue
			}
			b.WriteString(f.key)
			b.WriteString(" = ")
			if err := appendTOMLValue(&b, fv); err != nil {
				return nil, fmt.Errorf("rule %q: %s: %w", r.ID, f.key, err)
			}
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// appendTOMLValue writes a string, integer, bool, list of strings or map of strings as TOML.
func appendTOMLValue(b *bytes.Buffer, v reflect.Value) error {
	switch v.Kind() {
	case reflect.String:
		b.WriteString(tomlQuote(v.String()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Bool:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Slice:
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := appendTOMLValue(b, v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("BUG: map key type %s", v.Type().Key())
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" " + tomlQuote(k.String()) + " = ")
			if err := appendTOMLValue(b, v.MapIndex(k)); err != nil {
				return err
			}
		}
		b.WriteString(" }")
	default:
		return fmt.Errorf("BUG: cannot write %s as TOML", v.Type())
	}
	return nil
}

// tomlQuote returns s as a TOML basic string: quotes, backslashes and control characters escaped,
// everything else literal UTF-8 (TOML 1.0 §String). Invalid UTF-8 becomes U+FFFD, which TOML
// requires anyway.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeFileAtomic replaces path with data so that a reader (or a crash) sees either the old bytes
// or the new ones, never a mix: a temporary file in the same folder (rename is atomic only within
// one file system), fsync, rename over the target, fsync of the folder so the rename itself is
// durable. A symlinked path is resolved first so the link is kept and its target replaced. The
// file keeps its permission bits.
func writeFileAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
