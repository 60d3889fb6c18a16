package load

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/model/mnist"
)

// Folder reads a data set folder: either the MNIST test set (its
// t10k-*-idx*-ubyte.gz files, with labels), or one input per *.f32 file
// (raw little-endian float32 of elements values, taken in name order) with
// an optional labels.txt holding one label per line in the same order (a
// negative label: none). The inputs are served in order and again from
// the start.
func Folder(dir string, elements int) (device.Inputs, error) {
	if _, err := os.Stat(filepath.Join(dir, "t10k-images-idx3-ubyte.gz")); err == nil {
		if elements != mnist.Side*mnist.Side {
			return nil, fmt.Errorf("load: %s is an MNIST folder (%d values an image); the model takes %d", dir, mnist.Side*mnist.Side, elements)
		}
		set, err := mnist.LoadTest(dir)
		if err != nil {
			return nil, err
		}
		return &device.MNIST{Set: set}, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.f32"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load: %s holds no *.f32 inputs and no MNIST test set", dir)
	}
	sort.Strings(files)
	var labels []int
	if f, err := os.Open(filepath.Join(dir, "labels.txt")); err == nil {
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			s := strings.TrimSpace(sc.Text())
			if s == "" {
				continue
			}
			v, err := strconv.Atoi(s)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("load: %s/labels.txt line %d: %q is not a class number", dir, line, s)
			}
			labels = append(labels, v)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if len(labels) != len(files) {
			return nil, fmt.Errorf("load: %s: %d labels in labels.txt for %d inputs", dir, len(labels), len(files))
		}
	}
	set := &inputs{}
	for i, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if len(data) != 4*elements {
			return nil, fmt.Errorf("load: %s is %d bytes; the model's input is %d float32 values (%d bytes)", name, len(data), elements, 4*elements)
		}
		x := make([]float32, elements)
		for j := range x {
			x[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*j:]))
		}
		label := -1
		if labels != nil {
			label = labels[i]
		}
		set.all = append(set.all, device.Input{X: x, Label: label})
	}
	return set, nil
}

// inputs serves a fixed list in order, again and again.
type inputs struct {
	all []device.Input
	i   int
}

func (s *inputs) Next() (device.Input, bool) {
	in := s.all[s.i%len(s.all)]
	s.i++
	return in, true
}
