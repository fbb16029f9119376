package stats

import (
	"testing"
	"time"
)

// TestQueryInFirstSecondOfMinute: traffic recorded and queried within the first second of a
// minute is counted; the minute's rollup is keyed by that very second.
func TestQueryInFirstSecondOfMinute(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	now := start.Add(400 * time.Millisecond)
	s, err := New(Config{DataDir: t.TempDir()}, Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs := benchRecords(22)
	for i := range rs {
		rs[i].Now = start.Add(time.Duration(10*i) * time.Millisecond)
		s.Record(&rs[i])
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	sm, err := s.Summary(now.Add(-time.Hour), now, 5)
	if err != nil || sm.Requests != 22 {
		t.Fatalf("summary at 18:00:00.4: %d requests (%v), want 22", sm.Requests, err)
	}
	sr, err := s.Series("minute", now.Add(-5*time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, p := range sr.Points {
		total += p.Requests
	}
	if total != 22 {
		t.Errorf("series total %d, want 22", total)
	}
}
