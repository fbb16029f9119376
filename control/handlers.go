package control

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/limiter"
)

// denyView is one deny-list entry as the API shows it.
type denyView struct {
	CIDR    string     `json:"cidr"`
	Source  string     `json:"source"` // "config" (limits.deny) or "api" (run time, not persisted)
	Expires *time.Time `json:"expires,omitempty"`
	Reason  string     `json:"reason,omitempty"`
}

func (c *Control) listDeny(ctx *fasthttp.RequestCtx) {
	out := []denyView{}
	for _, d := range c.o.Limiter.Config().Deny {
		out = append(out, denyView{CIDR: d, Source: "config"})
	}
	for _, e := range c.o.Limiter.DenyList() {
		out = append(out, runtimeDeny(e))
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"deny": out})
}

func runtimeDeny(e limiter.DenyEntry) denyView {
	v := denyView{CIDR: e.Prefix.String(), Source: "api", Reason: e.Reason}
	if !e.Expires.IsZero() {
		t := e.Expires.UTC()
		v.Expires = &t
	}
	return v
}

// addDeny denies a network at run time: {"cidr": "203.0.113.0/24", "ttl": "1h" | "expires":
// "2030-01-02T15:04:05Z", "reason": "..."}. A bare address means just that address. Entries live
// until they expire, are removed, or the process restarts (persistent ones go in limits.deny).
func (c *Control) addDeny(ctx *fasthttp.RequestCtx) {
	var body struct {
		CIDR    string     `json:"cidr"`
		TTL     string     `json:"ttl"`
		Expires *time.Time `json:"expires"`
		Reason  string     `json:"reason"`
	}
	if err := decodeJSON(ctx, &body); err != nil {
		writeErr(ctx, err)
		return
	}
	prefix, err := parseCIDR(body.CIDR)
	if err != nil {
		writeErr(ctx, err)
		return
	}
	now := c.o.Clock()
	var expires time.Time
	switch {
	case body.TTL != "" && body.Expires != nil:
		writeErr(ctx, badRequest("ttl", `give "ttl" or "expires", not both`))
		return
	case body.TTL != "":
		d, err := time.ParseDuration(body.TTL)
		if err != nil || d <= 0 {
			writeErr(ctx, badRequest("ttl", `ttl %q: want a positive duration such as "30m" or "24h"`, body.TTL))
			return
		}
		expires = now.Add(d)
	case body.Expires != nil:
		if !body.Expires.After(now) {
			writeErr(ctx, badRequest("expires", "expires %s is in the past", body.Expires.Format(time.RFC3339)))
			return
		}
		expires = *body.Expires
	}
	if len(body.Reason) > 256 {
		writeErr(ctx, badRequest("reason", "reason: at most 256 bytes"))
		return
	}
	var old any
	if i := slices.IndexFunc(c.o.Limiter.DenyList(), func(e limiter.DenyEntry) bool { return e.Prefix == prefix }); i >= 0 {
		old = runtimeDeny(c.o.Limiter.DenyList()[i])
	}
	if err := c.o.Limiter.AddDeny(prefix, expires, body.Reason); err != nil {
		writeErr(ctx, badRequest("cidr", "%v", err))
		return
	}
	v := runtimeDeny(limiter.DenyEntry{Prefix: prefix, Expires: expires, Reason: body.Reason})
	c.audit(ctx, "deny.add", v.CIDR, old, v)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"deny": v})
}

// removeDeny removes a run-time entry: DELETE /api/v1/deny?cidr=203.0.113.0/24.
func (c *Control) removeDeny(ctx *fasthttp.RequestCtx) {
	prefix, err := parseCIDR(string(ctx.QueryArgs().Peek("cidr")))
	if err != nil {
		writeErr(ctx, err)
		return
	}
	var old any
	if i := slices.IndexFunc(c.o.Limiter.DenyList(), func(e limiter.DenyEntry) bool { return e.Prefix == prefix }); i >= 0 {
		old = runtimeDeny(c.o.Limiter.DenyList()[i])
	}
	if !c.o.Limiter.RemoveDeny(prefix) {
		msg := fmt.Sprintf("no run-time deny entry %s", prefix)
		if slices.Contains(c.o.Limiter.Config().Deny, prefix.String()) {
			writeError(ctx, fasthttp.StatusConflict, "cidr", msg+": it is in limits.deny of the config file; remove it there and reload")
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "cidr", msg)
		return
	}
	c.audit(ctx, "deny.remove", prefix.String(), old, nil)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"removed": prefix.String()})
}

// parseCIDR accepts "203.0.113.0/24" or a bare address; host bits are cleared.
func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, badRequest("cidr", `cidr: required, e.g. "203.0.113.0/24" or "2001:db8::/48"`)
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, badRequest("cidr", "cidr %q: %v", s, err)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, badRequest("cidr", "cidr %q: %v", s, err)
	}
	return p.Masked(), nil
}

