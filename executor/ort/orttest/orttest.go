// Package orttest finds the built models of the repository (models/, made
// by `make models`) for tests that run them through ONNX Runtime.
package orttest

import (
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository root: the nearest folder above the working
// directory that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("orttest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Model returns models/<name> of the repository. A missing model fails the
// test (it does not skip): `make test` builds the models first, and a test
// run that silently skipped them would prove nothing.
func Model(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(Root(t), "models", name)
	if _, err := os.Stat(filepath.Join(dir, "model.json")); err != nil {
		t.Fatalf("models/%s/model.json is missing: run `make models` (it builds the model zoo and the trained classifier into models/): %v", name, err)
	}
	return dir
}
