package limiter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/limiter/glob"
)

// rule is a compiled RuleConfig. It is immutable once its rule set is
// published, except for the counters behind stats.
type rule struct {
	id       string
	cfg      RuleConfig // normalised copy, as Rules reports it
	ident    ruleIdent  // what decides whether a reload keeps the buckets
	shadow   bool
	methods  []string
	paths    []glob.Pattern
	uas      []glob.Pattern
	cidrs    prefixSet
	anyCIDR  bool // no cidrs configured
	headers  []cond
	query    []cond
	key      []keyPart
	rate     Rate
	interval int64  // ns per token
	inc      int64  // ns per request: cost × interval
	tau      int64  // ns of tolerance: burst × interval
	policy   []byte // `"id";q=N;w=S`, a RateLimit-Policy list member

	clustered bool     // scope = "cluster": decided by the Limiter's cluster, if started
	fail      failMode // what a cluster rule does while Redis is unreachable

	// Set by the Limiter when the rule set is installed.
	tag   uint64     // hash domain of this rule's keys; kept across reloads
	stats *ruleStats // counters, kept per id across reloads
}

// ruleIdent is the part of a rule that gives its buckets meaning. A reload
// that leaves it unchanged keeps the rule's buckets; Action and Cost are not
// part of it, so flipping shadow → enforce or adjusting a cost keeps counters.
type ruleIdent struct {
	cfg    RuleConfig
	v4, v6 int // resolved defaults of the "ip" key part
}

// ruleStats are a rule's counters. Plain atomics: striping them over cache
// lines (keyed by Decision address) measured 78 → 72 ns/op on the hot-key
// benchmark, within this shared machine's noise (p=0.38, n=8), so not kept.
type ruleStats struct {
	allowed, limited, shadowLimited atomic.Uint64
}

type cond struct {
	name string
	g    glob.Pattern
}

type partKind uint8

const (
	partIP partKind = iota + 1
	partPath
	partMethod
	partHeader
	partQuery
	partUserAgent
)

type keyPart struct {
	kind   partKind
	spec   string // as configured, e.g. "ip/24" or "header:X-Api-Key"
	name   string // header or query parameter name
	v4, v6 int    // prefix lengths for partIP
}

// compiled is a validated Config ready to serve.
type compiled struct {
	cfg     Config // with defaults applied
	rules   []*rule
	trusted prefixSet
	deny    prefixSet
	exempt  prefixSet
	headers bool
}

