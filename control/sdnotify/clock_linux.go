package sdnotify

import (
	"syscall"
	"unsafe"
)

// monotonic returns CLOCK_MONOTONIC in nanoseconds (clock_gettime(2); vDSO-free, it runs once per
// reload).
func monotonic() int64 {
	const clockMonotonic = 1
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return ts.Nano()
}
