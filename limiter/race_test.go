//go:build race

package limiter

// raceEnabled shrinks the heaviest tests: the race detector makes each
// atomic operation ~50× slower.
const raceEnabled = true