// compile validates c and builds its compiled form; error messages start with
// prefix ("limits." for config.toml, "<file>: " for a rules file).
func compile(c *Config, prefix string) (*compiled, error) {
	d := c.withDefaults()
	out := &compiled{cfg: d, headers: d.Headers == nil || *d.Headers}
	errs := d.checkScalars(prefix)
	for _, l := range []struct {
		key string
		in  []string
		set *prefixSet
	}{{"trusted_proxies", d.TrustedProxies, &out.trusted}, {"deny", d.Deny, &out.deny}, {"exempt", d.Exempt, &out.exempt}} {
		ps, perrs := parsePrefixes(prefix+l.key, l.in)
		errs = append(errs, perrs...)
		*l.set = newPrefixSet(ps)
	}
	seen := make(map[string]int)
	d.Rules = make([]RuleConfig, 0, len(c.Rules))
	for i, rc := range c.Rules {
		where := fmt.Sprintf("%srules[%d] (id %q)", prefix, i, rc.ID)
		if j, dup := seen[rc.ID]; dup && rc.ID != "" {
			errs = append(errs, fmt.Errorf("%s: id duplicates rules[%d]", where, j))
		}
		seen[rc.ID] = i
		r, rerrs := compileRule(rc, d.IPv4Prefix, d.IPv6Prefix)
		for _, e := range rerrs {
			errs = append(errs, fmt.Errorf("%s: %w", where, e))
		}
		if len(rerrs) == 0 {
			out.rules = append(out.rules, r)
			d.Rules = append(d.Rules, r.cfg)
		}
	}
	out.cfg = d
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// compileRule checks one rule, returning every problem (unprefixed).
func compileRule(rc RuleConfig, v4, v6 int) (*rule, []error) {
	rc = normRule(rc)
	r := &rule{id: rc.ID, cfg: rc, shadow: rc.Action == "shadow", methods: rc.Methods, anyCIDR: len(rc.CIDRs) == 0}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if err := checkID(rc.ID); err != nil {
		add(err)
	}
	for i, p := range rc.Paths {
		g, err := glob.Path(p)
		if err != nil {
			add(fmt.Errorf("paths[%d] %q: %w", i, p, err))
		}
		r.paths = append(r.paths, g)
	}
	for i, m := range rc.Methods {
		if m == "" || strings.ToUpper(m) != m || !isToken(m) {
			add(fmt.Errorf("methods[%d] %q: want an upper-case method such as GET", i, m))
		}
	}
	ps, perrs := parsePrefixes("cidrs", rc.CIDRs)
	errs = append(errs, perrs...)
	r.cidrs = newPrefixSet(ps)
	var cerrs []error
	r.headers, cerrs = compileConds("headers", rc.Headers, true)
	errs = append(errs, cerrs...)
	r.query, cerrs = compileConds("query", rc.Query, false)
	errs = append(errs, cerrs...)
	for i, p := range rc.UserAgents {
		g, err := glob.Value(p)
		if err != nil {
			add(fmt.Errorf("user_agents[%d] %q: %w", i, p, err))
		}
		r.uas = append(r.uas, g)
	}
	for i, s := range rc.Key {
		kp, err := parseKeyPart(s, v4, v6)
		if err != nil {
			add(fmt.Errorf("key[%d] %q: %w", i, s, err))
		}
		r.key = append(r.key, kp)
	}
	errs = append(errs, r.setRate()...)
	switch rc.Action {
	case "enforce", "shadow":
	default:
		add(fmt.Errorf("action %q: must be enforce or shadow", rc.Action))
	}
	switch rc.Scope {
	case "local", "cluster":
	default:
		add(fmt.Errorf("scope %q: must be local or cluster", rc.Scope))
	}
	r.clustered = rc.Scope == "cluster"
	var err error
	if r.fail, err = parseFail(rc.Fail); err != nil {
		add(err)
	} else if rc.Fail != "" && !r.clustered {
		add(fmt.Errorf("fail %q: only for scope = \"cluster\" rules", rc.Fail))
	}
	ident := r.cfg
	ident.Action, ident.Cost, ident.Fail = "", 0, ""
	r.ident = ruleIdent{cfg: ident, v4: v4, v6: v6}
	r.policy = fmt.Appendf(nil, "%q;q=%d;w=%d", rc.ID, r.rate.Count, int64(r.rate.Period.Seconds()))
	return r, errs
}

// setRate parses rate, burst and cost and derives the GCRA parameters.
func (r *rule) setRate() []error {
	rc := &r.cfg
	var errs []error
	rate, err := ParseRate(rc.Rate)
	if err != nil {
		return append(errs, err)
	}
	r.rate = rate
	if rc.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst %d: must be positive (0 = the rate's count)", rc.Burst))
	}
	if rc.Cost < 0 {
		errs = append(errs, fmt.Errorf("cost %d: must be positive (0 = 1)", rc.Cost))
	}
	if len(errs) > 0 {
		return errs
	}
	if rc.Burst == 0 {
		if rate.Count > math.MaxInt32 {
			return append(errs, fmt.Errorf("rate %q: count above %d needs an explicit burst", rc.Rate, math.MaxInt32))
		}
		rc.Burst = int(rate.Count)
	}
	if rc.Cost == 0 {
		rc.Cost = 1
	}
	if rc.Burst < rc.Cost {
		return append(errs, fmt.Errorf("burst %d is less than cost %d: no request could ever pass", rc.Burst, rc.Cost))
	}
	r.interval = rate.Interval()
	if int64(rc.Burst) > math.MaxInt64/4/r.interval {
		return append(errs, fmt.Errorf("burst %d: too large for rate %q (burst × interval overflows)", rc.Burst, rc.Rate))
	}
	r.inc = int64(rc.Cost) * r.interval
	r.tau = int64(rc.Burst) * r.interval
	return nil
}

// normRule fills defaults and turns empty collections into nil, so that two
// spellings of the same rule compare equal on reload.
func normRule(rc RuleConfig) RuleConfig {
	if rc.Action == "" {
		rc.Action = "enforce"
	}
	if rc.Scope == "" {
		rc.Scope = "local"
	}
	if rc.Scope == "cluster" && rc.Fail == "" {
		rc.Fail = "local"
	}
	rc.Paths = cloneOrNil(rc.Paths)
	rc.Methods = cloneOrNil(rc.Methods)
	rc.CIDRs = cloneOrNil(rc.CIDRs)
	rc.UserAgents = cloneOrNil(rc.UserAgents)
	rc.Key = cloneOrNil(rc.Key)
	rc.Headers = cloneMapOrNil(rc.Headers)
	rc.Query = cloneMapOrNil(rc.Query)
	return rc
}

func cloneOrNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

func cloneMapOrNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func sameIdent(a, b *rule) bool { return reflect.DeepEqual(a.ident, b.ident) }

func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("id: must be 1–64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			// The id goes verbatim into JSON bodies, header structured-field
			// strings and metric labels: this charset needs no escaping.
			return fmt.Errorf("id: character %q not allowed: use [A-Za-z0-9._-]", c)
		}
	}
	return nil
}

// compileConds compiles a name → value-glob map in name order (map order is
// random; a stable order keeps matching cost predictable).
func compileConds(key string, m map[string]string, header bool) ([]cond, []error) {
	var out []cond
	var errs []error
	for _, name := range sortedKeys(m) {
		v := m[name]
		if name == "" || header && !isToken(name) {
			errs = append(errs, fmt.Errorf("%s %q: invalid name", key, name))
			continue
		}
		g, err := glob.Value(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s %q: %w", key, name, v, err))
			continue
		}
		out = append(out, cond{name: name, g: g})
	}
	return out, errs
}

