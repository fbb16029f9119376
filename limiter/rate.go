package limiter

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// maxPeriod bounds a rate's window. A year covers every quota we know of and
// keeps burst × interval far from int64 overflow.
const maxPeriod = 366 * 24 * time.Hour

// Rate is a parsed rule rate: Count requests per Period.
//
// The zero value is invalid; build one with ParseRate.
type Rate struct {
	Count  int64         // requests admitted per Period, at least 1
	Period time.Duration // window, a whole number of seconds
}

// ParseRate parses "N/U" or "N/MU": N requests per M units (M defaults to 1),
// where U is one of s, m, h, d. Examples: "10/s", "1000/m", "5/h", "100/d",
// "30/10s". N and M are decimal integers without signs or spaces.
func ParseRate(s string) (Rate, error) {
	n, per, ok := cut(s, '/')
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/unit, e.g. \"1000/m\"", s)
	}
	count, err := parsePositive(n)
	if err != nil {
		return Rate{}, fmt.Errorf("rate %q: count: %w", s, err)
	}
	if per == "" {
		return Rate{}, fmt.Errorf("rate %q: unit must be one of s, m, h, d", s)
	}
	unit, err := unitOf(per[len(per)-1])
	if err != nil {
		return Rate{}, fmt.Errorf("rate %q: %w", s, err)
	}
	mult := int64(1)
	if m := per[:len(per)-1]; m != "" {
		if mult, err = parsePositive(m); err != nil {
			return Rate{}, fmt.Errorf("rate %q: window multiplier: %w", s, err)
		}
	}
	if mult > int64(maxPeriod/unit) {
		return Rate{}, fmt.Errorf("rate %q: window longer than 366d", s)
	}
	r := Rate{Count: count, Period: time.Duration(mult) * unit}
	if count > int64(r.Period) {
		return Rate{}, fmt.Errorf("rate %q: more than one request per nanosecond", s)
	}
	return r, nil
}

// Interval returns the GCRA emission interval in nanoseconds: Period/Count
// rounded up, so that rounding can only make the limit stricter, never looser.
func (r Rate) Interval() int64 {
	return (int64(r.Period) + r.Count - 1) / r.Count
}

// String returns the canonical form accepted by ParseRate.
func (r Rate) String() string {
	unit, sym := time.Second, "s"
	for _, u := range [...]struct {
		d time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if r.Period%u.d == 0 {
			unit, sym = u.d, u.s
			break
		}
	}
	m := ""
	if k := r.Period / unit; k != 1 {
		m = strconv.FormatInt(int64(k), 10)
	}
	return strconv.FormatInt(r.Count, 10) + "/" + m + sym
}

func unitOf(c byte) (time.Duration, error) {
	switch c {
	case 's':
		return time.Second, nil
	case 'm':
		return time.Minute, nil
	case 'h':
		return time.Hour, nil
	case 'd':
		return 24 * time.Hour, nil
	}
	return 0, errors.New("unit must be one of s, m, h, d")
}

// parsePositive accepts only plain decimal digits: no sign, no spaces, no 0x.
func parsePositive(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("missing number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a positive integer", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	if n == 0 {
		return 0, errors.New("must be at least 1")
	}
	return n, nil
}

func cut(s string, sep byte) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
