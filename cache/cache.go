// Package cache is meliproxy's response cache: opt-in by path rules, stored in ristretto (cost =
// bytes), with coalesced misses and stale copies served while the upstream fails.
//
// The proxy hands each request to Cache.Serve with a Fetcher that performs the upstream exchange.
// Serve answers from memory (HIT), or fetches once per key however many clients ask at the same
// time (MISS), or serves an expired copy when the upstream fails (STALE), or just fetches (BYPASS)
// when no rule applies. See docs/cache.md for what is never stored and why.
package cache

import (
	"bytes"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/valyala/fasthttp"
)

// Fetcher performs the upstream exchange for req: it fills resp (hop-by-hop fields already
// removed) or returns an error (timeout, connection refused...). It may rewrite req's headers;
// the cache reads the client's headers before calling it. It must be bounded in time: coalesced
// requests wait for it (see Serve).
type Fetcher func(req *fasthttp.Request, resp *fasthttp.Response) error

// Result says how Serve answered; its String is the X-Cache value.
type Result uint8

// Serve results.
const (
	Bypass Result = iota // no rule applies (or the request/cache state forbids caching): fetched, not stored
	Hit                  // answered from a fresh entry
	Miss                 // fetched from the upstream (or handed the coalesced leader's answer)
	Stale                // the upstream failed; an expired entry within its stale window was served
)

var resultNames = [...]string{"BYPASS", "HIT", "MISS", "STALE"}

// String returns the X-Cache header value for r.
func (r Result) String() string { return resultNames[r] }

const headerXCache = "X-Cache"

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("cache: closed (Update after Close)")

// errLeaderAborted is handed to coalesced waiters when the leader's fetch panicked.
var errLeaderAborted = errors.New("cache: coalesced upstream fetch aborted")

// Cache is a response cache. It is safe for concurrent use and must not be copied. A nil *Cache,
// or one whose Config has no rules, bypasses every request.
type Cache struct {
	state atomic.Pointer[state] // swapped whole by Update; Serve loads it once
	seed  maphash.Seed
	pool  sync.Pool // *scratch
	gen   atomic.Uint64
	m     counters

	// callsMu guards calls: the in-flight leader fetch per key hash.
	callsMu sync.Mutex
	calls   map[uint64]*call

	// mu serialises Update and Close.
	mu     sync.Mutex
	closed bool
}

// state is one immutable configuration with the store it serves from.
type state struct {
	rules    []rule
	maxEntry int64
	store    *ristretto.Cache[uint64, *entry] // nil until some configuration has rules
}

// scratch is per-request working memory, pooled so a hit allocates nothing.
type scratch struct {
	key     []byte
	baseLen int // key[:baseLen] is the base key, without the variant part
	params  []param
	variant []byte
	hdr     fasthttp.RequestHeader // the client's headers, before fetch rewrites them
	fields  requestFields          // what match read of the request
}

// call is one in-flight leader fetch. Waiters read its fields only after done is closed.
type call struct {
	key     []byte // the key coalesced on (collision check)
	done    chan struct{}
	waiters int // guarded by Cache.callsMu

	result  Result
	err     error
	entry   *entry   // what waiters copy: the stored entry, a stale one, or a snapshot; nil = fetch yourself
	vary    []string // the response varied on these: waiters compare their variant with variant
	variant []byte
}

// New returns a Cache for cfg, which it validates. With no rules it holds no memory and starts no
// goroutine; Update can add rules later. Call Close when done.
func New(cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{seed: maphash.MakeSeed(), calls: make(map[uint64]*call)}
	c.pool.New = func() any { return &scratch{key: make([]byte, 0, 256)} }
	st, err := c.newState(cfg, nil)
	if err != nil {
		return nil, err
	}
	c.state.Store(st)
	return c, nil
}

