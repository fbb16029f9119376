package cache

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestMatchParsedRequests runs the bypass decision on requests parsed from the wire, as the
// server hands them over: header names in any case, bodies announced either way.
func TestMatchParsedRequests(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, testConfig(nil))
	st := c.state.Load()
	tests := []struct {
		raw       string
		cacheable bool
	}{
		{"GET /categories/MLA1 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"HEAD /categories/MLA1 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /categories/MLA1?b=1&a=2 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /api/../categories/MLA1 HTTP/1.1\r\nHost: x\r\n\r\n", true}, // normalised path
		{"GET /categories/MLA1 HTTP/1.1\r\nHost: x\r\nauthorization: Bearer t\r\n\r\n", false},
		{"GET /categories/MLA1 HTTP/1.1\r\nHost: x\r\nCOOKIE: s=1\r\n\r\n", false},
		{"GET /categories/MLA1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", false},
		{"GET /categories/MLA1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", false},
		{"GET /categories/MLA1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
		{"OPTIONS /categories/MLA1 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /items/MLA1 HTTP/1.1\r\nHost: x\r\n\r\n", false},
	}
	for _, tt := range tests {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(tt.raw))); err != nil {
			t.Fatalf("%q: %v", tt.raw, err)
		}
		if r, _ := st.match(&req); (r != nil) != tt.cacheable {
			t.Errorf("%q: cacheable = %v, want %v", tt.raw, r != nil, tt.cacheable)
		}
	}
}
