package cache

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
)

// Serve answers req into resp: from a fresh entry (Hit), or by calling fetch and storing what may
// be stored (Miss), or from an expired entry within its stale window when fetch fails or returns a
// 5xx (Stale), or by calling fetch alone when no rule applies (Bypass). It sets X-Cache (and Age
// on answers from memory) unless the cache has no rules, in which case resp is untouched.
//
// Concurrent misses for one key make one fetch: the first caller (the leader) fetches, the others
// wait for it and get a copy of its answer, stored or not, or its error. A response meant for one
// client (Set-Cookie, Cache-Control: private) is not handed on: each waiter then fetches for
// itself. Waiters wait as long as the leader's fetch takes, so fetch must carry the upstream
// timeout.
//
// A HEAD is answered from, and fetched as, a GET (the body is dropped with resp.SkipBody), so it
// can fill the cache. With no stale copy, a fetch error is returned untouched (Result Miss) for
// the caller to map to 502/504. now is the request's clock reading: TTLs and Age use it.
//
// On a Hit resp's body is the entry's own memory (shared, read-only): replace or append to it,
// never modify it in place. A Hit allocates nothing.
func (c *Cache) Serve(now time.Time, req *fasthttp.Request, resp *fasthttp.Response, fetch Fetcher) (Result, error) {
	if c == nil {
		return Bypass, fetch(req, resp)
	}
	st := c.state.Load()
	if len(st.rules) == 0 {
		c.m.bypass.Add(1)
		return Bypass, fetch(req, resp)
	}
	r, fields := st.match(req)
	if r == nil {
		return c.bypass(req, resp, fetch)
	}
	s := c.pool.Get().(*scratch)
	defer c.pool.Put(s)
	s.fields = fields
	s.key, s.params = appendBaseKey(s.key[:0], s.params, req, r.allowAuth)
	s.baseLen = len(s.key)
	h := c.hash(s.key)
	e := st.get(h, s.key)
	if e != nil && e.vary != nil {
		s.key = appendVariant(s.key, &req.Header, e.vary)
		h = c.hash(s.key)
		e = st.get(h, s.key)
	}
	if e != nil && now.UnixNano() < e.expires {
		e.writeTo(resp, now, Hit)
		resp.SkipBody = req.Header.IsHead()
		if e.notModified(fields.ifNoneMatch, fields.ifModifiedSince) {
			writeNotModified(resp)
		}
		c.m.hit.Add(1)
		return Hit, nil
	}
	res, err := c.miss(now, st, r, s, h, e, req, resp, fetch)
	c.m.count(res)
	return res, err
}

// bypass fetches without touching the cache.
func (c *Cache) bypass(req *fasthttp.Request, resp *fasthttp.Response, fetch Fetcher) (Result, error) {
	c.m.bypass.Add(1)
	err := fetch(req, resp)
	if err == nil {
		resp.Header.SetCanonical(xCacheName, resultValues[Bypass])
	}
	return Bypass, err
}

// miss joins the in-flight fetch for s.key, or leads one. stale is the expired entry found for
// the key, if any. h is the hash of s.key.
func (c *Cache) miss(now time.Time, st *state, r *rule, s *scratch, h uint64, stale *entry,
	req *fasthttp.Request, resp *fasthttp.Response, fetch Fetcher) (Result, error) {
	c.callsMu.Lock()
	cl, found := c.calls[h]
	if found && bytes.Equal(cl.key, s.key) {
		cl.waiters++
		c.callsMu.Unlock()
		return c.follow(now, st, r, s, cl, req, resp, fetch)
	}
	cl = &call{key: append([]byte(nil), s.key...), done: make(chan struct{})}
	if !found { // on a hash collision with another key in flight, fetch without coalescing
		c.calls[h] = cl
	}
	c.callsMu.Unlock()
	return c.lead(now, st, r, s, h, cl, !found, stale, req, resp, fetch)
}

// follow waits for the leader cl and copies its answer, or fetches alone when the answer is not
// for this client.
func (c *Cache) follow(now time.Time, st *state, r *rule, s *scratch, cl *call,
	req *fasthttp.Request, resp *fasthttp.Response, fetch Fetcher) (Result, error) {
	<-cl.done
	c.m.coalesced.Add(1)
	if cl.entry == nil && cl.err != nil {
		return Miss, cl.err
	}
	if cl.entry != nil && len(cl.vary) > 0 {
		s.variant = appendVariant(append(s.variant[:0], s.key[:s.baseLen]...), &req.Header, cl.vary)
		if !bytes.Equal(s.variant, cl.variant) {
			cl = nil
		}
	}
	if cl == nil || cl.entry == nil { // not shareable, or a different variant
		s.key = s.key[:s.baseLen]
		return c.lead(now, st, r, s, 0, &call{done: make(chan struct{})}, false, nil, req, resp, fetch)
	}
	cl.entry.writeTo(resp, now, cl.result)
	resp.SkipBody = req.Header.IsHead()
	if cl.entry.notModified(s.fields.ifNoneMatch, s.fields.ifModifiedSince) {
		writeNotModified(resp)
	}
	return cl.result, nil
}

