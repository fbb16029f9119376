package cache

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestAssess(t *testing.T) {
	t.Parallel()
	r := newRule(RuleConfig{ID: "r", Paths: []string{"/*"}, TTL: time.Minute, NotFoundTTL: 10 * time.Second})
	past := fasthttp.AppendHTTPDate(nil, t0.Add(-time.Hour))
	soon := fasthttp.AppendHTTPDate(nil, t0.Add(20*time.Second))
	tests := []struct {
		name    string
		status  int
		headers []string
		want    verdict
		ttl     time.Duration
		noStale bool
	}{
		{"200", 200, nil, storable, time.Minute, false},
		{"203", 203, nil, storable, time.Minute, false},
		{"301", 301, nil, storable, time.Minute, false},
		{"404 short", 404, nil, storable, 10 * time.Second, false},
		{"206 partial", 206, nil, badStatus, 0, false},
		{"302", 302, nil, badStatus, 0, false},
		{"304", 304, nil, badStatus, 0, false},
		{"429 (RFC 6585 §4)", 429, []string{"Cache-Control: max-age=60"}, badStatus, 0, false},
		{"500", 500, nil, badStatus, 0, false},
		{"503", 503, []string{"Cache-Control: public, max-age=60"}, badStatus, 0, false},
		{"Set-Cookie", 200, []string{"Set-Cookie: s=1; Path=/"}, setCookie, 0, false},
		{"no-store", 200, []string{"Cache-Control: no-store"}, noStore, 0, false},
		{"NO-STORE mixed case among others", 200, []string{"Cache-Control: public, NO-STORE"}, noStore, 0, false},
		{"private", 200, []string{"Cache-Control: private, max-age=60"}, private, 0, false},
		{"private qualified", 200, []string{`Cache-Control: private="X-User"`}, private, 0, false},
		{"no-cache", 200, []string{"Cache-Control: no-cache"}, noCache, 0, false},
		{"max-age caps", 200, []string{"Cache-Control: public, max-age=30"}, storable, 30 * time.Second, false},
		{"max-age above rule ttl", 200, []string{"Cache-Control: max-age=3600"}, storable, time.Minute, false},
		{"max-age on second line", 200, []string{"Cache-Control: public", "Cache-Control: max-age=5"}, storable, 5 * time.Second, false},
		{"duplicate max-age keeps smallest", 200, []string{"Cache-Control: max-age=50, max-age=7"}, storable, 7 * time.Second, false},
		{"quoted max-age", 200, []string{`Cache-Control: max-age="12"`}, storable, 12 * time.Second, false},
		{"max-age=0", 200, []string{"Cache-Control: max-age=0"}, notFresh, 0, false},
		{"invalid max-age", 200, []string{"Cache-Control: max-age=soon"}, notFresh, 0, false},
		{"Age consumes max-age", 200, []string{"Cache-Control: max-age=30", "Age: 20"}, storable, 10 * time.Second, false},
		{"Age beyond max-age", 200, []string{"Cache-Control: max-age=30", "Age: 31"}, notFresh, 0, false},
		{"s-maxage wins, no stale", 200, []string{"Cache-Control: max-age=5, s-maxage=40"}, storable, 40 * time.Second, true},
		{"must-revalidate, no stale", 200, []string{"Cache-Control: max-age=30, must-revalidate"}, storable, 30 * time.Second, true},
		{"proxy-revalidate, no stale", 200, []string{"Cache-Control: proxy-revalidate"}, storable, time.Minute, true},
		{"Expires caps", 200, []string{"Expires: " + string(soon)}, storable, 20 * time.Second, false},
		{"Expires past", 200, []string{"Expires: " + string(past)}, notFresh, 0, false},
		{"Expires invalid", 200, []string{"Expires: 0"}, notFresh, 0, false},
		{"max-age beats Expires", 200, []string{"Expires: " + string(past), "Cache-Control: max-age=9"}, storable, 9 * time.Second, false},
		{"Vary *", 200, []string{"Vary: Accept-Encoding, *"}, varyStar, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var resp fasthttp.Response
			resp.SetStatusCode(tt.status)
			for _, h := range tt.headers {
				k, v, _ := strings.Cut(h, ": ")
				resp.Header.Add(k, v)
			}
			f, v := r.assess(&resp, t0)
			if v != tt.want {
				t.Fatalf("verdict %s, want %s", v, tt.want)
			}
			if v != storable {
				return
			}
			if f.ttl != tt.ttl || f.noStale != tt.noStale {
				t.Errorf("ttl %s noStale %v, want %s %v", f.ttl, f.noStale, tt.ttl, tt.noStale)
			}
		})
	}
}

func TestParseVary(t *testing.T) {
	t.Parallel()
	names, star := parseVary([][]byte{[]byte("Origin, accept-encoding"), []byte(" Accept-Encoding ,, ")})
	if want := []string{"accept-encoding", "origin"}; !slices.Equal(names, want) || star {
		t.Errorf("parseVary = %q %v, want %q false", names, star, want)
	}
}
