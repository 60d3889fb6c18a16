//go:build !linux

// Package cputime reads the CPU time a thread or the process has used; on
// this system it cannot, and says so.
package cputime

// Thread is not available here.
func Thread() (ns int64, ok bool) { return 0, false }

// Process is not available here.
func Process() (ns int64, ok bool) { return 0, false }