// parseKeyPart parses one entry of a rule's key list.
func parseKeyPart(s string, v4, v6 int) (keyPart, error) {
	kp := keyPart{spec: s}
	switch {
	case s == "path":
		kp.kind = partPath
	case s == "method":
		kp.kind = partMethod
	case s == "user_agent":
		kp.kind = partUserAgent
	case strings.HasPrefix(s, "header:"):
		kp.kind, kp.name = partHeader, s[len("header:"):]
		if !isToken(kp.name) {
			return kp, errors.New("want header:Name with a valid header name")
		}
	case strings.HasPrefix(s, "query:"):
		kp.kind, kp.name = partQuery, s[len("query:"):]
		if kp.name == "" {
			return kp, errors.New("want query:name")
		}
	case s == "ip" || strings.HasPrefix(s, "ip/"):
		kp.kind, kp.v4, kp.v6 = partIP, v4, v6
		return kp, parseIPPart(&kp, s)
	default:
		return kp, errors.New(`unknown key part: want ip, ip/N, ip/N/M, path, method, header:Name, query:name or user_agent`)
	}
	return kp, nil
}

// parseIPPart reads "ip/N" (IPv4 /N) or "ip/N/M" (IPv4 /N, IPv6 /M).
func parseIPPart(kp *keyPart, s string) error {
	if s == "ip" {
		return nil
	}
	v4s, v6s, two := cut(s[len("ip/"):], '/')
	n, err := strconv.Atoi(v4s)
	if err != nil || n < 0 || n > 32 || v4s[0] == '+' {
		return errors.New("IPv4 prefix must be 0..32 (ip/N or ip/N/M)")
	}
	kp.v4 = n
	if two {
		m, err := strconv.Atoi(v6s)
		if err != nil || m < 0 || m > 128 || v6s[0] == '+' {
			return errors.New("IPv6 prefix must be 0..128 (ip/N/M)")
		}
		kp.v6 = m
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (header names, methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// reqView holds the per-request values every rule reads, fetched once.
// All byte slices are borrowed from the request.
type reqView struct {
	req    *fasthttp.Request
	ip     netip.Addr
	path   []byte
	method []byte
}

// match reports whether the request satisfies every criterion of r. Cheap
// checks run first.
func (r *rule) match(v *reqView) bool {
	if len(r.methods) > 0 && !matchMethod(r.methods, v.method) {
		return false
	}
	if !r.anyCIDR && !r.cidrs.contains(v.ip) {
		return false
	}
	if len(r.paths) > 0 && !anyGlob(r.paths, v.path) {
		return false
	}
	for i := range r.headers {
		c := &r.headers[i]
		val := v.req.Header.Peek(c.name)
		if val == nil || !c.g.Match(val) {
			return false
		}
	}
	for i := range r.query {
		c := &r.query[i]
		val := v.req.URI().QueryArgs().Peek(c.name)
		if val == nil || !c.g.Match(val) {
			return false
		}
	}
	return len(r.uas) == 0 || anyGlob(r.uas, v.req.Header.UserAgent())
}

func matchMethod(ms []string, m []byte) bool {
	for _, x := range ms {
		if string(m) == x {
			return true
		}
	}
	return false
}

func anyGlob(gs []glob.Pattern, s []byte) bool {
	for i := range gs {
		if gs[i].Match(s) {
			return true
		}
	}
	return false
}

// appendKey appends the bytes identifying v's bucket in r: the rule's tag,
// then each part as presence byte, length and value. Lengths make the
// encoding injective ("a"+"bc" ≠ "ab"+"c"); the presence byte separates a
// missing header from an empty one. The bytes are hashed and discarded.
func (r *rule) appendKey(dst []byte, v *reqView) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.tag)
	for i := range r.key {
		p := &r.key[i]
		switch p.kind {
		case partIP:
			dst = appendIP(dst, v.ip, p.v4, p.v6)
		case partPath:
			dst = appendField(dst, v.path, true)
		case partMethod:
			dst = appendField(dst, v.method, true)
		case partHeader:
			val := v.req.Header.Peek(p.name)
			dst = appendField(dst, val, val != nil)
		case partQuery:
			val := v.req.URI().QueryArgs().Peek(p.name)
			dst = appendField(dst, val, val != nil)
		case partUserAgent:
			dst = appendField(dst, v.req.Header.UserAgent(), true)
		}
	}
	return dst
}

func appendField(dst, val []byte, present bool) []byte {
	if !present {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(val)))
	return append(dst, val...)
}

// appendIP appends a's network at the configured prefix length.
func appendIP(dst []byte, a netip.Addr, v4, v6 int) []byte {
	bits := v6
	if a.Is4() {
		bits = v4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return append(dst, 0) // invalid address: one shared "unknown" bucket
	}
	if a.Is4() {
		b := p.Addr().As4()
		return append(append(dst, 4, byte(bits)), b[:]...)
	}
	b := p.Addr().As16()
	return append(append(dst, 6, byte(bits)), b[:]...)
}
