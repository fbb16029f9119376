package limiter

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeScript is the global GCRA of one key, run atomically in Redis on
// Redis's clock (node clocks may disagree; TIME is the one clock all nodes
// share). Times are microseconds since 2023-11-14 so that doubles (Lua
// numbers) stay exact.
//
//	KEYS[1] the key's global TAT
//	ARGV    interval µs, tau µs, used, refund, want (tokens)
//
// used tokens were admitted on a local share before the key was hot: they are
// charged unconditionally (post-paid; the TAT may run past now+tau, a debt
// later grants pay back). refund tokens are unused leases given back. Then up
// to want tokens are granted (leased) if the bucket has them. It returns
// {granted, µs the TAT is ahead of now}. The key expires when its bucket is
// full again, so Redis holds only keys that carry information.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local iv, tau = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
tat = tat + (tonumber(ARGV[3]) - tonumber(ARGV[4])) * iv
if tat < now then tat = now end
local grant = math.floor((now + tau - tat) / iv + 1e-9)
local want = tonumber(ARGV[5])
if grant > want then grant = want end
if grant < 0 then grant = 0 end
tat = tat + grant * iv
local ahead = tat - now
if ahead > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(ahead / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
return {grant, math.floor(ahead)}
`)

// beatScript records this node's heartbeat in the membership sorted set
// (score: Redis time in ms), drops members older than the TTL and returns the
// live count.
//
//	KEYS[1] the membership set
//	ARGV    node id, TTL ms
var beatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
`)

// Announcements: a node tells the others which keys are hot on it (every
// announceEvery while it has demand for them), so that nodes where the same
// key is still within its share report their admissions too. Otherwise a key
// hot on one node and lukewarm on the others would be admitted at the global
// rate plus the others' shares.
const (
	announceEvery  = time.Second
	announceWindow = 5 * announceEvery / 2 // read back this far (covers clock skew)
)

// syncItem is one hot key's part of a sync round.
type syncItem struct {
	e                  *hotEntry // nil: released, only its refund is sent
	rkey               string
	interval, tau      int64  // ns
	used, refund, want int64  // tokens
	announce           string // member for the hot set, "" for none
	cmd                *redis.Cmd
}

func (it *syncItem) needed() bool {
	return it.used != 0 || it.refund != 0 || it.want != 0 || it.announce != ""
}

// collect takes every hot key's counters for one round at now. Keys without
// demand for a second (and no fresh announcement from another node), and
// every key when release is set, are freed: their unused leases are returned
// in the batch.
func (c *cluster) collect(release bool, now time.Time) []syncItem {
	var batch []syncItem
	idleTicks := max(int(time.Second/c.cfg.SyncInterval), 2)
	for gi := range c.hot.groups {
		g := &c.hot.groups[gi]
		if g.empty() {
			continue
		}
		g.mu.Lock()
		for i := range g.keys {
			if g.keys[i].Load() == 0 {
				continue
			}
			it, keep := c.collectEntry(&g.ents[i], release, idleTicks, now)
			if !keep {
				c.hot.free(g, i)
			}
			if it.needed() {
				batch = append(batch, it)
			}
		}
		g.mu.Unlock()
	}
	return batch
}

// collectEntry reads and resets one entry's counters; the caller holds its
// group's lock. The lease is topped up to what the local share could not
// serve in the last interval, plus one request (at most the burst); a lease
// above that is given back, so nodes within their share hold no tokens the
// busy ones need.
func (c *cluster) collectEntry(e *hotEntry, release bool, idleTicks int, now time.Time) (it syncItem, keep bool) {
	r := e.rule
	if e.rkey == "" {
		e.rkey = c.key("rl:" + r.id + ":" + strconv.FormatUint(e.stable, 16))
	}
	it = syncItem{e: e, rkey: e.rkey, interval: r.interval, tau: r.tau, used: e.used.Swap(0)}
	demand := e.demand.Swap(0)
	if e.idle++; demand > 0 {
		e.idle = 0
	}
	announced := e.learned && now.Sub(e.seen) < announceWindow
	if release || e.idle >= idleTicks && !announced {
		it.e, it.refund = nil, e.lease.Swap(0)
		return it, false
	}
	if !e.leased.Load() && it.used == 0 && demand == 0 {
		it.e = nil // learned, no traffic here yet: nothing to say
		return it, true
	}
	if demand > 0 && now.Sub(e.told) >= announceEvery {
		it.announce, e.told = r.id+" "+strconv.FormatUint(e.stable, 16), now
	}
	target := int64(0)
	if over := e.over.Swap(0); over > 0 {
		target = min(over+int64(r.cfg.Cost), int64(r.cfg.Burst))
	}
	lease := e.lease.Load()
	if lease > target && e.lease.CompareAndSwap(lease, target) {
		it.refund, lease = lease-target, target
	}
	it.want = max(target-lease, 0)
	return it, true
}

func (g *hotGroup) empty() bool {
	for i := range g.keys {
		if g.keys[i].Load() != 0 {
			return false
		}
	}
	return true
}

// round is what one exchange brought back.
type round struct {
	nodes int64    // live nodes (when the round had a heartbeat)
	hot   []string // announcements read: "rule-id hexhash"
}

