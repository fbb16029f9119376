//go:build linux

package stats

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFullDisk fills a real (tmpfs) file system under the store and says what happens: requests
// keep being recorded, every flush fails with ENOSPC and keeps its minutes queued, the status and
// the metrics say so, and once space is freed the next flush writes everything: a restart then
// finds every request. It needs root to mount the tmpfs and is skipped without it.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mounting a 1 MiB tmpfs to fill needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})

	h := &countingHandler{}
	s, clk := newTest(t, dir, Options{Logger: slog.New(h)})
	record := func(minute, n int) {
		clk.Set(t0.Add(time.Duration(minute) * time.Minute))
		for i := range n {
			s.Record(&Record{Now: clk.Now(), Status: 200, Path: fmt.Appendf(nil, "/items/MLA%d-%d", minute, i),
				ClientIP: netip.AddrFrom4([4]byte{10, byte(minute), byte(i >> 8), byte(i)}), BytesOut: 100})
		}
	}
	record(0, 100)
	if err := s.Flush(); err != nil {
		t.Fatalf("flush with space left: %v", err)
	}

	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	// Every minute from here on is recorded while the disk is full. bbolt writes new pages into
	// a sparse file on tmpfs, so a flush fails as soon as one needs a page the disk cannot give.
	total, failed := 100, 0
	for m := 1; m <= 60 && failed < 3; m++ {
		record(m, 100)
		total += 100
		if err := s.Flush(); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("flush %d on a full disk: %v, want ENOSPC", m, err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("60 minutes flushed to a full disk without one error: the test did not fill it")
	}
	st := s.storeStatus()
	if st.OK || st.Pending == 0 || st.Error == "" {
		t.Errorf("status on a full disk = %+v, want not ok, minutes pending, the error", st)
	}
	if n := h.errors.Load(); n != 1 {
		t.Errorf("logged %d errors, want 1 (once when writes start failing)", n)
	}
	// Queries include the queued minutes: answers do not freeze at the last good flush.
	sm, err := s.Summary(t0, t0.Add(2*time.Hour), 5)
	if err != nil || sm.Requests != uint64(total) {
		t.Errorf("summary while the disk is full: %v requests (err %v), want %d", sm.Requests, err, total)
	}
	for _, step := range []string{"minute", "hour"} {
		sr, err := s.Series(step, t0, t0.Add(2*time.Hour))
		var sum uint64
		for _, p := range sr.Points {
			sum += p.Requests
		}
		if err != nil || sum != uint64(total) {
			t.Errorf("%s series while the disk is full: %d requests (err %v), want %d", step, sum, err, total)
		}
	}
	if rep, err := s.StatusByPeriod("hour", t0, t0.Add(2*time.Hour)); err != nil || len(rep.Periods) != 1 || rep.Periods[0].Requests != uint64(total) {
		t.Errorf("status by hour while the disk is full: %+v (err %v), want one hour of %d", rep, err, total)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush after space was freed: %v", err)
	}
	if st := s.storeStatus(); !st.OK || st.Pending != 0 || h.infos.Load() != 1 {
		t.Errorf("after recovery: status %+v, %d recovery logs; want ok, nothing pending, 1", st, h.infos.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart reads only the store: every request recorded while the disk was full is there.
	s2, _ := newTest(t, dir, Options{})
	sm, err = s2.Summary(t0, t0.Add(2*time.Hour), 5)
	if err != nil || sm.Requests != uint64(total) {
		t.Errorf("after restart: %v requests (err %v), want %d", sm.Requests, err, total)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for range 1 << 12 { // 16 MiB at most: the file system is 1 MiB
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
	t.Fatal("fill: wrote 16 MiB to a 1 MiB file system")
}
