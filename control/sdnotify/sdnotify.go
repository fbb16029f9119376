// Package sdnotify tells systemd about a Type=notify service's state over $NOTIFY_SOCKET
// (sd_notify(3)), without libsystemd: one datagram per state change on a unix socket.
package sdnotify

import (
	"net"
	"strconv"
	"time"
)

// Notifier sends state changes to systemd. The zero value and a nil *Notifier send nothing (not run
// by systemd, or Type=simple), so callers need no checks. It is safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier for socket, the value of $NOTIFY_SOCKET ("" = not under systemd). A
// leading "@" names an abstract socket, which the net package handles.
func New(socket string) *Notifier {
	if socket == "" {
		return nil
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}
}

// Send sends one state message such as "READY=1" or "STATUS=draining". Lines are joined with "\n".
func (n *Notifier) Send(lines ...string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var msg []byte
	for i, l := range lines {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, l...)
	}
	_, err = conn.Write(msg)
	return err
}

// Ready says start-up (or a reload) finished: systemd considers the service started (or
// reloaded). status is shown by systemctl status.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+status)
}

// Reloading says a reload began; send Ready when it ends, whatever its outcome. systemd 253+
// requires MONOTONIC_USEC, CLOCK_MONOTONIC at the time of the message, to match reload requests.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1", "STATUS=draining")
}

// monotonicUsec reads CLOCK_MONOTONIC in microseconds. Go's own monotonic clock reading is not
// exposed, and systemd compares against CLOCK_MONOTONIC itself.
func monotonicUsec() int64 {
	return monotonic() / int64(time.Microsecond)
}
