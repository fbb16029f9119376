package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNotifier(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	n := New(path)
	if err := n.Ready("serving"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "READY=1\nSTATUS=serving" {
		t.Errorf("ready: %q", got)
	}
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	got := read()
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("reloading: %q", got)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec <= 0 {
		t.Errorf("MONOTONIC_USEC %q: want a positive integer", lines[1])
	}
	if err := n.Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STOPPING=1\nSTATUS=draining" {
		t.Errorf("stopping: %q", got)
	}
}

func TestNotifierOff(t *testing.T) {
	t.Parallel()
	var nilN *Notifier
	for _, n := range []*Notifier{New(""), nilN, {}} {
		if err := n.Ready("x"); err != nil {
			t.Errorf("Ready on an off notifier: %v", err)
		}
	}
	if err := New(filepath.Join(t.TempDir(), "missing.sock")).Ready("x"); err == nil {
		t.Error("no error for a missing socket")
	}
}

func TestMonotonicAdvances(t *testing.T) {
	t.Parallel()
	a := monotonic()
	time.Sleep(2 * time.Millisecond)
	if b := monotonic(); b-a < int64(time.Millisecond) {
		t.Errorf("CLOCK_MONOTONIC moved %dns over 2ms", b-a)
	}
}
