package cliutil

import (
	"runtime"
	"runtime/debug"
)

// Version and Commit name the build. `make dist` sets them with
//
//	-ldflags "-X github.com/dynoml/dyno/internal/cliutil.Version=v0.3.0
//	          -X github.com/dynoml/dyno/internal/cliutil.Commit=abc123"
//
// A plain `go build` leaves them empty, and VersionString falls back to
// what Go recorded in the binary (module version, VCS revision).
var (
	Version string
	Commit  string
)

// VersionString is "VERSION (commit COMMIT, GOOS/GOARCH, GOVERSION)".
func VersionString() string {
	v, c := Version, Commit
	if bi, ok := debug.ReadBuildInfo(); ok && c == "" {
		if v == "" {
			v = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				c = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if c != "" && dirty {
			c += "-dirty"
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	return v + " (commit " + c + ", " + runtime.GOOS + "/" + runtime.GOARCH + ", " + runtime.Version() + ")"
}
