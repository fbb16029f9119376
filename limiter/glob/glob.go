// Package glob matches request paths and header values against the patterns that limit and cache
// rules are written in, without allocating. The limiter and the cache share it so that a pattern
// means the same thing in both.
package glob

import (
	"bytes"
	"errors"
	"strings"
)

// Pattern is a compiled pattern. It is immutable and safe for concurrent use. Two flavours exist:
//
// Path globs (rule paths) work segment by segment, '/' being the separator:
//   - a literal segment matches itself ("/items" matches only "/items");
//   - '*' matches any run of bytes inside one segment, possibly empty
//     ("/items/*" matches "/items/MLA1", not "/items/MLA1/pictures";
//     "/items/MLA*" matches "/items/MLA1");
//   - a final "/**" matches the path itself and everything below it
//     ("/categories/**" matches "/categories", "/categories/MLA5725" and
//     "/categories/MLA5725/attributes"); "**" alone matches every path.
//
// "**" anywhere else is rejected at load: it would make matching ambiguous and
// backtracking-heavy for no use case we have.
//
// Value globs (header, query and user-agent values) treat the whole value as
// one segment: '*' matches any run of bytes, '/' included.
//
// There is no escaping and no '?' or character classes: a literal '*' cannot
// be matched. Matching allocates nothing and runs in O(len(pattern) ×
// len(input)) in the worst case, usually linear.
type Pattern struct {
	pat   string
	exact bool     // no wildcard: compare the whole string
	all   bool     // "**": everything matches
	segs  []string // path: pattern split on '/'; value: one segment
	tail  bool     // path pattern ended in "/**"
	path  bool
	lit   string // literal prefix up to the first '*': a cheap early reject
	shape shape  // a common form matched without walking segments
}

// shape names pattern forms worth a dedicated test; most rules are one of
// these, and the general walk costs ~3× more.
type shape uint8

const (
	general shape = iota
	lastSeg       // "/items/*": lit, then one segment without '/'
	subtree       // "/categories/**": lit itself, or lit + "/" + anything
)

var errDoubleStar = errors.New(`"**" is only allowed as the last segment ("/a/**")`)

// Path compiles a path pattern; it must start with '/' (or be "**").
func Path(p string) (Pattern, error) {
	g := Pattern{pat: p, path: true}
	if p == "**" {
		g.all = true
		return g, nil
	}
	if !strings.HasPrefix(p, "/") {
		return g, errors.New(`must start with "/" (or be "**")`)
	}
	body := p
	if strings.HasSuffix(p, "/**") {
		g.tail = true
		body = p[:len(p)-3]
	}
	if strings.Contains(body, "**") {
		return g, errDoubleStar
	}
	g.exact = !g.tail && !strings.Contains(body, "*")
	g.segs = strings.Split(body, "/")
	g.lit = body
	if i := strings.IndexByte(body, '*'); i >= 0 {
		g.lit = body[:i]
	}
	switch {
	case g.tail && g.lit == body:
		g.shape = subtree
	case !g.tail && g.lit+"*" == body && strings.HasSuffix(g.lit, "/"):
		g.shape = lastSeg
	}
	return g, nil
}

// Value compiles a header, query or user-agent value pattern.
func Value(p string) (Pattern, error) {
	if p == "" {
		return Pattern{}, errors.New(`empty pattern: use "*" to require presence`)
	}
	g := Pattern{pat: p, segs: []string{p}}
	g.exact = !strings.Contains(p, "*")
	g.all = strings.Trim(p, "*") == ""
	return g, nil
}

// String returns the pattern as written.
func (g *Pattern) String() string { return g.pat }

// Match reports whether s matches the pattern. s is only read.
func (g *Pattern) Match(s []byte) bool {
	switch {
	case g.all:
		return true
	case g.exact:
		return string(s) == g.pat
	case !g.path:
		return matchSeg(g.segs[0], s)
	case len(s) < len(g.lit) || string(s[:len(g.lit)]) != g.lit:
		return false
	case g.shape == lastSeg:
		return bytes.IndexByte(s[len(g.lit):], '/') < 0
	case g.shape == subtree:
		return len(s) == len(g.lit) || s[len(g.lit)] == '/'
	}
	for i, seg := range g.segs {
		if i > 0 {
			if len(s) == 0 || s[0] != '/' {
				return false
			}
			s = s[1:]
		}
		j := bytes.IndexByte(s, '/')
		if j < 0 {
			j = len(s)
		}
		if !matchSeg(seg, s[:j]) {
			return false
		}
		s = s[j:]
	}
	if g.tail {
		return len(s) == 0 || s[0] == '/'
	}
	return len(s) == 0
}

// matchSeg matches s against p where '*' is any run of bytes. It is the
// classic single-backtrack-point algorithm (as in path.Match): on a mismatch
// the last '*' absorbs one more byte. One backtrack point suffices because a
// later star can always absorb what an earlier star would have.
func matchSeg(p string, s []byte) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; {
			case c == '*' && px == len(p)-1:
				return true // a trailing star takes the rest
			case c == '*':
				starPx, starSx = px, sx+1
				px++
				continue
			case sx < len(s) && s[sx] == c:
				px++
				sx++
				continue
			}
		}
		if starPx >= 0 && starSx <= len(s) {
			px, sx = starPx+1, starSx
			starSx++
			continue
		}
		return false
	}
	return true
}