// keyParts reads a key's parts from the query: ?ip=203.0.113.7&path=/items/MLA1 (names as the
// rule's key lists them, e.g. "ip/24" or "header:X-Api-Key").
func keyParts(ctx *fasthttp.RequestCtx) map[string]string {
	parts := make(map[string]string)
	for k, v := range ctx.QueryArgs().All() {
		parts[string(k)] = string(v)
	}
	return parts
}

func limiterError(err error) error {
	if errors.Is(err, limiter.ErrUnknownRule) {
		return &apiError{Status: fasthttp.StatusNotFound, Field: "rule", Msg: err.Error()}
	}
	return badRequest("key", "%v", err)
}

// keyState answers a key's bucket: tokens remaining and the time until it is full again.
func (c *Control) keyState(ctx *fasthttp.RequestCtx) {
	rule := ctx.UserValue("rule").(string)
	parts := keyParts(ctx)
	remaining, reset, err := c.o.Limiter.KeyState(c.o.Clock(), rule, parts)
	if err != nil {
		writeErr(ctx, limiterError(err))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"rule": rule, "key": parts, "remaining": remaining, "reset_seconds": reset.Seconds(),
	})
}

// resetKey refills a key's bucket: the client is unblocked at once.
func (c *Control) resetKey(ctx *fasthttp.RequestCtx) {
	rule := ctx.UserValue("rule").(string)
	parts := keyParts(ctx)
	remaining, _, err := c.o.Limiter.KeyState(c.o.Clock(), rule, parts)
	if err == nil {
		err = c.o.Limiter.ResetKey(rule, parts)
	}
	if err != nil {
		writeErr(ctx, limiterError(err))
		return
	}
	c.audit(ctx, "limits.reset", rule, map[string]any{"key": parts, "remaining": remaining}, "full")
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"rule": rule, "key": parts, "reset": true})
}

// purgeCache removes cached responses: {"prefix": "/categories/"} or {"all": true}.
func (c *Control) purgeCache(ctx *fasthttp.RequestCtx) {
	var body struct {
		Prefix string `json:"prefix"`
		All    bool   `json:"all"`
	}
	if err := decodeJSON(ctx, &body); err != nil {
		writeErr(ctx, err)
		return
	}
	switch {
	case body.All && body.Prefix != "":
		writeErr(ctx, badRequest("all", `give "prefix" or "all": true, not both`))
		return
	case !body.All && !strings.HasPrefix(body.Prefix, "/"):
		writeErr(ctx, badRequest("prefix", `prefix %q: want a path prefix starting with "/" (or "all": true)`, body.Prefix))
		return
	}
	n := c.o.Cache.Purge(body.Prefix)
	target := body.Prefix
	if body.All {
		target = "*"
	}
	c.audit(ctx, "cache.purge", target, nil, map[string]int{"purged": n})
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"prefix": body.Prefix, "purged": n})
}

// showConfig answers the running configuration with secrets redacted.
func (c *Control) showConfig(ctx *fasthttp.RequestCtx) {
	snap := c.o.Snapshot()
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"path":                   snap.Path,
		"version":                snap.Version,
		"loaded_at":              snap.LoadedAt.UTC(),
		"last_reload_successful": snap.LastReloadError == "",
		"last_reload_error":      snap.LastReloadError,
		"rules_file":             snap.RulesPath,
		"rule_sources":           snap.RuleSources,
		"config":                 redact(snap.Effective),
	})
}

// reload re-reads the files, as SIGHUP does: 200 with what changed, or 422 with every problem
// (nothing changed).
func (c *Control) reload(ctx *fasthttp.RequestCtx) {
	before := c.o.Snapshot().Version
	res, err := c.o.Reload()
	if err != nil {
		writeErr(ctx, &apiError{Status: fasthttp.StatusUnprocessableEntity, Errors: errorLines(err),
			Msg: "reload refused; the old configuration keeps serving"})
		return
	}
	if after := c.o.Snapshot().Version; after != before {
		c.audit(ctx, "reload", "config", before, after)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"reload": res})
}

// secretKeys are key names (lower case; the key itself or its last "_" word) whose values are
// never shown: "token", "redis_password", but not "tokens" (a list of tables, redacted inside).
var secretKeys = []string{"token", "password", "secret"}

// redact returns a copy of v with values under secret-looking keys replaced, at any depth. A
// token_env value (the variable's name, not the secret) is kept.
func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			if isSecretKey(k) {
				out[k] = "<redacted>"
				continue
			}
			out[k] = redact(val)
		}
		return out
	case []map[string]any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = redact(val)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = redact(val)
		}
		return out
	}
	return v
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if k == s || strings.HasSuffix(k, "_"+s) {
			return true
		}
	}
	return false
}
