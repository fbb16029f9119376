package main

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// faultMode is what a failing request gets.
type faultMode int

const (
	fault5xx   faultMode = iota // 503 with an API error body
	faultReset                  // the connection is reset (RST) without a response
	faultStall                  // no response until the client gives up, -stall passes or shutdown
)

func parseFaultMode(s string) (faultMode, error) {
	switch s {
	case "5xx":
		return fault5xx, nil
	case "reset":
		return faultReset, nil
	case "stall":
		return faultStall, nil
	}
	return 0, fmt.Errorf("-fail-mode %q: must be one of 5xx, reset, stall", s)
}

// Random streams: each decision about request n draws from its own stream so
// that, for example, changing -jitter does not change which requests fail.
const (
	streamFail uint64 = iota + 1
	streamJitter
)

// draw returns a uniform float64 in [0, 1) that depends only on seed, the
// request sequence number n and the stream. Deterministic and lock-free:
// with a fixed seed and requests sent one at a time, the same requests fail
// on every run.
func draw(seed, n, stream uint64) float64 {
	return float64(splitmix64(seed^(n*0x9e3779b97f4a7c15)^(stream<<56))>>11) / (1 << 53)
}

// splitmix64 is the finaliser of SplitMix64 (Steele, Lea, Flood 2014): a
// cheap, well-mixed bijection on uint64.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// injectFault answers ctx with the configured fault.
func (s *server) injectFault(ctx *fasthttp.RequestCtx) {
	s.faults.Add(1)
	switch s.cfg.failMode {
	case fault5xx:
		s.writeJSON(ctx, fasthttp.StatusServiceUnavailable, unavailable)
	case faultReset:
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(resetConn)
	case faultStall:
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(s.stallConn)
	}
}

// resetConn makes the close that fasthttp performs after the hijack handler
// returns an RST instead of a FIN: SO_LINGER 0 discards unsent data and
// aborts. The client sees "connection reset by peer" (or EOF if it was not
// reading yet); either way it gets no HTTP response.
func resetConn(c net.Conn) {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// stallConn holds the connection open without answering. It returns when the
// client closes (the read sees EOF), after -stall, or at shutdown; fasthttp
// then closes the connection.
func (s *server) stallConn(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.stall))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.done:
			_ = c.SetReadDeadline(time.Now())
		case <-stop:
		}
	}()
	_, _ = io.Copy(io.Discard, c)
}
