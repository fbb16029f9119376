package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// getFrom sends a GET that appears to come from client ip: the test proxy trusts loopback peers'
// X-Forwarded-For, as a node behind a load balancer would.
func getFrom(t testing.TB, url, ip string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, []byte(b.String())
}

const shippedRules = `
[limits]
trusted_proxies = ["127.0.0.0/8"]
[[limits.rules]]
id    = "vip-ip"
cidrs = ["152.152.152.152/32"]
key   = ["ip"]
rate  = "1000/m"
[[limits.rules]]
id    = "categories"
paths = ["/categories/**"]
rate  = "10000/m"
[[limits.rules]]
id    = "items-ip"
paths = ["/items/*"]
key   = ["ip", "path"]
rate  = "10/m"
`

func TestE2ELimits(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	n := startProxy(t, "http://"+mock, shippedRules)
	base := "http://" + n.addr

	for i := 1; i <= 10; i++ {
		if resp, body := getFrom(t, base+"/items/MLA1100000001", "1.1.1.1"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := getFrom(t, base+"/items/MLA1100000001", "1.1.1.1")
	if resp.StatusCode != 429 {
		t.Fatalf("11th request: %d, want 429", resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q, want whole seconds > 0", ra)
	}
	if got := resp.Header.Get("RateLimit-Policy"); !strings.Contains(got, `"items-ip";q=10;w=60`) {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := resp.Header.Get("RateLimit"); !strings.Contains(got, `"items-ip";r=0;t=`) {
		t.Errorf("RateLimit %q", got)
	}
	if !strings.Contains(string(body), `"items-ip"`) || !strings.Contains(string(body), `429`) {
		t.Errorf("429 body does not name the rule: %s", body)
	}
	if strings.Contains(resp.Header.Get("RateLimit-Policy")+resp.Header.Get("RateLimit"), "1.1.1.1") {
		t.Errorf("headers reveal the client key")
	}
	// Another path for the same IP and the same path for another IP have their own buckets.
	for _, c := range []struct{ path, ip string }{{"/items/MLA1100000002", "1.1.1.1"}, {"/items/MLA1100000001", "2.2.2.2"}} {
		if resp, _ := getFrom(t, base+c.path, c.ip); resp.StatusCode != 200 {
			t.Errorf("%s from %s: %d, want 200", c.path, c.ip, resp.StatusCode)
		}
	}
	// Allowed responses carry the fields too, with the remaining count.
	resp, _ = getFrom(t, base+"/items/MLA1100000003", "3.3.3.3")
	if got := resp.Header.Get("RateLimit"); !strings.Contains(got, `"items-ip";r=9;`) {
		t.Errorf("allowed response RateLimit %q, want r=9", got)
	}
}

func TestE2ESharedBucket(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	n := startProxy(t, "http://"+mock, `
[limits]
trusted_proxies = ["127.0.0.0/8"]
[[limits.rules]]
id    = "categories"
paths = ["/categories/**"]
rate  = "5/m"
`)
	admitted := 0
	for i := 0; i < 10; i++ {
		resp, _ := getFrom(t, "http://"+n.addr+"/categories/MLA97994", fmt.Sprintf("10.0.%d.1", i))
		if resp.StatusCode == 200 {
			admitted++
		}
	}
	if admitted != 5 {
		t.Errorf("10 clients admitted %d times by one shared 5/m bucket, want 5", admitted)
	}
}

func TestE2ECache(t *testing.T) {
	t.Parallel()
	mock := startMock(t, "-latency", "150ms")
	n := startProxy(t, "http://"+mock, `
[cache]
[[cache.rules]]
id = "catalog"
paths = ["/categories/*"]
ttl = "1m"
`)
	// 100 concurrent misses for one key: one upstream request.
	var wg sync.WaitGroup
	statuses := make(chan string, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + n.addr + "/categories/MLA1055")
			if err != nil {
				statuses <- err.Error()
				return
			}
			resp.Body.Close()
			statuses <- fmt.Sprint(resp.StatusCode)
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != "200" {
			t.Fatalf("coalesced request: %s", s)
		}
	}
	if got := mockRequests(t, mock); got != 1 {
		t.Errorf("100 concurrent misses made %d upstream requests, want 1", got)
	}
	resp, body := get(t, "http://"+n.addr+"/categories/MLA1055")
	_, direct := get(t, "http://"+mock+"/categories/MLA1055")
	if resp.Header.Get("X-Cache") != "HIT" || string(body) != string(direct) {
		t.Errorf("X-Cache %q, body equal %v", resp.Header.Get("X-Cache"), string(body) == string(direct))
	}
	if resp.Header.Get("Age") == "" {
		t.Errorf("hit without Age")
	}
	// A client revalidating with the ETag it holds gets 304 from memory: no body, the validators,
	// its own rate-limit fields still stamped by the proxy.
	etag := resp.Header.Get("Etag")
	req, err := http.NewRequest("GET", "http://"+n.addr+"/categories/MLA1055", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("If-None-Match", etag)
	nm, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	nmBody, _ := io.ReadAll(nm.Body)
	nm.Body.Close()
	if etag == "" || nm.StatusCode != 304 || len(nmBody) != 0 || nm.Header.Get("Etag") != etag || nm.Header.Get("X-Cache") != "HIT" {
		t.Errorf("revalidation with %q: %d, %d body bytes, ETag %q, X-Cache %q; want 304, none, the same ETag, HIT",
			etag, nm.StatusCode, len(nmBody), nm.Header.Get("Etag"), nm.Header.Get("X-Cache"))
	}
	// Uncached routes are forwarded every time.
	get(t, "http://"+n.addr+"/users/1")
	get(t, "http://"+n.addr+"/users/1")
	if got := mockRequests(t, mock); got != 4 { // 1 fill + 1 direct + 2 users
		t.Errorf("upstream saw %d requests, want 4", got)
	}
}

func TestE2EStaleOnError(t *testing.T) {
	t.Parallel()
	mockAddr := freeAddr(t)
	mock := start(t, mockmeliBin, "-listen", mockAddr)
	waitHTTP(t, "http://"+mockAddr+"/__stats")
	n := startProxy(t, "http://"+mockAddr, `
[cache]
[[cache.rules]]
id = "catalog"
paths = ["/categories/*"]
ttl = "1s"
stale = "1h"
`)
	resp, fresh := get(t, "http://"+n.addr+"/categories/MLA97994")
	if resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first request X-Cache %q", resp.Header.Get("X-Cache"))
	}
	// The upstream now fails every request with a 503.
	_ = mock.cmd.Process.Kill()
	<-mock.done
	start(t, mockmeliBin, "-listen", mockAddr, "-fail-rate", "1", "-fail-mode", "5xx")
	waitHTTP(t, "http://"+mockAddr+"/__stats")
	time.Sleep(1100 * time.Millisecond) // past the TTL, inside the stale window

	resp, body := get(t, "http://"+n.addr+"/categories/MLA97994")
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "STALE" || string(body) != string(fresh) {
		t.Fatalf("upstream 503 after expiry: %d X-Cache %q, want the stale 200", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	// A path never cached gets the upstream's 503 as is.
	if resp, _ := get(t, "http://"+n.addr+"/categories/MLA1051"); resp.StatusCode != 503 {
		t.Errorf("uncached path during outage: %d, want the upstream's 503", resp.StatusCode)
	}
}

func mockRequests(t testing.TB, mock string) int {
	t.Helper()
	_, body := get(t, "http://"+mock+"/__stats")
	var s struct {
		Requests int `json:"requests"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("mock stats %s: %v", body, err)
	}
	return s.Requests
}

// summary reads the stats summary for the last hour from the admin API.
func summary(t testing.TB, admin string) map[string]any {
	t.Helper()
	resp, body := get(t, "http://"+admin+"/api/v1/stats/summary")
	if resp.StatusCode != 200 {
		t.Fatalf("summary: %d %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestE2EStatsExactAndDurable(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	dataDir := t.TempDir()
	extra := shippedRules + fmt.Sprintf(`
[cache]
[[cache.rules]]
id = "catalog"
paths = ["/categories/*"]
ttl = "1m"
[stats]
data_dir = %q
flush_interval = "100ms"
`, dataDir)
	n := startProxy(t, "http://"+mock, extra)
	base := "http://" + n.addr
	// The mix: 5 category requests (1 miss, 4 hits), 12 item requests from one IP (10 ok, 2 limited),
	// 3 unknown categories (404, cached after the first), 2 upstream 503s.
	for i := 0; i < 5; i++ {
		getFrom(t, base+"/categories/MLA97994", "5.5.5.5")
	}
	for i := 0; i < 12; i++ {
		getFrom(t, base+"/items/MLA1100000001", "6.6.6.6")
	}
	for i := 0; i < 3; i++ {
		getFrom(t, base+"/categories/NOPE", "7.7.7.7")
	}
	for i := 0; i < 2; i++ {
		getFrom(t, base+"/status/503", "7.7.7.7")
	}
	time.Sleep(400 * time.Millisecond) // a few flush intervals

	check := func(m map[string]any) {
		t.Helper()
		if got := m["requests"]; got != 22.0 {
			t.Errorf("requests %v, want 22", got)
		}
		status := m["status"].(map[string]any)
		for code, want := range map[string]float64{"200": 15, "429": 2, "404": 3, "503": 2} {
			if status[code] != want {
				t.Errorf("status %s: %v, want %v (all: %v)", code, status[code], want, status)
			}
		}
		cache := m["cache"].(map[string]any)
		if cache["hit"] != 6.0 || cache["miss"] != 2.0 {
			t.Errorf("cache %v, want 6 hits (4 + 2 of the 404) and 2 misses", cache)
		}
		limits := m["limits"].(map[string]any)
		if items, _ := limits["items-ip"].(map[string]any); items == nil || items["limited"] != 2.0 {
			t.Errorf("limits %v, want items-ip limited 2", limits)
		}
	}
	check(summary(t, n.admin))

	// Stop and start again on the same data: the history is still there.
	_ = n.cmd.Process.Signal(interruptSignal)
	if code := n.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	n2 := startProxy(t, "http://"+mock, extra)
	check(summary(t, n2.admin))
}
