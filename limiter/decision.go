package limiter

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// MaxReported is the number of matched rules a Decision keeps inline for
// headers, and the number of shadow-limited rule ids it reports. Rules beyond
// it are still enforced, charged and refunded (their state spills into a slice
// that a pooled Decision keeps, so steady state stays allocation-free); they
// are only left out of the RateLimit headers and of Shadowed.
const MaxReported = 8

// Header names in fasthttp's canonical form, so WriteHeaders can use
// SetCanonical: SetBytesV normalises the name on every call (~15% of a
// Check + WriteHeaders in BenchmarkCheckShippedRules).
var (
	hdrPolicy     = []byte("Ratelimit-Policy")
	hdrRateLimit  = []byte("Ratelimit")
	hdrRetryAfter = []byte(fasthttp.HeaderRetryAfter)
)

// Verdict is the outcome of Limiter.Check.
type Verdict uint8

const (
	// Allow: every enforcing rule admitted the request (or none matched).
	Allow Verdict = iota
	// Limit: an enforcing rule rejected the request; answer 429.
	Limit
	// Deny: the client is on a deny list; answer 403.
	Deny
	// Exempt: the client is on the exempt list; no rule was evaluated.
	Exempt
)

var verdictNames = [...]string{"allow", "limit", "deny", "exempt"}

// String returns "allow", "limit", "deny" or "exempt".
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Decision is the outcome of Limiter.Check for one request, with what is
// needed to write headers and a body. It is meant to be reused: the proxy
// keeps one in its pooled per-request state; Check resets it first, and Reset
// clears it while keeping its buffers. A Decision is not safe for concurrent
// use and must not be copied after first use (copies share buffers).
type Decision struct {
	// Verdict is the outcome.
	Verdict Verdict
	// Rule is the id of the rejecting rule when Verdict is Limit. It is the
	// compiled rule's own string: no allocation, valid forever.
	Rule string
	// RetryAfter is, when Verdict is Limit, how long until the same request
	// would be admitted by the rejecting rule.
	RetryAfter time.Duration

	headers bool  // RateLimit fields on allowed responses
	now     int64 // the Check's clock, unix ns
	n       int   // matched rules recorded, inline + extra
	states  [MaxReported]ruleState
	extra   []ruleState
	limited ruleState // the rejecting rule, when Verdict is Limit
	nShadow int
	shadow  [MaxReported]string
	buf     []byte // header values and keys are built here
}

// ruleState is what Check learned about one matched rule. Remaining tokens
// and reset time are derived from tat only when headers are written: the
// division is a measurable part of Check, and many responses never need it.
type ruleState struct {
	r       *rule
	s       *slot
	h       uint64
	tat     int64 // the key's TAT after this request (or as found, if rejected)
	inc     int64 // ns of emission time charged to s (a cluster share: inc × nodes)
	e       *hotEntry
	leased  bool // charged to e's lease, not to s
	charged bool
}

// undo gives back what the request took for st.
func (st *ruleState) undo() {
	if st.e != nil {
		st.e.undo(st)
		return
	}
	st.s.refund(st.h, st.inc)
}

// reset returns the ns until st's bucket is full again, at now.
func (st *ruleState) reset(now int64) int64 { return max(st.tat-now, 0) }

// remaining returns the whole tokens left in st's bucket at now.
func (st *ruleState) remaining(now int64) int64 {
	return (st.r.tau - st.reset(now)) / st.r.interval
}

// Reset clears d for reuse, keeping its buffers. Only the counters and
// exported fields are cleared: the recorded states past n are never read, and
// zeroing the whole ~600-byte struct per request showed up at 10% of Check.
func (d *Decision) Reset() {
	d.Verdict, d.Rule, d.RetryAfter = Allow, "", 0
	d.headers, d.n, d.nShadow = false, 0, 0
	d.extra = d.extra[:0]
}

// Rejected reports whether the request must not be forwarded (Limit or Deny).
func (d *Decision) Rejected() bool { return d.Verdict == Limit || d.Verdict == Deny }

// Status returns the HTTP status for a rejected request (429 or 403), or 0
// when the request passes.
func (d *Decision) Status() int {
	switch d.Verdict {
	case Limit:
		return fasthttp.StatusTooManyRequests
	case Deny:
		return fasthttp.StatusForbidden
	}
	return 0
}

