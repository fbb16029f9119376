package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries built once by TestMain for the integration tests.
var (
	meliproxyBin string
	mockmeliBin  string
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meliproxy-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	meliproxyBin = filepath.Join(dir, "meliproxy")
	mockmeliBin = filepath.Join(dir, "mockmeli")
	for bin, pkg := range map[string]string{meliproxyBin: ".", mockmeliBin: "../mockmeli"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a started binary whose output is kept for failure messages.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs bin with args; the process is killed at cleanup if still running.
func start(t testing.TB, bin string, args ...string) *process {
	t.Helper()
	return startWithEnv(t, nil, bin, args...)
}

// startWithEnv is start with extra environment variables.
func startWithEnv(t testing.TB, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.output())
		}
	})
	return p
}

// wait returns the exit code, failing the test after timeout.
func (p *process) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process still running after %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready", url)
}

// startMock runs mockmeli with extra flags and returns its address.
func startMock(t testing.TB, flags ...string) string {
	addr := freeAddr(t)
	start(t, mockmeliBin, append([]string{"-listen", addr}, flags...)...)
	waitHTTP(t, "http://"+addr+"/__stats")
	return addr
}

// node is a running meliproxy.
type node struct {
	*process
	addr, admin, config string
}

// startProxy writes a config for upstream (plus extra TOML) and runs meliproxy on it.
func startProxy(t testing.TB, upstream, extra string) *node {
	t.Helper()
	n := &node{addr: freeAddr(t), admin: freeAddr(t)}
	n.config = filepath.Join(t.TempDir(), "config.toml")
	cfg := fmt.Sprintf("[server]\nlisten = %q\ndrain_timeout = \"5s\"\n[upstream]\nurl = %q\ntimeout = \"1s\"\n[admin]\nlisten = %q\n%s",
		n.addr, upstream, n.admin, extra)
	if err := os.WriteFile(n.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.process = start(t, meliproxyBin, "-config", n.config)
	waitHTTP(t, "http://"+n.admin+"/readyz")
	return n
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	return do(t, "GET", url, "")
}

func do(t testing.TB, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestIntegrationByteForByte(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	n := startProxy(t, "http://"+mock, "")
	paths := []string{
		"/categories/MLA97994", "/categories/MLA1055", "/categories/NOPE", "/sites", "/sites/MLA",
		"/sites/MLA/categories", "/items/MLA1100000001", "/users/123", "/no/such/route",
		"/status/418", "/status/503", "/big?bytes=3000000", "/big?bytes=70000&chunked=1",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			direct, directBody := get(t, "http://"+mock+path)
			via, viaBody := get(t, "http://"+n.addr+path)
			if via.StatusCode != direct.StatusCode {
				t.Errorf("status %d via proxy, %d direct", via.StatusCode, direct.StatusCode)
			}
			if !bytes.Equal(viaBody, directBody) {
				t.Errorf("body differs: %d bytes via proxy, %d direct", len(viaBody), len(directBody))
			}
			for _, h := range []string{"Content-Type", "Cache-Control", "Etag", "Server"} {
				if via.Header.Get(h) != direct.Header.Get(h) {
					t.Errorf("%s: %q via proxy, %q direct", h, via.Header.Get(h), direct.Header.Get(h))
				}
			}
		})
	}
}

func TestIntegrationMethodsQueryAndBody(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	n := startProxy(t, "http://"+mock, "")
	body := strings.Repeat(`{"title":"Item de test"}`, 1000)
	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		t.Run(method, func(t *testing.T) {
			b := body
			if method == "GET" || method == "OPTIONS" {
				b = ""
			}
			resp, got := do(t, method, "http://"+n.addr+"/echo?z=1&a=%20x&a=2", b)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			s := string(got)
			for _, want := range []string{`"method":"` + method + `"`, `"raw_query":"z=1\u0026a=%20x\u0026a=2"`, fmt.Sprintf(`"body_length":%d`, len(b))} {
				if !strings.Contains(s, want) {
					t.Errorf("upstream saw %s, want it to contain %s", s, want)
				}
			}
		})
	}
}

