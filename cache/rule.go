package cache

import (
	"bytes"
	"strings"
	"time"
)

// rule is a validated RuleConfig with its patterns compiled. Immutable once built.
type rule struct {
	id          string
	globs       []glob
	ttl         time.Duration
	notFoundTTL time.Duration
	stale       time.Duration
	allowAuth   bool
}

func newRule(rc RuleConfig) rule {
	rc = rc.withDefaults()
	r := rule{id: rc.ID, ttl: rc.TTL, notFoundTTL: rc.NotFoundTTL, stale: rc.Stale, allowAuth: rc.AllowAuthorized}
	for _, p := range rc.Paths {
		r.globs = append(r.globs, compileGlob(p))
	}
	return r
}

// matches reports whether any of r's patterns matches path.
func (r *rule) matches(path []byte) bool {
	for i := range r.globs {
		if r.globs[i].match(path) {
			return true
		}
	}
	return false
}

// glob is a path pattern split at its '*' wildcards: parts[0] must be a prefix, the last part a
// suffix, and the parts between must appear in order. A pattern without '*' has one part and
// matches only itself. Parts are []byte so matching converts nothing and allocates nothing.
type glob struct {
	parts [][]byte
}

func compileGlob(pattern string) glob {
	var g glob
	for _, p := range strings.Split(pattern, "*") {
		g.parts = append(g.parts, []byte(p))
	}
	return g
}

func (g glob) match(s []byte) bool {
	n := len(g.parts)
	if n == 1 {
		return bytes.Equal(s, g.parts[0])
	}
	first, last := g.parts[0], g.parts[n-1]
	if len(s) < len(first)+len(last) || !bytes.HasPrefix(s, first) || !bytes.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, p := range g.parts[1 : n-1] {
		i := bytes.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
