package controller

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// procMemory is the process's memory as /proc/self/status tells it, in
// bytes (zero where /proc is missing).
type procMemory struct {
	rss, peak, anon, file uint64
}

func processMemory() procMemory {
	var m procMemory
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseUint(fields[0], 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb * 1024
		case "VmHWM":
			m.peak = kb * 1024
		case "RssAnon":
			m.anon = kb * 1024
		case "RssFile":
			m.file = kb * 1024
		}
	}
	return m
}

// TuneRuntime sets the garbage collector for a controller process, unless
// GOGC or GOMEMLIMIT say otherwise: its live heap is small (tens of MB)
// while it allocates for every report, so collecting at four times the
// live heap rather than twice cuts the collector's CPU at full ingest, and
// a soft limit of 256 MiB on the Go heap keeps the process well inside its
// memory budget.
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(256 << 20)
	}
}
