package cache

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func keyOf(path, query string, auth bool, headers ...string) []byte {
	var req fasthttp.Request
	req.URI().SetPath(path)
	req.URI().SetQueryString(query)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	k, _ := appendBaseKey(nil, nil, &req, auth)
	return k
}

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		a, b  []byte
		equal bool
	}{
		{"query order", keyOf("/x", "a=1&b=2", false), keyOf("/x", "b=2&a=1", false), true},
		{"three params", keyOf("/x", "c=3&a=1&b=2", false), keyOf("/x", "b=2&c=3&a=1", false), true},
		{"empty members", keyOf("/x", "a=1&&b=2&", false), keyOf("/x", "b=2&a=1", false), true},
		{"repeated name keeps order", keyOf("/x", "a=1&a=2", false), keyOf("/x", "a=2&a=1", false), false},
		{"repeated name among others", keyOf("/x", "a=1&z=0&a=2", false), keyOf("/x", "z=0&a=1&a=2", false), true},
		{"values not decoded", keyOf("/x", "a=%41", false), keyOf("/x", "a=A", false), false},
		{"decoded ? in path is not a query", keyOf("/a?b", "", false), keyOf("/a", "b", false), false},
		{"path differs", keyOf("/x", "", false), keyOf("/y", "", false), false},
		{"no query vs empty", keyOf("/x", "", false), keyOf("/x", "&", false), true},
		{"auth values part of key", keyOf("/x", "", true, "Authorization: Bearer a"), keyOf("/x", "", true, "Authorization: Bearer b"), false},
		{"cookie part of key", keyOf("/x", "", true, "Cookie: s=1"), keyOf("/x", "", true, "Cookie: s=2"), false},
		{"no credentials vs empty", keyOf("/x", "", true), keyOf("/x", "", true, "Authorization: Bearer a"), false},
		{"auth ignored when not allowed", keyOf("/x", "", false, "Authorization: Bearer a"), keyOf("/x", "", false), true},
	}
	for _, tt := range tests {
		if got := bytes.Equal(tt.a, tt.b); got != tt.equal {
			t.Errorf("%s: keys equal = %v, want %v\n%q\n%q", tt.name, got, tt.equal, tt.a, tt.b)
		}
	}
}

func TestKeyPath(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/", "/categories/MLA1055", "/" + strings.Repeat("x", 300)} {
		if got := keyPath(keyOf(p, "a=1", true)); string(got) != p {
			t.Errorf("keyPath(key of %q) = %q", p, got)
		}
	}
	if got := keyPath([]byte{classGet, 0xff}); got != nil {
		t.Errorf("keyPath(truncated) = %q, want nil", got)
	}
}

func TestVariantKey(t *testing.T) {
	t.Parallel()
	variant := func(headers ...string) []byte {
		var h fasthttp.RequestHeader
		for _, l := range headers {
			k, v, _ := strings.Cut(l, ": ")
			h.Add(k, v)
		}
		return appendVariant(nil, &h, []string{"accept-encoding", "origin"})
	}
	if bytes.Equal(variant("Accept-Encoding: gzip"), variant("Accept-Encoding: br")) {
		t.Error("different Accept-Encoding gave one variant")
	}
	if bytes.Equal(variant("Accept-Encoding: gzip"), variant("Accept-Encoding: gzip", "Accept-Encoding: br")) {
		t.Error("a second Accept-Encoding line was ignored: a poisoning vector")
	}
	if bytes.Equal(variant("Accept-Encoding: gzip"), variant("Origin: gzip")) {
		t.Error("values moved between headers gave one variant")
	}
	if !bytes.Equal(variant("accept-encoding: gzip", "Origin: o"), variant("Origin: o", "Accept-Encoding: gzip")) {
		t.Error("header order or case changed the variant")
	}
}

// FuzzKey checks that the key builder never panics, that any reordering of query members that
// keeps same-named members in their relative order gives the same key, and that the path can be
// read back from the key.
func FuzzKey(f *testing.F) {
	f.Add("/categories/MLA1055", "b=2&a=1&c")
	f.Add("/a%3Fb", "&&=&==&a=%26")
	f.Add("/", "a=1&a=2&b=&=x")
	f.Fuzz(func(t *testing.T, path, query string) {
		var req fasthttp.Request
		req.URI().SetPath(path)
		req.URI().SetQueryString(query)
		k1, params := appendBaseKey(nil, nil, &req, true)
		if got, want := keyPath(k1), req.URI().Path(); !bytes.Equal(got, want) {
			t.Fatalf("keyPath = %q, want %q", got, want)
		}
		members := strings.Split(string(req.URI().QueryString()), "&")
		slices.Reverse(members)
		name := func(m string) string { n, _, _ := strings.Cut(m, "="); return n }
		slices.SortStableFunc(members, func(a, b string) int { return strings.Compare(name(b), name(a)) })
		// Reversed, then stably sorted by name descending: same-named members are now in reverse
		// order, so restore their original order before comparing.
		permuted := restoreSameNameOrder(members, strings.Split(string(req.URI().QueryString()), "&"), name)
		req.URI().SetQueryString(strings.Join(permuted, "&"))
		k2, _ := appendBaseKey(nil, params, &req, true)
		if !bytes.Equal(k1, k2) {
			t.Fatalf("query %q and permutation %q gave different keys", query, strings.Join(permuted, "&"))
		}
	})
}

// restoreSameNameOrder rewrites perm so that members sharing a name appear in the order they had
// in orig, keeping the positions perm gave to that name.
func restoreSameNameOrder(perm, orig []string, name func(string) string) []string {
	byName := map[string][]string{}
	for _, m := range orig {
		byName[name(m)] = append(byName[name(m)], m)
	}
	out := make([]string, len(perm))
	for i, m := range perm {
		n := name(m)
		out[i] = byName[n][0]
		byName[n] = byName[n][1:]
	}
	return out
}
