package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	"syscall"
	"testing"
	"time"
)

// binary is the mockmeli executable built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mockmeli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mockmeli")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mockmeli:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a running mockmeli process.
type instance struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	exit chan error
}

// start runs mockmeli on a free loopback port with args and stops it (SIGTERM,
// expecting exit 0) when the test ends.
func start(t *testing.T, args ...string) *instance {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{cmd: cmd, exit: make(chan error, 1)}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("mockmeli did not start: %v; stderr: %s", err, stderr.String())
	}
	in.base = "http://" + strings.TrimSpace(strings.TrimPrefix(line, "mockmeli listening on "))
	go func() { in.exit <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := in.stop(); err != nil {
			t.Errorf("stop mockmeli: %v; stderr: %s", err, stderr.String())
		}
	})
	return in
}

// stop sends SIGTERM and waits up to 15 s for a clean exit.
func (in *instance) stop() error {
	if in.cmd.ProcessState != nil {
		return nil
	}
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-in.exit:
		in.exit <- err
		return err
	case <-time.After(15 * time.Second):
		in.cmd.Process.Kill()
		return errors.New("no exit 15s after SIGTERM")
	}
}

// client has no keep-alive so a fault on one request cannot leak into the next.
var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

type apiErr struct {
	Message string   `json:"message"`
	Error   string   `json:"error"`
	Status  int      `json:"status"`
	Cause   []string `json:"cause"`
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	in := start(t)
	tests := []struct {
		path, wantID string // wantID is the "id" field of an object body; "" for lists
		cacheControl string
	}{
		{"/categories/MLA97994", "MLA97994", "max-age=300"},
		{"/categories/MLA1055", "MLA1055", "max-age=300"},
		{"/categories/MLA1051", "MLA1051", "max-age=300"},
		{"/sites", "", "max-age=300"},
		{"/sites/MLA", "MLA", "max-age=300"},
		{"/sites/MLB", "MLB", "max-age=300"},
		{"/sites/MLA/categories", "", "max-age=300"},
		{"/items/MLA1100000001", "MLA1100000001", "max-age=60"},
		{"/items/MLB42", "MLB42", "max-age=60"},
		{"/users/123456789", "", "max-age=60"},
		{"/users/42", "", "max-age=60"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, in.base+tt.path)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			for name, want := range map[string]string{
				"Content-Type":  "application/json;charset=UTF-8",
				"Cache-Control": tt.cacheControl,
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			for _, name := range []string{"ETag", "X-Request-Id"} {
				if resp.Header.Get(name) == "" {
					t.Errorf("no %s header", name)
				}
			}
			if !json.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			if tt.wantID != "" {
				var obj struct{ ID string }
				json.Unmarshal(body, &obj)
				if obj.ID != tt.wantID {
					t.Errorf("id = %q, want %q", obj.ID, tt.wantID)
				}
			}
		})
	}
}

func TestCategoryShape(t *testing.T) {
	t.Parallel()
	in := start(t)
	_, body := get(t, in.base+"/categories/MLA97994")
	var c map[string]json.RawMessage
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "picture", "permalink", "total_items_in_this_category",
		"path_from_root", "children_categories", "attribute_types", "settings", "meta_categ_id",
		"attributable", "date_created"} {
		if _, ok := c[k]; !ok {
			t.Errorf("category has no %q", k)
		}
	}
}

func TestUserID(t *testing.T) {
	t.Parallel()
	in := start(t)
	_, body := get(t, in.base+"/users/42")
	var u struct{ ID int64 }
	if err := json.Unmarshal(body, &u); err != nil || u.ID != 42 {
		t.Fatalf("id = %d (%v), want 42", u.ID, err)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	in := start(t)
	tests := []struct{ path, message string }{
		{"/categories/MLA0", "Category not found"},
		{"/sites/XXX", "Site not found"},
		{"/sites/MLA/nope", "Site not found"},
		{"/items/nope", "Item not found"},
		{"/users/abc", "User not found"},
		{"/nothing/here", "resource not found"},
		{"/status/99", "resource not found"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, in.base+tt.path)
			if resp.StatusCode != 404 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var e apiErr
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			want := apiErr{Message: tt.message, Error: "not_found", Status: 404, Cause: []string{}}
			if e.Message != want.Message || e.Error != want.Error || e.Status != want.Status || e.Cause == nil || len(e.Cause) != 0 {
				t.Errorf("body %s, want %+v", body, want)
			}
		})
	}
}

