//go:build !linux

package sdnotify

// monotonic is 0 off Linux: systemd runs only there.
func monotonic() int64 { return 0 }
