package control

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/limiter"
)

// listRules answers every running rule, defaults filled in, with the file it came from and
// whether the API may edit it.
func (c *Control) listRules(ctx *fasthttp.RequestCtx) {
	snap := c.o.Snapshot()
	rules := c.o.Limiter.Rules()
	out := make([]map[string]any, len(rules))
	for i, r := range rules {
		out[i] = ruleView(r, snap)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"version": snap.Version, "rules_file": snap.RulesPath, "rules": out,
	})
}

func (c *Control) getRule(ctx *fasthttp.RequestCtx) {
	id := ctx.UserValue("id").(string)
	i := slices.IndexFunc(c.o.Limiter.Rules(), func(r limiter.RuleConfig) bool { return r.ID == id })
	if i < 0 {
		writeError(ctx, fasthttp.StatusNotFound, "id", fmt.Sprintf("no rule %q: GET /api/v1/rules lists them", id))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, ruleView(c.o.Limiter.Rules()[i], c.o.Snapshot()))
}

func ruleView(r limiter.RuleConfig, snap Snapshot) map[string]any {
	m := ruleJSON(r)
	m["source"] = snap.RuleSources[r.ID]
	m["editable"] = snap.RulesPath != "" && snap.RuleSources[r.ID] == snap.RulesPath
	return m
}

// replaceRules replaces every rule of the rules file with the body's {"rules": [...]}, validated
// as a whole: either all apply or none. Rules written in the config file are not affected.
func (c *Control) replaceRules(ctx *fasthttp.RequestCtx) {
	var body struct {
		Rules []json.RawMessage `json:"rules"`
	}
	if err := decodeJSON(ctx, &body); err != nil {
		writeErr(ctx, err)
		return
	}
	if body.Rules == nil {
		writeErr(ctx, badRequest("rules", `missing "rules": want {"rules": [...]} ([] deletes every rules-file rule)`))
		return
	}
	next := make([]limiter.RuleConfig, 0, len(body.Rules))
	for i, raw := range body.Rules {
		r, err := parseRule(raw, fmt.Sprintf("rules[%d].", i))
		if err != nil {
			writeErr(ctx, err)
			return
		}
		next = append(next, r)
	}
	c.edit(ctx, "rules.replace", "*", func(cur []limiter.RuleConfig) ([]limiter.RuleConfig, any, error) {
		return next, rulesJSON(cur), nil
	}, func(next []limiter.RuleConfig) any { return map[string]any{"rules": rulesJSON(next)} })
}

// addRule appends one rule to the rules file.
func (c *Control) addRule(ctx *fasthttp.RequestCtx) {
	r, err := parseRule(ctx.PostBody(), "")
	if err != nil {
		writeErr(ctx, err)
		return
	}
	if r.ID == "" {
		writeErr(ctx, badRequest("id", "id: required"))
		return
	}
	c.edit(ctx, "rules.add", r.ID, func(cur []limiter.RuleConfig) ([]limiter.RuleConfig, any, error) {
		if slices.ContainsFunc(cur, func(x limiter.RuleConfig) bool { return x.ID == r.ID }) {
			return nil, nil, &apiError{Status: fasthttp.StatusConflict, Field: "id",
				Msg: fmt.Sprintf("rule %q exists: PATCH /api/v1/rules/%s or delete it first", r.ID, r.ID)}
		}
		return append(cur, r), nil, nil
	}, func([]limiter.RuleConfig) any { return map[string]any{"rule": ruleJSON(r)} })
}

// rulePatch is the body of PATCH /api/v1/rules/{id}: only the fields given change.
type rulePatch struct {
	Rate   *string `json:"rate"`
	Burst  *int    `json:"burst"`
	Action *string `json:"action"`
}

// check validates each given field on its own; the whole rule is validated after.
func (p *rulePatch) check() error {
	if p.Rate == nil && p.Burst == nil && p.Action == nil {
		return badRequest("", `nothing to change: give one or more of "rate", "burst", "action"`)
	}
	if p.Rate != nil {
		if _, err := limiter.ParseRate(*p.Rate); err != nil {
			return badRequest("rate", "%v", err) // ParseRate names the value
		}
	}
	if p.Burst != nil && *p.Burst < 0 {
		return badRequest("burst", "burst %d: want 0 (the rate's count) or more", *p.Burst)
	}
	if p.Action != nil && *p.Action != "enforce" && *p.Action != "shadow" {
		return badRequest("action", `action %q: want "enforce" or "shadow"`, *p.Action)
	}
	return nil
}

// patchRule changes one rules-file rule's rate, burst or action.
func (c *Control) patchRule(ctx *fasthttp.RequestCtx) {
	id := ctx.UserValue("id").(string)
	var p rulePatch
	if err := decodeJSON(ctx, &p); err != nil {
		writeErr(ctx, err)
		return
	}
	if err := p.check(); err != nil {
		writeErr(ctx, err)
		return
	}
	var updated limiter.RuleConfig
	c.edit(ctx, "rules.patch", id, func(cur []limiter.RuleConfig) ([]limiter.RuleConfig, any, error) {
		i := slices.IndexFunc(cur, func(r limiter.RuleConfig) bool { return r.ID == id })
		if i < 0 {
			return nil, nil, c.notInFile(id)
		}
		old := cur[i]
		r := &cur[i]
		if p.Rate != nil {
			r.Rate = *p.Rate
		}
		if p.Burst != nil {
			r.Burst = *p.Burst
		}
		if p.Action != nil {
			r.Action = *p.Action
		}
		updated = *r
		return cur, patchView(old), nil
	}, func([]limiter.RuleConfig) any { return map[string]any{"rule": ruleJSON(updated)} })
}

