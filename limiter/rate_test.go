package limiter

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Rate
		wantErr string
	}{
		{"10/s", Rate{10, time.Second}, ""},
		{"1000/m", Rate{1000, time.Minute}, ""},
		{"5/h", Rate{5, time.Hour}, ""},
		{"100/d", Rate{100, 24 * time.Hour}, ""},
		{"30/10s", Rate{30, 10 * time.Second}, ""},
		{"1/366d", Rate{1, 366 * 24 * time.Hour}, ""},
		{"1000000000/s", Rate{1e9, time.Second}, ""},
		{"0/s", Rate{}, "at least 1"},
		{"-1/s", Rate{}, "not a positive integer"},
		{"+1/s", Rate{}, "not a positive integer"},
		{"10/x", Rate{}, "unit must be one of s, m, h, d"},
		{"10/", Rate{}, "unit must be one of s, m, h, d"},
		{"10", Rate{}, "want N/unit"},
		{"/s", Rate{}, "missing number"},
		{"10/0s", Rate{}, "at least 1"},
		{"10/367d", Rate{}, "longer than 366d"},
		{"1/99999999999999999999d", Rate{}, "out of range"},
		{"99999999999999999999/s", Rate{}, "out of range"},
		{"1000000001/s", Rate{}, "per nanosecond"},
		{" 10/s", Rate{}, "not a positive integer"},
		{"10/ s", Rate{}, "not a positive integer"},
		{"10/S", Rate{}, "unit must be"},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRate(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParseRate(%q).String() = %q", tt.in, s)
		}
	}
}

func TestRateIntervalRoundsUp(t *testing.T) {
	t.Parallel()
	r := Rate{Count: 7, Period: time.Second}
	if got := r.Interval(); got*7 < int64(time.Second) {
		t.Fatalf("Interval() = %d: 7 intervals are shorter than the period", got)
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/s", "1000/m", "5/h", "100/d", "30/10s", "0/s", "1/0m", "9223372036854775807/d", "1/", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Count < 1 || r.Period < time.Second || r.Period > maxPeriod || r.Period%time.Second != 0 {
			t.Fatalf("ParseRate(%q) = %+v: out of bounds", s, r)
		}
		if iv := r.Interval(); iv < 1 || iv*r.Count < int64(r.Period) {
			t.Fatalf("ParseRate(%q): interval %d does not cover the period", s, iv)
		}
		r2, err := ParseRate(r.String())
		if err != nil || r2 != r {
			t.Fatalf("round trip %q → %q → %+v, %v", s, r.String(), r2, err)
		}
	})
}

// FuzzRule feeds arbitrary rule text through validation and, when accepted,
// through Check: neither may panic, and an accepted rule must answer.
func FuzzRule(f *testing.F) {
	f.Add("/items/*", "ip/24/48", "10/m", "free*", "/items/MLA1?site=MLA", 3)
	f.Add("/categories/**", "header:X-Api-Key", "5/10s", "*", "/categories/x", 1)
	f.Add("**", "query:site", "1/d", "a*b", "/", 0)
	f.Fuzz(func(t *testing.T, path, key, rate, hdrGlob, uri string, cost int) {
		rc := RuleConfig{ID: "f", Paths: []string{path}, Key: []string{key, "path"}, Rate: rate,
			Headers: map[string]string{"X-Tier": hdrGlob}, Cost: cost % 8}
		l, err := New(Config{MaxKeys: 64, Rules: []RuleConfig{rc}})
		if err != nil {
			if !strings.Contains(err.Error(), `limits.rules[0] (id "f"): `) {
				t.Fatalf("error does not name the rule: %v", err)
			}
			return
		}
		r := newReq("GET", "/")
		r.SetRequestURI(uri)
		r.Header.Set("X-Tier", hdrGlob)
		var d Decision
		for i := range 3 {
			l.Check(t0.Add(time.Duration(i)), r, ip("1.2.3.4"), &d)
			if d.Verdict != Allow && d.Verdict != Limit {
				t.Fatalf("verdict %v", d.Verdict)
			}
		}
	})
}
