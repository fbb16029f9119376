// Package redistest runs a real redis-server on a loopback port for tests, the way httptest runs
// an HTTP server: the test owns the process, stops it by PID, and can restart it empty. It also
// runs the other topologies a client may be given: a master behind a Sentinel (StartSentinel) and
// a Redis Cluster of three masters (StartCluster).
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
	conf string   // config file given first; with it, args alone follow (a Sentinel)
	args []string // arguments after Start's defaults, or after conf
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a redis-server for the test and kills it at cleanup. Without redis-server installed
// the test is skipped, unless CI=true: there it fails, because .ci/deps installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	need(t, "redis-server")
	return start(t, &Server{Addr: freeAddrs(t, 1)[0]})
}

// start runs s for the test and kills it at cleanup; the cleanup is registered first, so a
// server that does not answer in time is killed too.
func start(t testing.TB, s *Server) *Server {
	t.Helper()
	s.t = t
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// need skips the test under -short (make test-short runs no external servers) and when one of
// the programs is missing, or fails it when CI=true: .ci/deps installs them there.
func need(t testing.TB, programs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no redis-server")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (CI=true): run .ci/deps: %v", p, err)
			}
			t.Skipf("%s is not installed (set CI=true to fail instead)", p)
		}
	}
}

// freeAddrs returns n loopback addresses whose ports were free a moment ago. The listeners are
// held until all n are chosen, so the n ports differ.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// Start runs redis-server on s.Addr and waits until it answers PING. After Stop it is a restart
// that has lost every key.
func (s *Server) Start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning"}
	if s.conf != "" {
		args = []string{s.conf}
	}
	cmd := exec.Command("redis-server", append(args, s.args...)...)
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
	s.t.Fatalf("redis-server on %s did not answer PING within 5s", s.Addr)
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
// scripts included, INFO and HELLO excluded. It needs a server without a password.
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
	// NOAUTH: a server with requirepass is up too.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}