// lead fetches for cl, stores what may be stored, and publishes the outcome to the waiters.
// registered says cl is in c.calls under h.
func (c *Cache) lead(now time.Time, st *state, r *rule, s *scratch, h uint64, cl *call, registered bool,
	stale *entry, req *fasthttp.Request, resp *fasthttp.Response, fetch Fetcher) (Result, error) {
	published := false
	defer func() {
		if !published { // fetch panicked: release the waiters with an error
			cl.err = errLeaderAborted
			c.publish(h, cl, registered)
		}
	}()
	gen := c.gen.Load()
	req.Header.CopyTo(&s.hdr) // the client's headers: fetch may rewrite req's
	stripConditional(&req.Header)
	head := req.Header.IsHead()
	if head {
		req.Header.SetMethod(fasthttp.MethodGet)
	}
	resp.SkipBody = false
	err := fetch(req, resp)
	if head {
		req.Header.SetMethod(fasthttp.MethodHead)
	}

	cl.result = Miss
	switch {
	case (err != nil || resp.StatusCode() >= 500) && stale != nil && now.UnixNano() < stale.staleUntil:
		stale.writeTo(resp, now, Stale)
		cl.result, cl.entry, err = Stale, stale, nil
	case err != nil:
		cl.err = err
	default:
		cl.entry = c.store(now, st, r, s, cl, resp, gen)
		resp.Header.SetCanonical(xCacheName, resultValues[Miss])
	}
	if n := c.publishPrepare(h, cl, registered); n > 0 && cl.entry == nil && cl.err == nil {
		c.snapshot(s, cl, resp)
	}
	close(cl.done)
	published = true
	resp.SkipBody = head
	// The client's own preconditions, from the copy (fetch rewrote req's header), against what it
	// is answered with: the entry stored or the stale copy, else the upstream's answer itself.
	if err == nil {
		inm, ims := s.hdr.Peek(fasthttp.HeaderIfNoneMatch), s.hdr.Peek(fasthttp.HeaderIfModifiedSince)
		if (cl.entry != nil && cl.entry.notModified(inm, ims)) || (cl.entry == nil && respNotModified(resp, inm, ims)) {
			writeNotModified(resp)
		}
	}
	return cl.result, err
}

// store stores resp if its rule and headers allow it and returns the stored entry, or nil; for a
// varied response it tells cl which variant it is. gen is the purge generation read before the
// fetch: a purge since then wins.
func (c *Cache) store(now time.Time, st *state, r *rule, s *scratch, cl *call, resp *fasthttp.Response, gen uint64) *entry {
	f, v := r.assess(resp, now)
	if v != storable {
		return nil
	}
	base := s.key[:s.baseLen]
	key := base
	if len(f.vary) > 0 {
		s.variant = appendVariant(append(s.variant[:0], base...), &s.hdr, f.vary)
		key = s.variant
	}
	if int64(len(resp.Body())) > st.maxEntry {
		return nil // too big whatever its header: not worth copying
	}
	e := newEntry(key, resp, true)
	if e.size > st.maxEntry {
		return nil
	}
	if len(f.vary) > 0 {
		cl.vary, cl.variant = f.vary, e.key
	}
	n := now.UnixNano()
	e.stored = n - int64(f.age)
	e.expires = n + int64(f.ttl)
	e.staleUntil = e.expires
	keep := f.ttl
	if !f.noStale {
		e.staleUntil += int64(r.stale)
		keep += r.stale
	}
	if c.gen.Load() != gen {
		return e // purged meanwhile: hand it to the waiters, keep nothing
	}
	if len(f.vary) > 0 {
		c.set(st, newMarker(base, f.vary), keep)
	}
	c.set(st, e, keep)
	c.m.stores.Add(1)
	return e
}

// snapshot copies a response that was not stored for the waiters, if it may be shared.
func (c *Cache) snapshot(s *scratch, cl *call, resp *fasthttp.Response) {
	if !shareable(resp) {
		return
	}
	vary, star := parseVary(resp.Header.PeekAll(fasthttp.HeaderVary))
	if star {
		return
	}
	if len(vary) > 0 {
		cl.vary = vary
		cl.variant = appendVariant(append([]byte(nil), s.key[:s.baseLen]...), &s.hdr, vary)
	}
	cl.entry = newEntry(cl.key, resp, false)
}

// publishPrepare unregisters cl so no new waiter joins, and returns how many joined.
func (c *Cache) publishPrepare(h uint64, cl *call, registered bool) int {
	if !registered {
		return 0
	}
	c.callsMu.Lock()
	delete(c.calls, h)
	n := cl.waiters
	c.callsMu.Unlock()
	return n
}

// publish unregisters cl and releases its waiters.
func (c *Cache) publish(h uint64, cl *call, registered bool) {
	c.publishPrepare(h, cl, registered)
	close(cl.done)
}
