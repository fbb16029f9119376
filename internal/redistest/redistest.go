// Package redistest runs a real redis-server on a loopback port for tests, the way httptest runs
// an HTTP server: the test owns the process, stops it by PID, and can restart it empty.
package redistest

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server started by a test, persistence off. It is safe for concurrent use.
type Server struct {
	// Addr is the server's loopback host:port; it stays the same across Stop and Start.
	Addr string

	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a redis-server for the test and kills it at cleanup. Without redis-server installed
// the test is skipped, unless CI=true: there it fails, because .ci/deps installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (CI=true): run .ci/deps: %v", err)
		}
		t.Skip("redis-server is not installed (set CI=true to fail instead)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Addr: ln.Addr().String()}
	ln.Close()
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start runs redis-server on s.Addr and waits until it answers PING. After Stop it is a restart
// that has lost every key.
func (s *Server) Start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ping(s.Addr) {
			return
		}
	}
	s.t.Fatalf("redis-server on %s did not answer PING", s.Addr)
}

// Stop kills the server by PID and waits for it; a no-op when stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Commands returns how many commands the server has executed (INFO commandstats), those run by
// scripts included, INFO and HELLO excluded.
func (s *Server) Commands() int64 {
	s.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true, Protocol: 2})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		s.t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || name == "cmdstat_info" || name == "cmdstat_hello" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		c, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			s.t.Fatalf("commandstats line %q", line)
		}
		n += c
	}
	return n
}

func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}
