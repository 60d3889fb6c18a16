// Package cputime reads the CPU time a thread or the process has used, for
// speed figures on a shared machine: time the scheduler gave to other
// guests or processes does not count, as it does in wall time.
package cputime

import (
	"syscall"
	"unsafe"
)

// The clocks of clock_gettime(2).
const (
	clockProcessCPUTime = 2 // CLOCK_PROCESS_CPUTIME_ID: every thread of the process
	clockThreadCPUTime  = 3 // CLOCK_THREAD_CPUTIME_ID: the calling thread
)

func read(clock uintptr) (int64, bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clock, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return ts.Nano(), true
}

// Thread returns the CPU time, in nanoseconds, of the calling OS thread
// (nanosecond accounting, unlike getrusage's ticks on some kernels). The
// caller locks its goroutine to the thread.
func Thread() (ns int64, ok bool) { return read(clockThreadCPUTime) }

// Process returns the CPU time, in nanoseconds, of every thread of the
// process: with GOMAXPROCS=1, the work of the one core Go code runs on,
// the garbage collector's included.
func Process() (ns int64, ok bool) { return read(clockProcessCPUTime) }
