package profile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/executor/profile"
)

func TestCheckDataFile(t *testing.T) {
	dir := orttest.Model(t, "tinynet") // inputs of 3072 float32 values
	tmp := t.TempDir()
	write := func(name string, n int) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	whole, short, empty := write("whole.bin", 2*4*3072), write("short.bin", 10), write("empty.bin", 0)
	for _, tc := range []struct {
		name, data string
		bad        bool
	}{
		{"two whole inputs", "file:" + whole, false},
		{"short file", "file:" + short, true},
		{"empty file", "file:" + empty, true},
		{"missing file", "file:" + filepath.Join(tmp, "missing.bin"), true},
		{"a folder", "file:" + tmp, true},
		{"random data", "random", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := profile.CheckDataFile(dir, tc.data)
			if tc.bad != errors.Is(err, profile.ErrInput) || (!tc.bad && err != nil) {
				t.Fatalf("CheckDataFile(%s): %v; want ErrInput %v", tc.data, err, tc.bad)
			}
		})
	}
}