// Update swaps in cfg's rules atomically: requests already in Serve finish under the old rules.
// Entries stay; new TTLs apply to new entries. A changed MaxBytes resizes the same ristretto in
// place (UpdateMaxCost); its admission counters stay sized for the MaxBytes given first, so a big
// increase is best followed by a restart. Removing every rule turns the cache off and drops all
// entries.
func (c *Cache) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	old := c.state.Load()
	st, err := c.newState(cfg, old.store)
	if err != nil {
		return err
	}
	c.state.Store(st)
	if len(st.rules) == 0 && len(old.rules) > 0 {
		c.Purge("")
	}
	return nil
}

// Close drops every entry and stops ristretto's goroutines. Call it only once the server has
// stopped calling Serve (after shutdown drained): ristretto panics on a Set racing its Close.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	st := c.state.Swap(&state{})
	if st.store != nil {
		st.store.Close()
	}
}

// Wait blocks until every store issued so far has been applied (or dropped) by ristretto, whose
// Set is asynchronous. For tests: production code never needs it.
func (c *Cache) Wait() {
	if st := c.state.Load(); st.store != nil {
		st.store.Wait()
	}
}

func (c *Cache) newState(cfg Config, store *ristretto.Cache[uint64, *entry]) (*state, error) {
	d := cfg.withDefaults()
	st := &state{maxEntry: d.MaxEntryBytes, store: store}
	for _, rc := range d.Rules {
		st.rules = append(st.rules, newRule(rc))
	}
	switch {
	case store == nil && len(st.rules) > 0:
		var err error
		if st.store, err = c.newStore(d.MaxBytes); err != nil {
			return nil, err
		}
	case store != nil && store.MaxCost() != d.MaxBytes:
		store.UpdateMaxCost(d.MaxBytes)
	}
	return st, nil
}

// newStore builds the ristretto cache. Keys are our maphash of the full key bytes (K = uint64,
// so ristretto hashes nothing and allocates nothing on Get); a collision is caught by comparing
// the entry's key bytes.
func (c *Cache) newStore(maxBytes int64) (*ristretto.Cache[uint64, *entry], error) {
	// ristretto advises ~10 admission counters per item held when full; assume ~4 KiB per entry.
	counters := min(max(maxBytes/4096*10, 10_000), 10_000_000)
	return ristretto.NewCache(&ristretto.Config[uint64, *entry]{
		NumCounters: counters,
		MaxCost:     maxBytes,
		BufferItems: 64,
		KeyToHash:   func(k uint64) (uint64, uint64) { return k, 0 },
		OnEvict:     func(*ristretto.Item[*entry]) { c.m.evictions.Add(1) },
		OnReject:    func(*ristretto.Item[*entry]) { c.m.rejections.Add(1) },
		OnExit:      c.onExit,
	})
}

// onExit runs once for every value that leaves ristretto (evicted, expired, rejected, replaced,
// deleted): with the successful Sets it keeps the entries and bytes gauges exact.
func (c *Cache) onExit(e *entry) {
	if e != nil {
		c.m.entries.Add(-1)
		c.m.bytes.Add(-e.cost)
	}
}