// TestIntegrationCachedPathForwardsFieldsVerbatim: a request on a path a cache rule covers, but
// which must bypass the cache (Cookie, Range), still reaches the upstream with its fields as sent:
// deciding the bypass must not rewrite them (fasthttp re-serialises a Cookie once it is parsed).
func TestIntegrationCachedPathForwardsFieldsVerbatim(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	n := startProxy(t, "http://"+mock, "[cache]\n[[cache.rules]]\nid = \"echo\"\npaths = [\"/echo\"]\n")
	for _, fields := range [][2]string{{"Cookie", "a=1;b=2"}, {"Range", "bytes=0-10"}} {
		req, err := http.NewRequest("GET", "http://"+n.addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(fields[0], fields[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var echo struct{ Headers [][2]string }
		err = json.NewDecoder(resp.Body).Decode(&echo)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if xc := resp.Header.Get("X-Cache"); xc != "BYPASS" {
			t.Errorf("%s: X-Cache %q, want BYPASS", fields[0], xc)
		}
		found := false
		for _, h := range echo.Headers {
			if strings.EqualFold(h[0], fields[0]) {
				found = true
				if h[1] != fields[1] {
					t.Errorf("%s reached the upstream as %q, want %q", fields[0], h[1], fields[1])
				}
			}
		}
		if !found {
			t.Errorf("%s did not reach the upstream: %v", fields[0], echo.Headers)
		}
	}
}

func TestIntegrationUpstreamDown(t *testing.T) {
	t.Parallel()
	n := startProxy(t, "http://"+freeAddr(t), "")
	start := time.Now()
	resp, body := get(t, "http://"+n.addr+"/categories/MLA97994")
	if resp.StatusCode != 502 || !strings.Contains(string(body), `"status":502`) {
		t.Fatalf("got %d %s, want 502 JSON", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("502 took %v", took)
	}
}

func TestIntegrationStalledUpstream(t *testing.T) {
	t.Parallel()
	mock := startMock(t, "-fail-rate", "1", "-fail-mode", "stall", "-stall", "10s")
	n := startProxy(t, "http://"+mock, "")
	start := time.Now()
	resp, _ := get(t, "http://"+n.addr+"/categories/MLA97994")
	took := time.Since(start)
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if took < 900*time.Millisecond || took > 2500*time.Millisecond {
		t.Errorf("504 after %v, want ~1s (the configured timeout)", took)
	}
}

func TestIntegrationGracefulStop(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	n := startProxy(t, "http://"+mock, "")
	const inflight = 8
	var wg sync.WaitGroup
	codes := make(chan int, inflight)
	for i := 0; i < inflight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + n.addr + "/slow?d=700ms")
			if err != nil {
				codes <- -1
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	time.Sleep(200 * time.Millisecond) // the requests are in flight upstream
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("in-flight request ended with %d during drain, want 200", c)
		}
	}
	if code := n.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if _, err := net.DialTimeout("tcp", n.addr, 200*time.Millisecond); err == nil {
		t.Errorf("still accepting after shutdown")
	}
}

func TestIntegrationCheckFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name     string
		config   string
		wantCode int
		wantOut  []string
	}{
		{"shipped config", "", 0, []string{"ok"}},
		{"unknown key", "[server]\nlisen = \":1\"\n[upstream]\nurl = \"http://x\"\n", 2, []string{`unknown key "server.lisen"`, "valid keys in [server]"}},
		{"bad values", "[server]\nread_timeout = \"-1s\"\n[upstream]\nurl = \"ftp://x\"\n[log]\nlevel = \"loud\"\n", 2,
			[]string{"server.read_timeout", "upstream.url", "scheme must be http or https", "log.level"}},
		{"syntax", "[server\n", 2, []string{"line 2"}},
		{"wrong type", "[server]\nmax_conns = \"many\"\n[upstream]\nurl = \"http://x\"\n", 2, []string{"max_conns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "../../config.toml"
			if tt.config != "" {
				path = filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".toml")
				if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command(meliproxyBin, "-check", "-config", path).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestIntegrationVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(meliproxyBin, "-version").Output()
	if err != nil || !strings.HasPrefix(string(out), "meliproxy ") {
		t.Fatalf("-version: %v %q", err, out)
	}
}

// interruptSignal stops a node gracefully.
var interruptSignal = syscall.SIGTERM