func TestConditionalAndMethods(t *testing.T) {
	t.Parallel()
	in := start(t)
	for _, path := range []string{"/categories/MLA97994", "/items/MLA77"} {
		resp, _ := get(t, in.base+path)
		req, _ := http.NewRequest("GET", in.base+path, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		r2, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != 304 {
			t.Errorf("%s with If-None-Match: status %d, want 304", path, r2.StatusCode)
		}
		r3, err := client.Post(in.base+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		r3.Body.Close()
		if r3.StatusCode != 405 || r3.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s: status %d Allow %q, want 405 GET, HEAD", path, r3.StatusCode, r3.Header.Get("Allow"))
		}
	}
}

// failures returns, for n sequential requests, which ones got a 503.
func failures(t *testing.T, base string, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		resp, _ := get(t, base+"/categories/MLA97994")
		switch resp.StatusCode {
		case 503:
			out[i] = true
		case 200:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	return out
}

func TestFail5xxSeeded(t *testing.T) {
	t.Parallel()
	a := start(t, "-fail-rate", "0.3", "-seed", "7")
	b := start(t, "-fail-rate", "0.3", "-seed", "7")
	c := start(t, "-fail-rate", "0.3", "-seed", "8")
	const n = 300
	fa, fb, fc := failures(t, a.base, n), failures(t, b.base, n), failures(t, c.base, n)
	count := 0
	for _, f := range fa {
		if f {
			count++
		}
	}
	if count < 60 || count > 120 { // 90 expected; ±3.8 sigma
		t.Errorf("%d of %d failed at -fail-rate 0.3", count, n)
	}
	if fmt.Sprint(fa) != fmt.Sprint(fb) {
		t.Error("same seed gave a different failure sequence")
	}
	if fmt.Sprint(fa) == fmt.Sprint(fc) {
		t.Error("different seeds gave the same failure sequence")
	}
	resp, body := get(t, a.base+"/__stats")
	var st struct{ Requests, Faults int }
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	if st.Requests != n || st.Faults != count {
		t.Errorf("stats %+v, want requests %d faults %d", st, n, count)
	}
	for i := 0; i < 50; i++ {
		resp, body := get(t, a.base+"/sites")
		if resp.StatusCode == 503 {
			var e apiErr
			if err := json.Unmarshal(body, &e); err != nil || e.Status != 503 || e.Error != "service_unavailable" {
				t.Errorf("503 body %s", body)
			}
			return
		}
	}
	t.Error("no 503 in 50 requests")
}

func TestFailReset(t *testing.T) {
	t.Parallel()
	in := start(t, "-fail-rate", "1", "-fail-mode", "reset")
	for i := 0; i < 3; i++ {
		resp, err := client.Get(in.base + "/categories/MLA97994")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got status %d, want a transport error", resp.StatusCode)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("got a timeout, want a reset: %v", err)
		}
	}
	// A raw connection sees the reset (or EOF) with no HTTP bytes at all.
	c, err := net.Dial("tcp", strings.TrimPrefix(in.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /sites HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, err %v; want 0 bytes and a reset or EOF", n, err)
	}
}

func TestFailStall(t *testing.T) {
	t.Parallel()
	in := start(t, "-fail-rate", "1", "-fail-mode", "stall", "-stall", "20s")
	c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	begin := time.Now()
	resp, err := c.Get(in.base + "/categories/MLA97994")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a client timeout", resp.StatusCode)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(begin); d < 250*time.Millisecond {
		t.Errorf("failed after %v, before the client timeout", d)
	}
	// The stall is bounded by -stall: with a short bound the connection closes.
	short := start(t, "-fail-rate", "1", "-fail-mode", "stall", "-stall", "200ms")
	begin = time.Now()
	if resp, err := client.Get(short.base + "/sites"); err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want an error", resp.StatusCode)
	}
	if d := time.Since(begin); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("stall ended after %v, want about 200ms", d)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	in := start(t, "-latency", "150ms", "-jitter", "50ms")
	for i := 0; i < 3; i++ {
		begin := time.Now()
		get(t, in.base+"/sites/MLA")
		if d := time.Since(begin); d < 150*time.Millisecond || d > 2*time.Second {
			t.Errorf("request took %v, want 150-200ms", d)
		}
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	in := start(t)
	body := bytes.Repeat([]byte("meli"), 1000)
	req, _ := http.NewRequest("PUT", in.base+"/echo?b=2&a=1&a=%2F&set=X-Extra:%20v1&set=Connection:close&status=201", bytes.NewReader(body))
	req.Header.Add("X-Forwarded-For", "10.0.0.1")
	req.Header.Add("X-Forwarded-For", "10.0.0.2, 10.0.0.3")
	req.Header.Set("X-Custom", "  spaced  ")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || resp.Header.Get("X-Extra") != "v1" {
		t.Errorf("status %d X-Extra %q, want 201 v1", resp.StatusCode, resp.Header.Get("X-Extra"))
	}
	var e echoReply
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if e.Method != "PUT" || e.Path != "/echo" || e.RawQuery != "b=2&a=1&a=%2F&set=X-Extra:%20v1&set=Connection:close&status=201" ||
		e.BodyLength != len(body) || e.BodySHA256 != hex.EncodeToString(sum[:]) || e.Proto != "HTTP/1.1" {
		t.Errorf("echo %+v", e)
	}
	if !strings.HasPrefix(e.RemoteAddr, "127.0.0.1:") {
		t.Errorf("remote_addr %q", e.RemoteAddr)
	}
	var xff []string
	var custom string
	for _, h := range e.Headers {
		switch h[0] {
		case "X-Forwarded-For":
			xff = append(xff, h[1])
		case "X-Custom":
			custom = h[1]
		}
	}
	if want := []string{"10.0.0.1", "10.0.0.2, 10.0.0.3"}; fmt.Sprint(xff) != fmt.Sprint(want) {
		t.Errorf("X-Forwarded-For lines %q, want %q", xff, want)
	}
	if custom != "spaced" {
		t.Errorf("X-Custom %q", custom)
	}
}

func TestEchoRawPath(t *testing.T) {
	t.Parallel()
	in := start(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(in.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /x/../echo?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var e echoReply
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Path != "/echo" || e.PathOriginal != "/x/../echo" || e.URI != "/x/../echo?q=1" || e.Host != "h" {
		t.Errorf("echo %+v", e)
	}
	want := [][2]string{{"Host", "h"}, {"X-A", "1"}, {"X-A", "2"}, {"Connection", "close"}}
	if fmt.Sprint(e.Headers) != fmt.Sprint(want) {
		t.Errorf("headers %q, want %q", e.Headers, want)
	}
}

func TestStatsCounter(t *testing.T) {
	t.Parallel()
	in := start(t)
	stats := func() int {
		_, body := get(t, in.base+"/__stats")
		var st struct{ Requests int }
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("stats %s: %v", body, err)
		}
		return st.Requests
	}
	before := stats()
	for _, p := range []string{"/sites", "/nothing", "/echo", "/status/500", "/items/MLA1"} {
		get(t, in.base+p)
	}
	if d := stats() - before; d != 5 {
		t.Errorf("counter moved by %d, want 5", d)
	}
}

func TestBig(t *testing.T) {
	t.Parallel()
	in := start(t)
	for _, q := range []string{"bytes=0", "bytes=1", "bytes=1048577", "bytes=100000&chunked=1"} {
		t.Run(q, func(t *testing.T) {
			resp, body := get(t, in.base+"/big?"+q)
			var n int
			fmt.Sscanf(q, "bytes=%d", &n)
			if resp.StatusCode != 200 || len(body) != n {
				t.Fatalf("status %d, %d bytes, want 200 and %d", resp.StatusCode, len(body), n)
			}
			chunked := strings.Contains(q, "chunked")
			if gotChunked := resp.ContentLength == -1; gotChunked != chunked {
				t.Errorf("Content-Length %d, chunked %v", resp.ContentLength, chunked)
			}
			for i, c := range body {
				if c != bigPattern[i%len(bigPattern)] {
					t.Fatalf("byte %d = %q", i, c)
				}
			}
		})
	}
	if resp, _ := get(t, in.base+"/big?bytes=-1"); resp.StatusCode != 400 {
		t.Errorf("bytes=-1: status %d, want 400", resp.StatusCode)
	}
}

func TestStatusAndSlow(t *testing.T) {
	t.Parallel()
	in := start(t)
	for _, code := range []int{200, 201, 204, 302, 400, 429, 500, 502, 503, 599} {
		resp, body := get(t, fmt.Sprintf("%s/status/%d", in.base, code))
		if resp.StatusCode != code {
			t.Errorf("/status/%d: got %d", code, resp.StatusCode)
		}
		if want := fmt.Sprintf(`{"status":%d}`, code); code != 204 && string(body) != want {
			t.Errorf("/status/%d: body %q, want %q", code, body, want)
		}
	}
	begin := time.Now()
	resp, _ := get(t, in.base+"/slow?d=200ms")
	if d := time.Since(begin); resp.StatusCode != 200 || d < 200*time.Millisecond {
		t.Errorf("/slow: status %d after %v", resp.StatusCode, d)
	}
	if resp, _ := get(t, in.base+"/slow?d=x"); resp.StatusCode != 400 {
		t.Errorf("/slow?d=x: status %d, want 400", resp.StatusCode)
	}
}

func TestBare(t *testing.T) {
	t.Parallel()
	in := start(t, "-bare")
	_, want := get(t, in.base+"/categories/MLA97994")
	for _, p := range []string{"/", "/anything", "/items/x", "/__stats"} {
		resp, body := get(t, in.base+p)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("%s: status %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}
	if !bytes.Contains(want, []byte(`"id":"MLA97994"`)) {
		t.Errorf("bare body %.80s", want)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	in := start(t)
	got := make(chan int, 1)
	go func() {
		resp, err := client.Get(in.base + "/slow?d=5s")
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	time.Sleep(200 * time.Millisecond)
	begin := time.Now()
	if err := in.stop(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if status := <-got; status != 200 {
		t.Errorf("in-flight request got %d, want 200", status)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-fail-rate", "2"},
		{"-fail-mode", "boom"},
		{"-latency", "-1s"},
		{"-stall", "0s"},
		{"extra"},
	} {
		err := exec.Command(binary, args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit status 2", args, err)
		}
	}
}
