//go:build !linux

package ort

import "time"

// threadCPU cannot say on this platform.
func threadCPU() (time.Duration, bool) { return 0, false }
