//go:build !race

package main

import (
	"testing"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestRateTargeterAllocs guards the prebuilt constant-rate targets: the
// targeter copies a struct and allocates nothing per request.
func TestRateTargeterAllocs(t *testing.T) {
	next := newRateTargets("http://127.0.0.1:1", 1).targeter()
	var tgt vegeta.Target
	if allocs := testing.AllocsPerRun(1000, func() { _ = next(&tgt) }); allocs != 0 {
		t.Errorf("targeter allocates %.0f times per request", allocs)
	}
}
