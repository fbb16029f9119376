package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// startUpstream serves h on a loopback port and returns its URL.
func startUpstream(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, NoDefaultServerHeader: true, NoDefaultContentType: true}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// startProxy runs a Proxy for upstreamURL on a loopback port and returns its address.
func startProxy(t testing.TB, upstreamURL string, tweak func(*Options)) (string, *Proxy) {
	t.Helper()
	o := Options{
		Upstream: UpstreamConfig{URL: upstreamURL, Timeout: 2 * time.Second},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln) }()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return ln.Addr().String(), p
}

// rawExchange writes a raw HTTP/1.1 request and reads one response.
func rawExchange(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp
}

// echoUpstream answers with a dump of what arrived: method, URI, host and every header line.
func echoUpstream(ctx *fasthttp.RequestCtx) {
	var b strings.Builder
	fmt.Fprintf(&b, "method=%s\nuri=%s\nhost=%s\nbody=%s\n", ctx.Method(), ctx.RequestURI(), ctx.Host(), ctx.PostBody())
	for k, v := range ctx.Request.Header.All() {
		fmt.Fprintf(&b, "h:%s=%s\n", k, v)
	}
	ctx.SetContentType("text/plain")
	ctx.SetBodyString(b.String())
}

func TestPassThrough(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/categories/MLA97994":
			ctx.Response.Header.Set("X-Request-Id", "abc")
			ctx.Response.Header.Set("Cache-Control", "max-age=300")
			ctx.SetContentType("application/json;charset=UTF-8")
			ctx.SetBodyString(`{"id":"MLA97994","name":"iPod"}`)
		case "/fail":
			ctx.SetStatusCode(500)
			ctx.Response.Header.Set("X-Err", "1")
			ctx.SetBodyString(`{"message":"boom"}`)
		case "/missing":
			ctx.SetStatusCode(404)
			ctx.SetBodyString(`{"message":"Category not found","error":"not_found","status":404,"cause":[]}`)
		default:
			echoUpstream(ctx)
		}
	})
	addr, _ := startProxy(t, up, nil)
	c := &fasthttp.Client{}

	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string // substring
		wantHeader               [2]string
	}{
		{"get json", "GET", "/categories/MLA97994", "", 200, `{"id":"MLA97994","name":"iPod"}`, [2]string{"X-Request-Id", "abc"}},
		{"5xx unchanged", "GET", "/fail", "", 500, `{"message":"boom"}`, [2]string{"X-Err", "1"}},
		{"404 unchanged", "GET", "/missing", "", 404, `"error":"not_found"`, [2]string{"Content-Length", "76"}},
		{"query", "GET", "/echo?b=2&a=1&a=3", "", 200, "uri=/echo?b=2&a=1&a=3\n", [2]string{}},
		{"post body", "POST", "/echo", `{"x":1}`, 200, "method=POST\nuri=/echo\nhost=" + strings.TrimPrefix(up, "http://") + "\nbody={\"x\":1}\n", [2]string{}},
		{"patch", "PATCH", "/echo/1", "abc", 200, "method=PATCH", [2]string{}},
		{"delete", "DELETE", "/echo/1", "", 200, "method=DELETE", [2]string{}},
		{"normalised path", "GET", "/a/../b//c/%2e%2e/d", "", 200, "uri=/b/d\n", [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + addr + tt.path)
			req.Header.SetMethod(tt.method)
			if tt.body != "" {
				req.SetBodyString(tt.body)
			}
			if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode(), tt.wantStatus)
			}
			if !bytes.Contains(resp.Body(), []byte(tt.wantBody)) {
				t.Errorf("body %q does not contain %q", resp.Body(), tt.wantBody)
			}
			if k := tt.wantHeader[0]; k != "" {
				if got := string(resp.Header.Peek(k)); got != tt.wantHeader[1] {
					t.Errorf("header %s = %q, want %q", k, got, tt.wantHeader[1])
				}
			}
		})
	}
}

func TestHopByHopRemoved(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		echoUpstream(ctx)
		ctx.Response.Header.Set("Connection", "X-Up-Secret")
		ctx.Response.Header.Set("X-Up-Secret", "1")
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.Response.Header.Set("Proxy-Authenticate", "Basic")
		ctx.Response.Header.Set("X-End-To-End", "kept")
	})
	addr, _ := startProxy(t, up, nil)
	resp := rawExchange(t, addr, "GET /echo HTTP/1.1\r\nHost: client.example\r\n"+
		"Connection: keep-alive, X-Secret\r\nConnection: X-Other\r\nX-Secret: 1\r\nX-Other: 2\r\n"+
		"Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Kept: yes\r\n\r\n")
	body := string(resp.Body())
	for _, gone := range []string{"X-Secret", "X-Other", "Keep-Alive", "Te", "Upgrade", "Proxy-Connection", "Proxy-Authorization", "Connection"} {
		if strings.Contains(body, "h:"+gone+"=") {
			t.Errorf("upstream received hop-by-hop %s:\n%s", gone, body)
		}
	}
	if !strings.Contains(body, "h:X-Kept=yes") {
		t.Errorf("end-to-end header lost:\n%s", body)
	}
	for _, gone := range []string{"X-Up-Secret", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Peek(gone); v != nil {
			t.Errorf("client received hop-by-hop %s: %q", gone, v)
		}
	}
	if string(resp.Header.Peek("X-End-To-End")) != "kept" {
		t.Errorf("end-to-end response header lost")
	}
	if resp.ConnectionClose() {
		t.Errorf("upstream's Connection header closed the client connection")
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echoUpstream)
	addr, _ := startProxy(t, up, nil)
	resp := rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n"+
		"X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-Proto: https\r\nVia: 1.0 fred\r\n\r\n")
	body := string(resp.Body())
	for _, want := range []string{
		"h:X-Forwarded-For=10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1\n",
		"h:X-Forwarded-Proto=http\n",
		"h:Via=1.0 fred, 1.1 meliproxy\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("upstream did not get %q:\n%s", want, body)
		}
	}
}

func TestAbsoluteFormGoesToUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echoUpstream)
	upHost := strings.TrimPrefix(up, "http://")
	addr, _ := startProxy(t, up, nil)
	resp := rawExchange(t, addr, "GET http://evil.example:1/steal?q=1 HTTP/1.1\r\nHost: good.example\r\n\r\n")
	body := string(resp.Body())
	if resp.StatusCode() != 200 || !strings.Contains(body, "uri=/steal?q=1\n") || !strings.Contains(body, "host="+upHost+"\n") {
		t.Fatalf("absolute-form request not pinned to the upstream: %d\n%s", resp.StatusCode(), body)
	}
}

func TestPreserveHost(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echoUpstream)
	addr, _ := startProxy(t, up, func(o *Options) { o.Upstream.PreserveHost = true })
	resp := rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: client.example\r\n\r\n")
	if !strings.Contains(string(resp.Body()), "host=client.example\n") {
		t.Fatalf("client Host not preserved:\n%s", resp.Body())
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: bind, note it, close.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := ln.Addr().String()
	ln.Close()

	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	slowUp := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		select {
		case <-stall:
		case <-time.After(5 * time.Second):
		}
	})
	bigUp := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(make([]byte, 64<<10)) })

	tests := []struct {
		name       string
		upstream   string
		tweak      func(*Options)
		method     string
		wantStatus int
		wantKind   string
		minTime    time.Duration
		maxTime    time.Duration
	}{
		{"refused", "http://" + deadAddr, nil, "GET", 502, "unreachable", 0, time.Second},
		{"refused post", "http://" + deadAddr, nil, "POST", 502, "unreachable", 0, time.Second},
		{"unresolvable", "http://no-such-host.invalid", nil, "GET", 502, "unreachable", 0, 3 * time.Second},
		{"stalled", slowUp, func(o *Options) { o.Upstream.Timeout = 300 * time.Millisecond }, "GET", 504, "timeout", 280 * time.Millisecond, 1500 * time.Millisecond},
		{"too large", bigUp, func(o *Options) { o.Upstream.MaxResponseBytes = 1024 }, "GET", 502, "too_large", 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, p := startProxy(t, tt.upstream, tt.tweak)
			start := time.Now()
			resp := rawExchange(t, addr, tt.method+" /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
			took := time.Since(start)
			if resp.StatusCode() != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode(), tt.wantStatus, resp.Body())
			}
			want := fmt.Sprintf(`"status":%d}`, tt.wantStatus)
			if !bytes.Contains(resp.Body(), []byte(want)) || string(resp.Header.ContentType()) != "application/json" {
				t.Errorf("error body %q is not the JSON error", resp.Body())
			}
			if took < tt.minTime || took > tt.maxTime {
				t.Errorf("took %v, want between %v and %v", took, tt.minTime, tt.maxTime)
			}
			var m bytes.Buffer
			p.WriteMetrics(&m)
			if want := `meliproxy_upstream_errors_total{kind="` + tt.wantKind + `"} 1`; !strings.Contains(m.String(), want) {
				t.Errorf("metrics lack %s:\n%s", want, m.String())
			}
		})
	}
}

func TestPoolExhaustedIs503(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) { <-release })
	addr, _ := startProxy(t, up, func(o *Options) {
		o.Upstream.MaxConns = 1
		o.Upstream.MaxConnWait = 50 * time.Millisecond
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // occupies the only upstream connection
		defer wg.Done()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
		_, _ = bufio.NewReader(conn).ReadByte()
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	resp := rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	close(release)
	wg.Wait()
	if resp.StatusCode() != 503 {
		t.Fatalf("status %d, want 503", resp.StatusCode())
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("pool exhaustion took %v to answer", took)
	}
}

func TestServerLimits(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echoUpstream)
	addr, _ := startProxy(t, up, func(o *Options) {
		o.Server.MaxBodyBytes = 1024
		o.Server.MaxHeaderBytes = 2048
	})
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"body too large", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n" + strings.Repeat("a", 4096), 413},
		{"header too large", "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 4096) + "\r\n\r\n", 431},
		{"duplicate content-length", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"missing host", "GET /x HTTP/1.1\r\n\r\n", 400},
		{"duplicate host", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawExchange(t, addr, tt.raw)
			if resp.StatusCode() != tt.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode(), tt.want, resp.Body())
			}
		})
	}
}

func TestSlowClientIsCut(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echoUpstream)
	addr, _ := startProxy(t, up, func(o *Options) { o.Server.ReadTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: a\r\n") // never finishes the head
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 408 ")) {
		t.Errorf("slow client got %q, want 408", got)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("slow client kept for %v", took)
	}
}