// exchange sends the heartbeat (if beat), the batch and the read of recent
// announcements (if listen) in one pipeline. After a Redis restart or
// failover the scripts are gone (NOSCRIPT): they are loaded and only the
// script calls that failed are sent again. Resending the whole round would
// apply twice the takes that had succeeded, which in a Redis Cluster where
// one shard lost its scripts are all the keys of the other shards.
func (c *cluster) exchange(ctx context.Context, now time.Time, beat, listen bool, batch []syncItem) (res round, err error) {
	hotKey := c.key("hot")
	pipe := c.rdb.Pipeline()
	var beatCmd *redis.Cmd
	if beat {
		beatCmd = c.beatCmd(ctx, pipe)
		pipe.ZRemRangeByScore(ctx, hotKey, "-inf", itoa(now.Add(-announceWindow).UnixMilli()))
	}
	c.queue(ctx, pipe, batch)
	var hotCmd *redis.StringSliceCmd
	if listen {
		hotCmd = pipe.ZRangeByScore(ctx, hotKey, &redis.ZRangeBy{Min: itoa(now.Add(-announceWindow).UnixMilli()), Max: "+inf"})
	}
	c.ops.Add(uint64(pipe.Len()))
	cmds, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = c.resendNoScript(ctx, cmds, &beatCmd, batch); err != nil {
			return res, err
		}
	}
	if err != nil {
		return res, err
	}
	if beat {
		if res.nodes, err = beatCmd.Int64(); err != nil {
			return res, err
		}
	}
	if listen {
		res.hot = hotCmd.Val()
	}
	return res, nil
}

// resendNoScript loads both scripts and sends again, in a second pipeline,
// exactly the script calls of a round that failed with NOSCRIPT; beatCmd and
// the items' cmd are replaced by their new calls. It returns the first error
// of the round that is not NOSCRIPT, or of the resend.
func (c *cluster) resendNoScript(ctx context.Context, cmds []redis.Cmder, beatCmd **redis.Cmd, batch []syncItem) error {
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
	}
	c.ops.Add(2)
	if err := beatScript.Load(ctx, c.rdb).Err(); err != nil {
		return err
	}
	if err := takeScript.Load(ctx, c.rdb).Err(); err != nil {
		return err
	}
	retry := c.rdb.Pipeline()
	if *beatCmd != nil && (*beatCmd).Err() != nil {
		*beatCmd = c.beatCmd(ctx, retry)
	}
	for i := range batch {
		if it := &batch[i]; it.cmd != nil && it.cmd.Err() != nil {
			it.cmd = c.takeCmd(ctx, retry, it)
		}
	}
	c.ops.Add(uint64(retry.Len()))
	_, err := retry.Exec(ctx)
	return err
}

// beatCmd queues this node's heartbeat.
func (c *cluster) beatCmd(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return beatScript.EvalSha(ctx, pipe, []string{c.key("nodes")}, c.cfg.NodeID, c.cfg.HeartbeatTTL.Milliseconds())
}

// takeCmd queues the exchange of it with its key's global bucket.
func (c *cluster) takeCmd(ctx context.Context, pipe redis.Pipeliner, it *syncItem) *redis.Cmd {
	return takeScript.EvalSha(ctx, pipe, []string{it.rkey}, micros(it.interval), micros(it.tau), it.used, it.refund, it.want)
}

// queue adds one takeScript call per item to pipe, and the announcements.
func (c *cluster) queue(ctx context.Context, pipe redis.Pipeliner, batch []syncItem) {
	var ann []redis.Z
	for i := range batch {
		it := &batch[i]
		if it.used != 0 || it.refund != 0 || it.want != 0 {
			it.cmd = c.takeCmd(ctx, pipe, it)
		}
		if it.announce != "" {
			ann = append(ann, redis.Z{Score: float64(time.Now().UnixMilli()), Member: it.announce})
		}
	}
	if len(ann) > 0 {
		pipe.ZAdd(ctx, c.key("hot"), ann...)
		pipe.PExpire(ctx, c.key("hot"), 2*announceWindow)
	}
}

// learn makes the keys other nodes announced hot here too. rs is the current
// rule set; announcements of unknown or local rules are ignored.
func (c *cluster) learn(rs *ruleSet, hot []string, now time.Time) {
	for _, m := range hot {
		id, hex, ok := cut(m, ' ')
		h, err := strconv.ParseUint(hex, 16, 64)
		if !ok || err != nil || h == 0 {
			continue
		}
		if r := rs.rule(id); r != nil && r.clustered && !c.hot.learn(h, r, now) {
			c.overflow.Add(1)
		}
	}
}

// apply hands the granted tokens to the entries and switches them to their
// lease. done is when the answers arrived (the global TAT is mapped onto this
// node's clock from it, for the RateLimit headers).
func (c *cluster) apply(batch []syncItem, done time.Time) {
	for i := range batch {
		it := &batch[i]
		if it.e == nil || it.cmd == nil {
			continue
		}
		res, err := it.cmd.Int64Slice()
		if err != nil || len(res) != 2 {
			continue
		}
		it.e.gtat.Store(done.UnixNano() + res[1]*1000)
		if res[0] > 0 {
			it.e.lease.Add(res[0])
			c.granted.Add(uint64(res[0]))
		}
		it.e.leased.Store(true)
	}
}

// micros formats ns as decimal microseconds for Lua.
func micros(ns int64) string { return strconv.FormatFloat(float64(ns)/1e3, 'f', -1, 64) }
