package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meliproxy/meliproxy/internal/syncbuf"
)

func TestAccessLogLines(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/fail" {
			ctx.SetStatusCode(500)
		}
		ctx.SetBodyString("hello")
	})
	var out syncbuf.Buffer
	p, err := New(Options{
		Upstream:  UpstreamConfig{URL: up},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		AccessLog: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = p.Serve(ln) }()
	addr := ln.Addr().String()
	for _, raw := range []string{
		"GET /ok?q=\"x\" HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /fail HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	} {
		rawExchange(t, addr, raw)
	}
	if err := p.Shutdown(t.Context()); err != nil { // flushes the log
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d access lines, want 2:\n%s", len(lines), out.String())
	}
	type line struct {
		Time     time.Time `json:"time"`
		Client   string    `json:"client"`
		Method   string    `json:"method"`
		Path     string    `json:"path"`
		Query    string    `json:"query"`
		Status   int       `json:"status"`
		Bytes    int       `json:"bytes"`
		Cache    string    `json:"cache"`
		Limit    string    `json:"limit"`
		Duration float64   `json:"duration_ms"`
	}
	want := []line{
		{Client: "127.0.0.1", Method: "GET", Path: "/ok", Query: `q="x"`, Status: 200, Bytes: 5, Cache: "BYPASS", Limit: "allowed"},
		{Client: "127.0.0.1", Method: "POST", Path: "/fail", Status: 500, Bytes: 5, Cache: "BYPASS", Limit: "allowed"},
	}
	for i, l := range lines {
		var got line
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, l)
		}
		if got.Time.IsZero() || got.Duration <= 0 {
			t.Errorf("line %d lacks time or duration: %s", i, l)
		}
		got.Time, got.Duration = time.Time{}, 0
		if got != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got, want[i])
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "/items/MLA1", `q="x"&a=\`, "\x00\x01\x1f\x7f", "/caf\xc3\xa9", "/bad\xff\xfe", "tab\tnl\n", "\u2028"} {
		out := appendJSONString(nil, []byte(in))
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Errorf("%q -> %s: not JSON: %v", in, out, err)
			continue
		}
		want, _ := json.Marshal(in) // encoding/json's reading of the same bytes
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Errorf("%q -> %q, encoding/json reads it as %q", in, got, wantS)
		}
	}
}

// FuzzAppendJSONString: any bytes a client puts in a path or query give a valid JSON string that
// decodes to what encoding/json makes of the same bytes.
func FuzzAppendJSONString(f *testing.F) {
	f.Add([]byte("/items/MLA1?q=\"a\"\\b"))
	f.Add([]byte("\x00\xff\xc3"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := appendJSONString(nil, in)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %s: not JSON: %v", in, out, err)
		}
		want, _ := json.Marshal(string(in))
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("%q -> %q, encoding/json: %q", in, got, wantS)
		}
	})
}