func patchView(r limiter.RuleConfig) map[string]any {
	return map[string]any{"rate": r.Rate, "burst": r.Burst, "action": r.Action}
}

// deleteRule removes one rule from the rules file.
func (c *Control) deleteRule(ctx *fasthttp.RequestCtx) {
	id := ctx.UserValue("id").(string)
	c.edit(ctx, "rules.delete", id, func(cur []limiter.RuleConfig) ([]limiter.RuleConfig, any, error) {
		i := slices.IndexFunc(cur, func(r limiter.RuleConfig) bool { return r.ID == id })
		if i < 0 {
			return nil, nil, c.notInFile(id)
		}
		return slices.Delete(cur, i, i+1), ruleJSON(cur[i]), nil
	}, func([]limiter.RuleConfig) any { return map[string]any{"deleted": id} })
}

// notInFile explains why a rule the rules file does not hold cannot be edited: it is written in
// the config file (409), or it does not exist (404).
func (c *Control) notInFile(id string) error {
	snap := c.o.Snapshot()
	if src, ok := snap.RuleSources[id]; ok && src != snap.RulesPath {
		return readOnly(id, src)
	}
	return &apiError{Status: fasthttp.StatusNotFound, Field: "id",
		Msg: fmt.Sprintf("no rule %q in %s: GET /api/v1/rules lists them", id, snap.RulesPath)}
}

func readOnly(id, src string) error {
	return &apiError{Status: fasthttp.StatusConflict, Field: "id",
		Msg: fmt.Sprintf("rule %q is defined in %s, which the API does not edit: change it there and reload, or move it to limits.rules_file", id, src)}
}

func rulesJSON(rules []limiter.RuleConfig) []map[string]any {
	out := make([]map[string]any, len(rules))
	for i, r := range rules {
		out[i] = ruleJSON(r)
	}
	return out
}

// edit applies one change to the rules file: read it, let mutate compute the new rules (and the
// audit's old value), validate them, write the file atomically, reload through the same path as
// SIGHUP. If the reload refuses, the previous bytes are written back (and reloaded, which is then
// a no-op) so file and running state agree, and the reload's errors are returned. view builds the
// success response from the rules written.
func (c *Control) edit(ctx *fasthttp.RequestCtx, action, target string,
	mutate func(cur []limiter.RuleConfig) ([]limiter.RuleConfig, any, error),
	view func(next []limiter.RuleConfig) any) {
	c.editMu.Lock()
	defer c.editMu.Unlock()
	snap := c.o.Snapshot()
	if snap.RulesPath == "" {
		writeErr(ctx, &apiError{Status: fasthttp.StatusConflict, Msg: fmt.Sprintf(
			"no rules file: the API edits only the file named by limits.rules_file; set it in %s (e.g. rules_file = \"rules.toml\"), move the rules there and reload", snap.Path)})
		return
	}
	prev, err := os.ReadFile(snap.RulesPath)
	if err != nil {
		writeErr(ctx, fmt.Errorf("read rules file: %w", err))
		return
	}
	cur, err := limiter.LoadRulesFile(snap.RulesPath)
	if err != nil {
		writeErr(ctx, &apiError{Status: fasthttp.StatusConflict,
			Msg: fmt.Sprintf("the rules file on disk is invalid, fix it first: %v", err)})
		return
	}
	next, old, err := mutate(cur)
	if err == nil {
		err = checkRules(next, snap)
	}
	if err != nil {
		writeErr(ctx, err)
		return
	}
	data, err := encodeRules(next)
	if err == nil {
		err = writeFileAtomic(snap.RulesPath, data)
	}
	if err != nil {
		writeErr(ctx, fmt.Errorf("write rules file %s: %w", snap.RulesPath, err))
		return
	}
	res, err := c.o.Reload()
	if err != nil {
		writeErr(ctx, c.restore(snap.RulesPath, prev, err))
		return
	}
	out := view(next)
	c.audit(ctx, action, target, old, out)
	body := map[string]any{"reload": res}
	if m, ok := out.(map[string]any); ok {
		for k, v := range m {
			body[k] = v
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, body)
}

// restore writes prev back after a refused reload and returns the refusal as a 422.
func (c *Control) restore(path string, prev []byte, reloadErr error) error {
	ae := &apiError{Status: fasthttp.StatusUnprocessableEntity, Errors: errorLines(reloadErr),
		Msg: "reload refused the edited files; the rules file was restored and the old configuration keeps serving"}
	if err := writeFileAtomic(path, prev); err != nil {
		c.o.Logger.Error("control: restore rules file after refused reload", "file", path, "error", err)
		ae.Errors = append(ae.Errors, fmt.Sprintf("restore %s: %v", path, err))
		return ae
	}
	if _, err := c.o.Reload(); err != nil {
		// The config file itself is broken on disk; the running configuration is still the old one.
		c.o.Logger.Warn("control: reload after restoring the rules file", "error", err)
	}
	return ae
}

// checkRules validates the rules file's rules as a whole before anything is written: each rule,
// duplicate ids, and ids already defined in the config file.
func checkRules(rules []limiter.RuleConfig, snap Snapshot) error {
	for _, r := range rules {
		if src, ok := snap.RuleSources[r.ID]; ok && src != snap.RulesPath {
			return readOnly(r.ID, src)
		}
	}
	err := (&limiter.Config{Rules: rules}).Validate()
	if err == nil {
		return nil
	}
	lines := errorLines(err)
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "limits.")
	}
	ae := &apiError{Status: fasthttp.StatusBadRequest, Errors: lines, Msg: "invalid rules: " + lines[0]}
	if len(lines) == 1 {
		ae.Errors = nil
	}
	return ae
}

// errorLines flattens errors.Join trees into one message per problem.
func errorLines(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, errorLines(e)...)
		}
		return out
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
