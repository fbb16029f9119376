package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// target is one server under load: meliproxy, nginx, haproxy or the bare
// ceiling. All listen on loopback.
type target struct {
	name    string
	base    string // http://127.0.0.1:PORT
	proc    *proc
	config  string   // the config it runs with, for the report ("" for none)
	notes   []string // what is on or off, for the report
	version string
	rate    *rateTargets // built on first use by rateTargets
}

// rateTargets returns the constant-rate requests against t, built once: the
// warm-up and the measured run send the same mix.
func (t *target) rateTargets() *rateTargets {
	if t.rate == nil {
		t.rate = newRateTargets(t.base, 1)
	}
	return t.rate
}

// pids lists the processes whose CPU and memory count for the target: the
// process itself and, for nginx, its workers.
func (t *target) pids() []int {
	return append([]int{t.proc.pid()}, children(t.proc.pid())...)
}

// env is what every target needs to start.
type env struct {
	dir      string // work directory: configs, logs, caches
	upstream string // host:port of mockmeli
	mockmeli string // binary
	proxyBin string // meliproxy binary, "" when unavailable
	fleet    *fleet
}

const startTimeout = 15 * time.Second

func startUpstream(ctx context.Context, e *env) (*target, error) {
	return startMock(ctx, e, "upstream")
}

func startBare(ctx context.Context, e *env) (*target, error) {
	return startMock(ctx, e, "bare", "-bare")
}

func startMock(ctx context.Context, e *env, name string, extra ...string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(e.dir, name, e.mockmeli, append([]string{"-listen", addr}, extra...)...)
	if err != nil {
		return nil, err
	}
	e.fleet.add(p)
	t := &target{name: name, base: "http://" + addr, proc: p, version: "mockmeli " + strings.Join(extra, " ")}
	return t, waitHTTP(ctx, p, t.base+"/__stats", startTimeout)
}

// Sections of the meliproxy benchmark config that depend on packages which
// may not be wired into cmd/meliproxy yet. startMeliproxy drops a section the
// binary rejects as unknown and says so in the report.
var meliproxyFeatures = []struct{ section, text string }{
	{"limits", `[limits]
trusted_proxies = ["127.0.0.0/8"]

# Evaluated on every request and never trips at these rates: it measures the
# limiter's cost (client IP resolution, key hashing, table update) without 429s.
[[limits.rules]]
id = "per-ip"
key = ["ip"]
rate = "100000000/m"

# The challenge's example: client IP + /items/* at 10 per minute. The mix
# scenario's 5000 ordinary clients spread over 5000 items stay under it; its
# three hot clients hammer one item and get 429s.
[[limits.rules]]
id = "items-ip-path"
paths = ["/items/*"]
key = ["ip", "path"]
rate = "10/m"
`},
	{"cache", `[cache]
max_bytes = 268435456

[[cache.rules]]
id = "catalog"
paths = ["/categories/*", "/sites", "/sites/*"]
ttl = "5m"
`},
	{"stats", `[stats]
data_dir = "stats"
`},
}

func meliproxyConfig(listen, admin, upstream string, sections []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# meliproxy benchmark config, written by bench/.
[server]
listen = %q
max_conns = 50000

[upstream]
url = "http://%s"

[admin]
listen = %q

[log]
level = "warn"
`, listen, upstream, admin)
	for _, f := range meliproxyFeatures {
		for _, s := range sections {
			if s == f.section {
				b.WriteString("\n" + f.text)
			}
		}
	}
	return b.String()
}

// startMeliproxy writes the benchmark config, validates it with -check
// (dropping sections the binary does not know yet), and starts the proxy.
func startMeliproxy(ctx context.Context, e *env) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	admin := "127.0.0.1:" + strconv.Itoa(adminPort)
	path := filepath.Join(e.dir, "meliproxy.toml")
	var sections []string
	for _, f := range meliproxyFeatures {
		sections = append(sections, f.section)
	}
	var notes []string
	var cfg string
	for {
		cfg = meliproxyConfig(listen, admin, e.upstream, sections)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		out, err := exec.Command(e.proxyBin, "-check", "-config", path).CombinedOutput()
		if err == nil {
			break
		}
		kept := sections[:0:0]
		for _, s := range sections {
			if strings.Contains(string(out), `unknown key "`+s) {
				notes = append(notes, fmt.Sprintf("[%s] not supported by this build: section left out", s))
				continue
			}
			kept = append(kept, s)
		}
		if len(kept) == len(sections) {
			return nil, fmt.Errorf("meliproxy -check rejected the benchmark config:\n%s", out)
		}
		sections = kept
	}
	for _, s := range sections {
		notes = append(notes, "["+s+"] accepted by -check")
	}
	ver, _ := exec.Command(e.proxyBin, "-version").Output()
	p, err := startProc(e.dir, "meliproxy", e.proxyBin, "-config", path)
	if err != nil {
		return nil, err
	}
	e.fleet.add(p)
	t := &target{name: "meliproxy", base: "http://" + listen, proc: p, config: cfg, notes: notes,
		version: strings.TrimSpace(string(ver))}
	return t, waitHTTP(ctx, p, t.base+"/categories/MLA97994", startTimeout)
}