// Shadowed returns the ids of shadow rules that would have limited the
// request (at most MaxReported; all are counted in metrics). The proxy logs
// them. The slice is valid until d is reset or reused.
func (d *Decision) Shadowed() []string { return d.shadow[:d.nShadow] }

func (d *Decision) record(st ruleState) {
	if d.n < MaxReported {
		d.states[d.n] = st
	} else {
		d.extra = append(d.extra, st)
	}
	d.n++
}

func (d *Decision) state(i int) *ruleState {
	if i < MaxReported {
		return &d.states[i]
	}
	return &d.extra[i-MaxReported]
}

// refund returns the tokens this request took from every recorded rule.
func (d *Decision) refund() {
	for i := 0; i < d.n; i++ {
		if st := d.state(i); st.charged {
			st.undo()
			st.charged = false
			st.tat -= st.inc
		}
	}
}

// WriteHeaders sets RateLimit-Policy and RateLimit
// (draft-ietf-httpapi-ratelimit-headers, structured-field lists) on h, and
// Retry-After (whole seconds, rounded up) when limited.
//
// A limited response lists only the rejecting rule, with t equal to
// Retry-After. An allowed response lists every matched enforcing rule (up to
// MaxReported), unless headers are disabled in the Config; shadow rules never
// appear. q and w are the rule's rate (count per window seconds), r the
// tokens left (which may exceed q when burst > count), t the seconds until the
// bucket is full again. No key value (IP, API key) is ever emitted: there is
// no pk parameter. Denied and exempt requests get nothing. WriteHeaders
// allocates nothing once d's buffer has grown.
func (d *Decision) WriteHeaders(h *fasthttp.ResponseHeader) {
	switch {
	case d.Verdict == Limit:
		d.writeFields(h, &d.limited, 1)
		d.buf = strconv.AppendInt(d.buf[:0], ceilSeconds(int64(d.RetryAfter)), 10)
		h.SetCanonical(hdrRetryAfter, d.buf)
	case d.Verdict == Allow && d.headers:
		d.writeFields(h, nil, min(d.n, MaxReported))
	}
}

// writeFields writes both fields for only (if set) or for states[:n].
func (d *Decision) writeFields(h *fasthttp.ResponseHeader, only *ruleState, n int) {
	pick := func(i int) *ruleState {
		if only != nil {
			return only
		}
		return &d.states[i]
	}
	b := d.buf[:0]
	for i := 0; i < n; i++ {
		if st := pick(i); !st.r.shadow {
			b = appendSep(b)
			b = append(b, st.r.policy...)
		}
	}
	if len(b) == 0 {
		return
	}
	h.SetCanonical(hdrPolicy, b)
	b = b[:0]
	for i := 0; i < n; i++ {
		st := pick(i)
		if st.r.shadow {
			continue
		}
		t := st.reset(d.now)
		if only != nil {
			t = int64(d.RetryAfter)
		}
		b = appendSep(b)
		b = append(b, '"')
		b = append(b, st.r.id...)
		b = append(b, `";r=`...)
		b = strconv.AppendInt(b, max(st.remaining(d.now), 0), 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, ceilSeconds(t), 10)
	}
	h.SetCanonical(hdrRateLimit, b)
	d.buf = b
}

func appendSep(b []byte) []byte {
	if len(b) > 0 {
		b = append(b, ", "...)
	}
	return b
}

// AppendBody appends the JSON body for a rejected request to dst:
//
//	{"error":"rate limited","rule":"items-ip","status":429,"retry_after":42}
//	{"error":"forbidden","status":403}
//
// It appends nothing when the request passes. Rule ids need no JSON escaping
// (see RuleConfig.ID).
func (d *Decision) AppendBody(dst []byte) []byte {
	switch d.Verdict {
	case Limit:
		dst = append(dst, `{"error":"rate limited","rule":"`...)
		dst = append(dst, d.Rule...)
		dst = append(dst, `","status":429,"retry_after":`...)
		dst = strconv.AppendInt(dst, ceilSeconds(int64(d.RetryAfter)), 10)
		return append(dst, '}')
	case Deny:
		return append(dst, `{"error":"forbidden","status":403}`...)
	}
	return dst
}

// ceilSeconds rounds ns up to whole seconds (RFC 9110 Retry-After is an
// integer; rounding down would invite a retry that is rejected again).
func ceilSeconds(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	return (ns + int64(time.Second) - 1) / int64(time.Second)
}
