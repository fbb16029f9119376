package cache

import (
	"time"

	"github.com/meliproxy/meliproxy/limiter/glob"
)

// rule is a validated RuleConfig with its patterns compiled. Immutable once built.
type rule struct {
	id          string
	globs       []glob.Pattern
	ttl         time.Duration
	notFoundTTL time.Duration
	stale       time.Duration
	allowAuth   bool
}

func newRule(rc RuleConfig) rule {
	rc = rc.withDefaults()
	r := rule{id: rc.ID, ttl: rc.TTL, notFoundTTL: rc.NotFoundTTL, stale: rc.Stale, allowAuth: rc.AllowAuthorized}
	for _, p := range rc.Paths {
		g, err := glob.Path(p) // validated by Config.Validate
		if err != nil {
			panic("BUG: cache rule path not validated: " + err.Error())
		}
		r.globs = append(r.globs, g)
	}
	return r
}

// matches reports whether any of r's patterns matches path.
func (r *rule) matches(path []byte) bool {
	for i := range r.globs {
		if r.globs[i].Match(path) {
			return true
		}
	}
	return false
}
