package glob

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPathGlob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pat string
		yes []string
		no  []string
		bad bool
	}{
		{pat: "/items", yes: []string{"/items"}, no: []string{"/items/", "/items/x", "/item", "/itemsx"}},
		{pat: "/items/*", yes: []string{"/items/MLA1", "/items/"}, no: []string{"/items", "/items/MLA1/pictures", "/itemsX/1"}},
		{pat: "/items/MLA*", yes: []string{"/items/MLA1", "/items/MLA"}, no: []string{"/items/MLB1", "/items/MLA1/x"}},
		{pat: "/*/pictures", yes: []string{"/items/pictures", "//pictures"}, no: []string{"/a/b/pictures", "/pictures"}},
		{pat: "/a*b*c", yes: []string{"/abc", "/aXbYc", "/abbc", "/acbc"}, no: []string{"/ab", "/a/b/c", "/abcd"}},
		{pat: "/categories/**", yes: []string{"/categories", "/categories/", "/categories/MLA5725", "/categories/MLA5725/attributes"}, no: []string{"/categoriesX", "/categorie", "/"}},
		{pat: "/**", yes: []string{"/", "/x", "/x/y"}, no: []string{"x"}},
		{pat: "**", yes: []string{"", "/", "/x/y", "anything"}},
		{pat: "/users/*/items/**", yes: []string{"/users/1/items", "/users/1/items/2/3"}, no: []string{"/users/1/2/items"}},
		{pat: "items", bad: true},
		{pat: "/a/**/b", bad: true},
		{pat: "/a**", bad: true},
		{pat: "", bad: true},
	}
	for _, tt := range tests {
		g, err := Path(tt.pat)
		if tt.bad != (err != nil) {
			t.Errorf("Path(%q) error = %v, want bad=%v", tt.pat, err, tt.bad)
			continue
		}
		for _, s := range tt.yes {
			if !g.Match([]byte(s)) {
				t.Errorf("%q should match %q", tt.pat, s)
			}
		}
		for _, s := range tt.no {
			if g.Match([]byte(s)) {
				t.Errorf("%q should not match %q", tt.pat, s)
			}
		}
	}
}

func TestValueGlob(t *testing.T) {
	t.Parallel()
	match := func(pat, s string) bool {
		g, err := Value(pat)
		if err != nil {
			t.Fatalf("Value(%q): %v", pat, err)
		}
		return g.Match([]byte(s))
	}
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "Mozilla/5.0", true},
		{"curl/*", "curl/8.1", true},
		{"curl/*", "xcurl/8.1", false},
		{"*bot*", "Googlebot/2.1", true},
		{"*bot*", "Mozilla", false},
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"a*c", "a/b/c", true},
	} {
		if got := match(c.pat, c.s); got != c.want {
			t.Errorf("value glob %q on %q = %v, want %v", c.pat, c.s, got, c.want)
		}
	}
	if _, err := Value(""); err == nil {
		t.Error("empty value glob accepted")
	}
}

// globRegexp is the reference semantics the fuzz target checks against.
func globRegexp(pat string, path bool) *regexp.Regexp {
	if path && pat == "**" {
		return regexp.MustCompile(`(?s)^.*$`)
	}
	tail := ""
	if path && strings.HasSuffix(pat, "/**") {
		pat, tail = strings.TrimSuffix(pat, "/**"), `(/.*)?`
	}
	star := `.*`
	if path {
		star = `[^/]*`
	}
	parts := strings.Split(pat, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)^` + strings.Join(parts, star) + tail + `$`)
}

func FuzzGlob(f *testing.F) {
	f.Add("/items/*", "/items/MLA1", true)
	f.Add("/categories/**", "/categories/a/b", true)
	f.Add("/a*b*c", "/aXbYcc", true)
	f.Add("*bot*", "Googlebot", false)
	f.Add("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaa", false)
	f.Fuzz(func(t *testing.T, pat, s string, path bool) {
		var g Pattern
		var err error
		if path {
			g, err = Path(pat)
		} else {
			g, err = Value(pat)
		}
		if err != nil {
			return
		}
		got := g.Match([]byte(s))
		if !utf8.ValidString(pat) || !utf8.ValidString(s) {
			return // the regexp oracle needs UTF-8; match itself is byte-wise
		}
		if want := globRegexp(pat, path).MatchString(s); got != want {
			t.Fatalf("glob %q (path=%v) on %q = %v, reference says %v", pat, path, s, got, want)
		}
		if !strings.Contains(pat, "*") && !g.Match([]byte(pat)) {
			t.Fatalf("literal %q does not match itself", pat)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	g, _ := Path("/users/*/items/MLA*/**")
	s := []byte("/users/12345/items/MLA1234567/pictures/1")
	b.ReportAllocs()
	for b.Loop() {
		if !g.Match(s) {
			b.Fatal("no match")
		}
	}
}
