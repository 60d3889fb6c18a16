package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dynoml/dyno/model"
)

// Chain is a split model loaded for running: one session per block, checked
// against the manifest. It is safe for concurrent use (each block's runs
// are serialised).
type Chain struct {
	Manifest *model.Manifest
	// Dir is the folder of model.json; block files are relative to it.
	Dir    string
	blocks []*Session
	// scratch holds the tensors between blocks of a run (*[2][]float32),
	// kept for the next run rather than allocated per block.
	scratch sync.Pool
}

// ManifestPath accepts a model.json path or the folder holding one.
func ManifestPath(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return filepath.Join(path, "model.json")
	}
	return path
}

// ErrNotSplit is returned when a whole ONNX model is given where a split
// one (model.json and its blocks) is wanted.
var ErrNotSplit = errors.New("ort: not a split model")

// OpenChain loads model.json (or the folder holding it) and a session per
// block.
func OpenChain(path string, opt Options) (*Chain, error) {
	if st, err := os.Stat(path); err == nil && !st.IsDir() && strings.EqualFold(filepath.Ext(path), ".onnx") {
		return nil, fmt.Errorf("%w: %s is a whole ONNX model: split it first (dynoctl model split %s --out DIR), then give DIR", ErrNotSplit, path, path)
	}
	path = ManifestPath(path)
	m, err := model.LoadManifest(path)
	if err != nil {
		return nil, err
	}
	c := &Chain{Manifest: m, Dir: filepath.Dir(path)}
	for i, b := range m.Blocks {
		if b.File == "" {
			c.Close()
			return nil, fmt.Errorf("ort: %s: block %d (%s) has no ONNX file: the manifest comes from an architecture table, not a split", path, i+1, b.Name)
		}
		s, err := Open(filepath.Join(c.Dir, b.File), opt)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.blocks = append(c.blocks, s)
		in := m.Input
		if i > 0 {
			in = m.Blocks[i-1].Output
		}
		if !slices.Equal(s.InputShape(), in.Shape) || !slices.Equal(s.OutputShape(), b.Output.Shape) {
			c.Close()
			return nil, fmt.Errorf("ort: %s: block %d (%s): the file takes %v and gives %v, the manifest says %v and %v", path, i+1, b.File, s.InputShape(), s.OutputShape(), in.Shape, b.Output.Shape)
		}
	}
	return c, nil
}

// K is the number of blocks.
func (c *Chain) K() int { return len(c.blocks) }

// Block returns the session of block i, 1-based as in the cost model.
func (c *Chain) Block(i int) *Session { return c.blocks[i-1] }

// Run runs blocks from+1 .. to on x, the tensor that crosses split from (the
// input for from = 0), and returns the tensor crossing split to.
func (c *Chain) Run(from, to int, x []float32) ([]float32, error) {
	if from < 0 || to > len(c.blocks) || from > to {
		return nil, fmt.Errorf("ort: %s: cannot run from split %d to %d of %d blocks", c.Manifest.Name, from, to, len(c.blocks))
	}
	if from == to {
		return slices.Clone(x), nil
	}
	buf, _ := c.scratch.Get().(*[2][]float32)
	if buf == nil {
		buf = new([2][]float32)
	}
	defer c.scratch.Put(buf)
	cur := x
	for i := from; i < to; i++ {
		out, err := c.blocks[i].Run(buf[i%2], cur)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i+1, err)
		}
		buf[i%2] = out
		cur = out
	}
	return slices.Clone(cur), nil
}

// RunCPU is Run, also returning the CPU time the calling thread spent in
// it: with one intra-op thread ONNX Runtime computes on the caller's
// thread, so this is the blocks' compute without the time the thread
// waited for a core (0 where the platform cannot say). An emulated slower
// device stretches this rather than the wall time, so that a busy host's
// waits are not multiplied as if they were compute.
func (c *Chain) RunCPU(from, to int, x []float32) ([]float32, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, ok0 := threadCPU()
	y, err := c.Run(from, to, x)
	c1, ok1 := threadCPU()
	if !ok0 || !ok1 {
		return y, 0, err
	}
	return y, c1 - c0, err
}

// Close releases every session.
func (c *Chain) Close() error {
	var errs []error
	for _, s := range c.blocks {
		errs = append(errs, s.Close())
	}
	c.blocks = nil
	return errors.Join(errs...)
}
