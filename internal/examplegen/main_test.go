package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedExamplesAreCurrent regenerates the examples and compares
// them with the committed files, so a change to the architecture tables or
// the derivation cannot leave stale examples behind.
func TestCommittedExamplesAreCurrent(t *testing.T) {
	tmp := t.TempDir()
	if err := Write(tmp); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "examples")
	n := 0
	err := filepath.Walk(tmp, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tmp, path)
		want, _ := os.ReadFile(path)
		got, err := os.ReadFile(filepath.Join(committed, rel))
		if err != nil {
			t.Errorf("examples/%s: %v (run `make examples`)", rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/%s is stale: run `make examples` and commit it", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*(2+4) {
		t.Fatalf("compared %d files, want 12", n)
	}
}
