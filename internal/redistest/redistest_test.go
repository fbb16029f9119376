package redistest

import "testing"

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if !ping(s.Addr) {
		t.Fatal("no PONG after Start")
	}
	before := s.Commands()
	s.Stop()
	if ping(s.Addr) {
		t.Fatal("still answering after Stop")
	}
	s.Start()
	if !ping(s.Addr) {
		t.Fatal("no PONG after restart")
	}
	if after := s.Commands(); after > before {
		t.Errorf("a restarted server kept its command counts: %d then %d", before, after)
	}
}
