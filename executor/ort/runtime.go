// Package ort wraps ONNX Runtime (through github.com/yalue/onnxruntime_go)
// for the executor: loading the shared library once per process, running
// block sessions and chains of them, measuring a whole model's tensors for
// the splitter (Prober, a model.ShapeProber) and checking a split against
// the whole model (CheckSplit). It is the only package that imports
// onnxruntime_go.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// EnvLib names the environment variable that points at libonnxruntime.so.
const EnvLib = "ORT_LIB"

// ErrNoLibrary is returned when no ONNX Runtime library can be found.
var ErrNoLibrary = errors.New("ort: ONNX Runtime library not found (run `make deps`, or set ORT_LIB to libonnxruntime.so)")

var (
	initOnce sync.Once
	initErr  error
	initPath string
)

// LibraryPath finds the shared library: $ORT_LIB; else the copy a release
// tarball (`make dist`) ships in lib/ beside bin/ of the executable; else
// the copy `make deps` fetches into .cache/onnxruntime of the repository
// (searched upwards from the working directory).
func LibraryPath() (string, error) {
	if p := os.Getenv(EnvLib); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNoLibrary, EnvLib, p, err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			p := filepath.Join(filepath.Dir(exe), "..", "lib", "libonnxruntime.so.1")
			if _, err := os.Stat(p); err == nil {
				return filepath.Clean(p), nil
			}
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".cache", "onnxruntime", "libonnxruntime.so.1")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoLibrary
		}
		dir = parent
	}
}

// Init loads the library once per process; later calls return the first
// result. path "" means LibraryPath.
func Init(path string) error {
	initOnce.Do(func() {
		if path == "" {
			path, initErr = LibraryPath()
			if initErr != nil {
				return
			}
		}
		initPath = path
		onnx.SetSharedLibraryPath(path)
		if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("ort: load %s: %w", path, err)
		}
	})
	return initErr
}

// Version returns the loaded library's version string and path.
func Version() (string, string) {
	return onnx.GetVersion(), initPath
}
