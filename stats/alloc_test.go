//go:build !race

package stats

import (
	"net/netip"
	"testing"
)

// TestRecordNoAllocs proves Record allocates nothing in steady state, with
// known keys and with new clients entering the sketches.
func TestRecordNoAllocs(t *testing.T) {
	s, _ := newTest(t, "", Options{})
	rs := benchRecords(256)
	for i := range rs { // warm up: routes, rules and the minute slot exist
		s.Record(&rs[i])
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { s.Record(&rs[i&255]); i++ }); n != 0 {
		t.Errorf("Record: %v allocs/op, want 0", n)
	}
	r := rs[0]
	if n := testing.AllocsPerRun(1000, func() {
		i++
		r.ClientIP = netip.AddrFrom4([4]byte{172, byte(i >> 16), byte(i >> 8), byte(i)})
		s.Record(&r)
	}); n != 0 {
		t.Errorf("Record with new clients: %v allocs/op, want 0", n)
	}
}