// nginxConfig is the equivalent nginx: keep-alive upstream pool, real client
// address from X-Forwarded-For sent by loopback, limit_req on the client
// address (never tripping) and on address+URI for /items/ (10/m, burst 10
// like meliproxy's default burst), proxy_cache for the catalog paths.
func nginxConfig(dir, listen, upstream string, root bool) string {
	user := ""
	if root {
		// Workers must write the cache in our work directory, which is the
		// caller's; as root nginx would otherwise switch to "nobody".
		user = "user root;\n"
	}
	return fmt.Sprintf(`# nginx benchmark config, written by bench/.
%sworker_processes auto;
worker_rlimit_nofile 65536;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx-error.log warn;

events {
    worker_connections 16384;
}

http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy_temp;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_requests 1000000;

    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;

    limit_req_zone $binary_remote_addr zone=perip:64m rate=1000000r/s;
    limit_req_zone $binary_remote_addr$uri zone=items:64m rate=10r/m;
    limit_req_status 429;

    proxy_cache_path %[2]s/cache levels=1:2 keys_zone=catalog:16m max_size=256m inactive=10m use_temp_path=off;

    upstream meli {
        server %[4]s;
        keepalive 256;
        keepalive_requests 1000000;
    }

    server {
        listen %[3]s backlog=4096;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        limit_req zone=perip burst=1000000 nodelay;

        location / {
            proxy_pass http://meli;
        }
        location /items/ {
            limit_req zone=perip burst=1000000 nodelay;
            limit_req zone=items burst=10 nodelay;
            proxy_pass http://meli;
        }
        location ~ ^/(categories|sites)(/|$) {
            proxy_cache catalog;
            proxy_cache_valid 200 5m;
            proxy_cache_lock on;
            proxy_pass http://meli;
        }
    }
}
`, user, dir, listen, upstream)
}

func startNginx(ctx context.Context, e *env, bin string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	cfg := nginxConfig(e.dir, listen, e.upstream, os.Geteuid() == 0)
	path := filepath.Join(e.dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-t", "-p", e.dir, "-e", filepath.Join(e.dir, "nginx-error.log"), "-c", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v\n%s", err, out)
	}
	ver, _ := exec.Command(bin, "-v").CombinedOutput()
	// Foreground master (our child, stopped by its PID: SIGTERM is nginx's
	// fast shutdown) with its workers.
	p, err := startProc(e.dir, "nginx", bin, "-p", e.dir, "-e", filepath.Join(e.dir, "nginx-error.log"), "-c", path, "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	e.fleet.add(p)
	t := &target{name: "nginx", base: "http://" + listen, proc: p, config: cfg,
		notes:   []string{"limit_req (per address, per address+URI on /items/)", "proxy_cache on /categories, /sites"},
		version: strings.TrimSpace(strings.TrimPrefix(string(ver), "nginx version: "))}
	return t, waitHTTP(ctx, p, t.base+"/categories/MLA97994", startTimeout)
}

// haproxyConfig is HAProxy as a plain keep-alive reverse proxy: no limits,
// no cache. It is the pass-through reference of issue 8.
func haproxyConfig(listen, upstream string) string {
	return fmt.Sprintf(`# haproxy benchmark config, written by bench/.
global
    nbthread 2
    maxconn 8000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always

frontend fe
    bind %s
    option forwardfor
    default_backend be

backend be
    server meli %s maxconn 1024
`, listen, upstream)
}

func startHAProxy(ctx context.Context, e *env, bin string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	cfg := haproxyConfig(listen, e.upstream)
	path := filepath.Join(e.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	ver, _ := exec.Command(bin, "-v").Output()
	p, err := startProc(e.dir, "haproxy", bin, "-db", "-f", path)
	if err != nil {
		return nil, err
	}
	e.fleet.add(p)
	v, _, _ := strings.Cut(string(ver), "\n")
	t := &target{name: "haproxy", base: "http://" + listen, proc: p, config: cfg,
		notes: []string{"plain keep-alive proxy: no limits, no cache"}, version: strings.TrimSpace(v)}
	return t, waitHTTP(ctx, p, t.base+"/categories/MLA97994", startTimeout)
}
