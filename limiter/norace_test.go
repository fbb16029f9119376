//go:build !race

package limiter

import (
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const raceEnabled = false

// TestCheckAllocs proves the hot paths allocate nothing: allowed with
// headers, limited with headers and body, denied, shadow, and a new key.
func TestCheckAllocs(t *testing.T) {
	l := newLimiter(t, Config{
		TrustedProxies: []string{"10.0.0.0/8"},
		Deny:           []string{"6.6.6.6"},
		Rules: []RuleConfig{
			{ID: "items-ip", Paths: []string{"/items/*"}, Key: []string{"ip", "path", "header:X-Api-Key", "query:site"}, Rate: "10/m"},
			{ID: "shadow", Paths: []string{"/items/**"}, Rate: "1/m", Action: "shadow"},
			{ID: "ua", UserAgents: []string{"*bot*"}, Headers: map[string]string{"X-Api-Key": "*"}, Rate: "1000/m"},
		},
	})
	r := newReq("GET", "/items/MLA1?site=MLA", "X-Api-Key", "k", "User-Agent", "somebot", "X-Forwarded-For", "9.9.9.9, 10.1.1.1")
	var d Decision
	var resp fasthttp.ResponseHeader
	var body []byte
	peer := netip.MustParseAddr("10.0.0.1")
	later := t0
	cases := []struct {
		name string
		f    func()
	}{
		{"allowed", func() {
			later = later.Add(time.Hour) // buckets full again every call
			l.Check(later, r, l.ClientIP(peer, &r.Header), &d)
			if d.Verdict != Allow {
				t.Fatal("allowed case was not allowed")
			}
			d.WriteHeaders(&resp)
		}},
		{"limited", func() {
			l.Check(t0, r, l.ClientIP(peer, &r.Header), &d)
			d.WriteHeaders(&resp)
			body = d.AppendBody(body[:0])
			if d.Verdict != Limit {
				t.Fatal("limited case was not limited")
			}
		}},
		{"denied", func() {
			l.Check(t0, r, netip.MustParseAddr("6.6.6.6"), &d)
			body = d.AppendBody(body[:0])
			if d.Verdict != Deny {
				t.Fatal("denied case was not denied")
			}
		}},
	}
	admitted(l, t0, r, netip.MustParseAddr("9.9.9.9"), 20) // make "limited" limited
	for _, c := range cases {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s: %v allocs per Check, want 0", c.name, n)
		}
	}
	var i uint32
	newKey := func() {
		i++
		a := netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Check(t0, r, a, &d)
	}
	if n := testing.AllocsPerRun(1000, newKey); n != 0 {
		t.Errorf("new key: %v allocs per Check, want 0", n)
	}
}