func (c *Cache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// get returns the entry stored under key, or nil; h is key's hash.
func (st *state) get(h uint64, key []byte) *entry {
	e, ok := st.store.Get(h)
	if !ok || !bytes.Equal(e.key, key) {
		return nil
	}
	return e
}

// set offers e to ristretto, which may drop it (full buffers, TinyLFU admission).
func (c *Cache) set(st *state, e *entry, ttl time.Duration) {
	if st.store.SetWithTTL(c.hash(e.key), e, e.cost, ttl) {
		c.m.entries.Add(1)
		c.m.bytes.Add(e.cost)
	}
}

// match returns the rule under which req may use the cache, or nil for a bypass: only GET and
// HEAD without a body (the key does not cover a body), on a path some rule matches, without
// credentials unless that rule allows them, and not asking for a part or a precondition the
// cache does not evaluate. It also returns the fields it read.
func (st *state) match(req *fasthttp.Request) (*rule, requestFields) {
	h := &req.Header
	if !h.IsGet() && !h.IsHead() {
		return nil, requestFields{}
	}
	// A parsed request without a body reads -2 (no length announced); -1 is chunked.
	if n := h.ContentLength(); n > 0 || n == -1 {
		return nil, requestFields{}
	}
	path := req.URI().Path()
	for i := range st.rules {
		r := &st.rules[i]
		if !r.matches(path) {
			continue
		}
		f := scanRequest(h)
		if f.partial || (f.credentials && !r.allowAuth) {
			return nil, f
		}
		return r, f
	}
	return nil, requestFields{}
}

// requestFields is what the cache needs of a request's fields, read once.
type requestFields struct {
	// credentials: Authorization or Cookie with a value.
	credentials bool
	// partial: Range, If-Range, If-Match or If-Unmodified-Since. Their answers (206, 412) are for
	// this request alone: never stored, and never to be handed to coalesced requests that asked
	// for the whole resource.
	partial bool
	// The preconditions the cache evaluates itself (conditional.go), nil when absent. They point
	// into the request's header: valid until it is modified.
	ifNoneMatch, ifModifiedSince []byte
}

// scanRequest reads h's fields for requestFields. Without a Cookie it reads them in one pass:
// 53-70 ns/op on a typical 5-field request against 285-463 for a Peek per name (each copies and
// normalises the name; BenchmarkScanRequest, -cpu 1). With a Cookie it peeks: h.All would parse
// the cookies, and fasthttp then forwards them re-serialised instead of byte for byte.
func scanRequest(h *fasthttp.RequestHeader) requestFields {
	var f requestFields
	if len(h.Peek(fasthttp.HeaderCookie)) > 0 {
		for _, name := range []string{fasthttp.HeaderRange, fasthttp.HeaderIfRange, fasthttp.HeaderIfMatch, fasthttp.HeaderIfUnmodifiedSince} {
			f.partial = f.partial || h.Peek(name) != nil
		}
		f.credentials = true
		f.ifNoneMatch, f.ifModifiedSince = h.Peek(fasthttp.HeaderIfNoneMatch), h.Peek(fasthttp.HeaderIfModifiedSince)
		return f
	}
	for k, v := range h.All() {
		switch len(k) {
		case len(fasthttp.HeaderRange):
			f.partial = f.partial || bytes.EqualFold(k, []byte(fasthttp.HeaderRange))
		case len(fasthttp.HeaderIfMatch): // and If-Range, the same length
			f.partial = f.partial || bytes.EqualFold(k, []byte(fasthttp.HeaderIfMatch)) || bytes.EqualFold(k, []byte(fasthttp.HeaderIfRange))
		case len(fasthttp.HeaderAuthorization): // and If-None-Match, the same length
			switch {
			case bytes.EqualFold(k, []byte(fasthttp.HeaderAuthorization)):
				f.credentials = f.credentials || len(v) > 0
			case bytes.EqualFold(k, []byte(fasthttp.HeaderIfNoneMatch)) && f.ifNoneMatch == nil:
				f.ifNoneMatch = v
			}
		case len(fasthttp.HeaderIfModifiedSince):
			if bytes.EqualFold(k, []byte(fasthttp.HeaderIfModifiedSince)) && f.ifModifiedSince == nil {
				f.ifModifiedSince = v
			}
		case len(fasthttp.HeaderIfUnmodifiedSince):
			f.partial = f.partial || bytes.EqualFold(k, []byte(fasthttp.HeaderIfUnmodifiedSince))
		}
	}
	return f
}

// Purge removes the entries whose path starts with prefix ("" = all) and returns how many
// responses it removed. It scans ristretto's own map rather than keeping a second index: exact,
// bounded by the cache itself, O(entries) per call, which suits an admin action. Fetches in
// flight when Purge runs do not store what they fetched.
func (c *Cache) Purge(prefix string) int {
	if c == nil {
		return 0
	}
	c.gen.Add(1)
	st := c.state.Load()
	if st.store == nil {
		return 0
	}
	var hs []uint64
	n := 0
	st.store.IterValues(func(e *entry) bool {
		if bytes.HasPrefix(keyPath(e.key), []byte(prefix)) {
			hs = append(hs, c.hash(e.key))
			if e.vary == nil {
				n++
			}
		}
		return false
	})
	for _, h := range hs {
		st.store.Del(h)
	}
	return n
}
