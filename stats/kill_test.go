package stats

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const killInterval = 200 * time.Millisecond

// TestKillHelper is the child of TestKill9: it records forever, printing
// "<total recorded>" after each batch, until SIGKILLed. It does nothing
// unless started by TestKill9.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv("STATS_KILL_DIR")
	if dir == "" {
		t.Skip("helper process for TestKill9")
	}
	s, err := New(Config{DataDir: dir, FlushInterval: killInterval}, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	r := &Record{Status: 200, Path: []byte("/items/MLA1"), ClientIP: netip.MustParseAddr("192.0.2.1")}
	for total := 0; ; {
		for range 50 {
			r.Now = time.Now()
			s.Record(r)
		}
		total += 50
		fmt.Println(total)
		time.Sleep(2 * time.Millisecond)
	}
}

// TestKill9 SIGKILLs a recording process and checks the store holds
// everything recorded up to one flush interval (plus scheduling slack)
// before the kill.
func TestKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.v=false")
	cmd.Env = append(os.Environ(), "STATS_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type mark struct {
		at    time.Time
		total int
	}
	var mu sync.Mutex
	var marks []mark
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
				mu.Lock()
				marks = append(marks, mark{time.Now(), n})
				mu.Unlock()
			}
		}
	}()
	time.Sleep(5 * killInterval)
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(marks) == 0 {
		t.Fatal("helper printed nothing")
	}
	// Everything recorded before killed - interval - slack must be stored.
	safe, last := 0, marks[len(marks)-1].total
	for _, m := range marks {
		if m.at.Before(killed.Add(-killInterval - 100*time.Millisecond)) {
			safe = m.total
		}
	}
	s, clk := newTest(t, dir, Options{})
	clk.Set(time.Now())
	sm, err := s.Summary(time.Now().Add(-time.Hour), time.Now().Add(time.Minute), 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded ≥%d, stored %d, safe point %d", last, sm.Requests, safe)
	if int(sm.Requests) < safe || int(sm.Requests) > last+50 || sm.Requests == 0 {
		t.Errorf("stored %d requests; want between %d (one interval before the kill) and %d", sm.Requests, safe, last+50)
	}
}
