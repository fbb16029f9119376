package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// reportLua is appended to every wrk script: at the end it prints one line
// with the totals and the latency percentiles (microseconds), including
// p99.9, which --latency does not print.
const reportLua = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
`

// threadLua numbers the wrk threads so each seeds its own sequence.
const threadLua = `
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("id", nthreads)
end
`

// mixLua prebuilds 8192 requests per thread in init (so request() costs wrk
// almost nothing) and cycles through them. The mix is that of issue 8:
// mostly cached catalog reads, some uncached items and users, many client
// addresses (X-Forwarded-For from a trusted loopback peer), and a few hot
// clients hammering one item, over the 10/m items limit.
//
// Ordinary /items/ requests are built per request from a counter, each from a
// new address: a prebuilt one would come round again every 8192 requests and
// trip the 10/m limit that only the hot clients should trip.
const mixLua = `
local reqs = {}
local n, k = 0, 0
local cats = {"/categories/MLA97994", "/categories/MLA1055", "/categories/MLA1051"}
local sites = {"/sites", "/sites/MLA", "/sites/MLB", "/sites/MLA/categories"}
function init(args)
  local hot = tonumber(args[1]) or 0.03
  math.randomseed(7919 * id)
  for i = 1, 8192 do
    local r = math.random()
    local ip, path
    if r < hot then
      ip = "152.152.152." .. math.random(150, 152)
      path = "/items/MLA1100000001"
    else
      local c = math.random(0, 4999)
      ip = "10.0." .. math.floor(c / 256) .. "." .. (c % 256)
      r = math.random()
      if r < 0.47 then
        path = cats[math.random(#cats)]
      elseif r < 0.73 then
        path = sites[math.random(#sites)]
      elseif r < 0.90 then
        path = nil
      else
        path = "/users/" .. math.random(100000, 999999)
      end
    end
    if path then
      reqs[i] = wrk.format("GET", path, {["X-Forwarded-For"] = ip})
    else
      reqs[i] = false
    end
  end
end
function request()
  n = n % #reqs + 1
  local r = reqs[n]
  if r then
    return r
  end
  k = k + 1
  local ip = (100 + id) .. "." .. (math.floor(k / 65536) % 256) .. "." .. (math.floor(k / 256) % 256) .. "." .. (k % 256)
  return wrk.format("GET", "/items/MLA" .. (1000000 + k % 5000), {["X-Forwarded-For"] = ip})
end
`

// floodLua sends every request from a new client address: thread k uses
// 10+k.x.y.z, 16.7M distinct addresses per thread.
const floodLua = `
local n = 0
function request()
  n = n + 1
  local ip = (10 + id) .. "." .. (math.floor(n / 65536) % 256) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
  return wrk.format("GET", "/categories/MLA97994", {["X-Forwarded-For"] = ip})
end
`

// writeScripts writes the wrk scripts into dir and returns their paths by name.
func writeScripts(dir string) (map[string]string, error) {
	scripts := map[string]string{
		"plain": reportLua,
		"mix":   threadLua + mixLua + reportLua,
		"flood": threadLua + floodLua + reportLua,
	}
	out := make(map[string]string, len(scripts))
	for name, src := range scripts {
		p := filepath.Join(dir, name+".lua")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}

// mixTarget is one request of the mix, for vegeta and for status sampling.
// A dynamic target stands for an ordinary /items/ request, built per request
// by item (see mixLua).
type mixTarget struct {
	path, xff string
	dynamic   bool
}

// item is the k-th ordinary /items/ request: a new client address each time.
func item(k uint64) mixTarget {
	return mixTarget{
		path: fmt.Sprintf("/items/MLA%d", 1000000+k%5000),
		xff:  fmt.Sprintf("100.%d.%d.%d", k>>16&255, k>>8&255, k&255),
	}
}

// mixTargets is the Go twin of mixLua: n requests, hot is the share sent by
// the over-limit clients (0 for the constant-rate run, which must see no 429s).
func mixTargets(n int, hot float64, seed uint64) []mixTarget {
	r := rand.New(rand.NewPCG(seed, 7919))
	cats := []string{"/categories/MLA97994", "/categories/MLA1055", "/categories/MLA1051"}
	sites := []string{"/sites", "/sites/MLA", "/sites/MLB", "/sites/MLA/categories"}
	out := make([]mixTarget, n)
	for i := range out {
		if r.Float64() < hot {
			out[i] = mixTarget{path: "/items/MLA1100000001", xff: fmt.Sprintf("152.152.152.%d", 150+r.IntN(3))}
			continue
		}
		c := r.IntN(5000)
		t := mixTarget{xff: fmt.Sprintf("10.0.%d.%d", c/256, c%256)}
		switch p := r.Float64(); {
		case p < 0.47:
			t.path = cats[r.IntN(len(cats))]
		case p < 0.73:
			t.path = sites[r.IntN(len(sites))]
		case p < 0.90:
			t.dynamic = true
		default:
			t.path = fmt.Sprintf("/users/%d", 100000+r.IntN(900000))
		}
		out[i] = t
	}
	return out
}
