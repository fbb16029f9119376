package limiter

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

// redisServer is a redis-server started by a test on a loopback port, with
// persistence off. It owns the process: stop kills it by PID, start runs a
// new one on the same port (a restart that loses every key).
type redisServer struct {
	t    testing.TB
	addr string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// needRedis skips the test when redis-server is not installed, unless CI=true,
// where a missing server is a failure (.ci/deps installs it).
func needRedis(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (CI=true): run .ci/deps: %v", err)
		}
		t.Skip("redis-server is not installed (set CI=true to fail instead)")
	}
}

// startRedis runs a redis-server for the test; it is killed at cleanup.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	needRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{t: t, addr: ln.Addr().String()}
	ln.Close()
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs redis-server on s.addr and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
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
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ping(s.addr) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not answer PING", s.addr)
}

// stop kills the server by PID and waits for it; a no-op when stopped.
func (s *redisServer) stop() {
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

// commands returns the commands Redis has executed (INFO commandstats), the
// ones scripts ran included, INFO itself excluded.
func (s *redisServer) commands() int64 {
	s.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.addr, DisableIdentity: true, Protocol: 2})
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
