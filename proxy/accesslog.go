package proxy

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON object per request. Lines are buffered and flushed at least once a second,
// so the log costs one lock and an append per request, not one write system call.
type accessLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	buf  []byte
	stop chan struct{}
	done chan struct{}
}

func newAccessLog(w io.Writer) *accessLog {
	a := &accessLog{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go a.flushLoop()
	return a
}

func (a *accessLog) flushLoop() {
	defer close(a.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.flush()
		case <-a.stop:
			return
		}
	}
}

func (a *accessLog) flush() {
	a.mu.Lock()
	_ = a.w.Flush() // an unwritable access log must not fail requests
	a.mu.Unlock()
}

// close stops the flusher and writes what is buffered.
func (a *accessLog) close() {
	close(a.stop)
	<-a.done
	a.flush()
}

// write appends the line for a finished exchange.
func (a *accessLog) write(x *exchange, end time.Time) {
	ctx := x.ctx
	a.mu.Lock()
	b := a.buf[:0]
	b = append(b, `{"time":"`...)
	b = x.now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","client":"`...)
	b = x.client.AppendTo(b)
	b = append(b, `","method":`...)
	b = appendJSONString(b, ctx.Method())
	b = append(b, `,"path":`...)
	b = appendJSONString(b, ctx.Path())
	b = append(b, `,"query":`...)
	b = appendJSONString(b, ctx.URI().QueryString())
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(len(ctx.Response.Body())), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(end.Sub(x.now))/1e6, 'f', 3, 64)
	b = append(b, `,"upstream_ms":`...)
	b = strconv.AppendFloat(b, float64(x.upstream)/1e6, 'f', 3, 64)
	b = append(b, `,"cache":"`...)
	b = append(b, x.cacheResult.String()...)
	b = append(b, `","limit":"`...)
	lr, rule := x.limitResult()
	b = append(b, lr.String()...)
	b = append(b, '"')
	if rule != "" {
		b = append(b, `,"rule":"`...)
		b = append(b, rule...) // rule ids are [A-Za-z0-9._-] (limiter validates them): nothing to escape
		b = append(b, '"')
	}
	if x.err != nil {
		b = append(b, `,"error":"`...)
		b = append(b, x.err.kind...)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	_, _ = a.w.Write(b)
	a.buf = b
	a.mu.Unlock()
}

// appendJSONString appends s as a JSON string. strconv.AppendQuote is Go syntax, not JSON: it
// writes \x01 for a control byte, which JSON parsers reject, and paths hold whatever the client
// percent-encoded. Bytes that are not valid UTF-8 become U+FFFD, as encoding/json does.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\\ufffd"...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}
