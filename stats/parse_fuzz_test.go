package stats

import (
	"errors"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := t0
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"now", now, true},
		{"all", time.Unix(0, 0), true},
		{"-90m", now.Add(-90 * time.Minute), true},
		{"-7d", now.Add(-7 * 24 * time.Hour), true},
		{"1773478800", time.Unix(1773478800, 0), true},
		{"2026-03-14T09:00:00Z", t0, true},
		{"2026-03-14T06:00:00-03:00", t0, true},
		{"yesterday", time.Time{}, false},
		{"-1.5d", time.Time{}, false},
		{"--1h", time.Time{}, false},
		{"-36501d", time.Time{}, false},
		{"-1", time.Time{}, false},
		{"-9223372036854775807d", time.Time{}, false},
		{"9999999999999", time.Time{}, false},
		{"0001-01-01T00:00:00Z", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseTime("from", tt.in, now)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzQueryParams checks the query parsers never panic, return ParamErrors
// that name a parameter, and accept only ordered ranges.
func FuzzQueryParams(f *testing.F) {
	for _, seed := range [][3]string{
		{"", "", ""}, {"all", "now", "5"}, {"-1h", "-5m", "20"}, {"2026-03-14T09:00:00Z", "1773478800", "x"},
		{"-7d", "", "-1"}, {"1e9", "-0s", "40"}, {"-99999999999h", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, from, to, n string) {
		a, b, err := parseRange(from, to, t0, time.Hour)
		var pe *ParamError
		switch {
		case err != nil && (!errors.As(err, &pe) || (pe.Param != "from" && pe.Param != "to")):
			t.Fatalf("parseRange(%q, %q): %v", from, to, err)
		case err == nil && !a.Before(b):
			t.Fatalf("parseRange(%q, %q) = %v, %v: not ordered", from, to, a, b)
		case err == nil && (a.Unix() < 0 || b.Unix() > maxUnix):
			t.Fatalf("parseRange(%q, %q) = %v, %v: out of range", from, to, a, b)
		}
		if k, err := parseN(n, 5, 40); err == nil && (k < 1 || k > 40) {
			t.Fatalf("parseN(%q) = %d", n, k)
		}
		for _, step := range []string{"minute", "hour", "day", n} {
			if _, err := stepOf(step); err != nil && (step == "minute" || step == "hour" || step == "day") {
				t.Fatalf("stepOf(%q): %v", step, err)
			}
		}
	})
}
