package limiter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func mustPrefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	ps, errs := parsePrefixes("test", ss)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return ps
}

// headerWith returns request headers holding one X-Forwarded-For line per
// element of xff.
func headerWith(xff ...string) *fasthttp.RequestHeader {
	var h fasthttp.RequestHeader
	for _, v := range xff {
		h.Add(fasthttp.HeaderXForwardedFor, v)
	}
	return &h
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := mustPrefixes(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"no proxy, no header", "1.2.3.4", nil, "1.2.3.4"},
		{"untrusted peer spoofs XFF", "1.2.3.4", []string{"9.9.9.9"}, "1.2.3.4"},
		{"trusted peer, one hop", "10.0.0.1", []string{"9.9.9.9"}, "9.9.9.9"},
		{"client forges left entries", "10.0.0.1", []string{"6.6.6.6, 9.9.9.9"}, "9.9.9.9"},
		{"chain of trusted hops", "10.0.0.1", []string{"9.9.9.9, 10.1.1.1, 10.2.2.2"}, "9.9.9.9"},
		{"multiple lines, last line first", "10.0.0.1", []string{"6.6.6.6", "9.9.9.9, 10.3.3.3"}, "9.9.9.9"},
		{"multiple lines, trusted to the previous line", "10.0.0.1", []string{"6.6.6.6, 8.8.8.8", "10.3.3.3"}, "8.8.8.8"},
		{"all trusted: leftmost", "10.0.0.1", []string{"10.9.9.9, 10.3.3.3"}, "10.9.9.9"},
		{"garbage stops the walk at the last trusted hop", "10.0.0.1", []string{"9.9.9.9, unknown, 10.3.3.3"}, "10.3.3.3"},
		{"garbage left of the client is ignored", "10.0.0.1", []string{"garbage, 9.9.9.9"}, "9.9.9.9"},
		{"empty elements and spaces", "10.0.0.1", []string{" 9.9.9.9 ,, ,\t"}, "9.9.9.9"},
		{"ports", "10.0.0.1", []string{"9.9.9.9:1234, [2001:db8::1]:80"}, "2001:db8::1"},
		{"mapped peer", "::ffff:10.0.0.1", []string{"9.9.9.9"}, "9.9.9.9"},
		{"mapped hop", "10.0.0.1", []string{"::ffff:9.9.9.9"}, "9.9.9.9"},
		{"IPv6 trusted peer", "2001:db8:ffff::1", []string{"2001:db8:1::42"}, "2001:db8:1::42"},
		{"zone rejected", "10.0.0.1", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"no header from trusted peer", "10.0.0.1", nil, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ClientIP(netip.MustParseAddr(tt.peer), headerWith(tt.xff...), trusted)
			if got.String() != tt.want {
				t.Fatalf("ClientIP = %v, want %s", got, tt.want)
			}
		})
	}
}

// TestClientIPLargeTrustedSet exercises the map-backed prefixSet.
func TestClientIPLargeTrustedSet(t *testing.T) {
	t.Parallel()
	var cidrs []string
	for i := range 20 {
		cidrs = append(cidrs, netip.AddrFrom4([4]byte{10, byte(i), 0, 0}).String()+"/16")
	}
	cidrs = append(cidrs, "192.168.1.7", "2001:db8::/32")
	l, err := New(Config{TrustedProxies: cidrs})
	if err != nil {
		t.Fatal(err)
	}
	for peer, want := range map[string]string{
		"10.19.3.4":   "9.9.9.9",
		"10.20.3.4":   "10.20.3.4",
		"192.168.1.7": "9.9.9.9",
		"192.168.1.8": "192.168.1.8",
		"2001:db8::5": "9.9.9.9",
	} {
		if got := l.ClientIP(netip.MustParseAddr(peer), headerWith("9.9.9.9")); got.String() != want {
			t.Errorf("peer %s: ClientIP = %v, want %s", peer, got, want)
		}
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1", "9.9.9.9, 10.1.1.1", "8.8.8.8")
	f.Add("1.2.3.4", "9.9.9.9", "")
	f.Add("10.0.0.1", "[::1]:80,garbage,,", "::ffff:10.0.0.2")
	trusted := newPrefixSet(mustPrefixes(f, "10.0.0.0/8", "::1/128"))
	f.Fuzz(func(t *testing.T, peer, line1, line2 string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		h := headerWith(line1, line2)
		lines := h.PeekAll(fasthttp.HeaderXForwardedFor)
		got := clientIP(p, h, &trusted)
		if !trusted.contains(p.Unmap()) {
			if got != p.Unmap() {
				t.Fatalf("untrusted peer %v chose its key: %v", p, got)
			}
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("invalid result %v", got)
		}
		if got == p.Unmap() {
			return
		}
		// Any other answer must literally appear in the headers.
		found := false
		for _, l := range lines {
			for _, e := range strings.Split(string(l), ",") {
				if a, ok := parseHop([]byte(strings.TrimSpace(e))); ok && a == got {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("ClientIP = %v, not in %q", got, lines)
		}
	})
}
