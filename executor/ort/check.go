package ort

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// CheckConfig says what CheckSplit compares. Zero values take the
// documented defaults.
type CheckConfig struct {
	// Model is model.json or the folder holding it.
	Model string
	// Original is the whole ONNX model; "" means the manifest's Original,
	// else model.onnx beside model.json.
	Original string
	// Inputs is how many sample inputs are compared; default 8.
	Inputs int
	// Seed draws the inputs (standard normal); default 1.
	Seed uint64
	// Threads is ONNX Runtime's intra-op thread count; 0 is its default.
	Threads int
}

// OutputDiff is how far the chained blocks' output departs from the whole
// model's over every input compared.
type OutputDiff struct {
	Name string
	// MaxAbs is the largest absolute difference of one element.
	MaxAbs float64
	// MaxRel is MaxAbs relative to the largest magnitude of the whole
	// model's output (so an output of order 1000 is judged at its scale).
	MaxRel float64
	// MaxRef is that largest magnitude.
	MaxRef float64
	// NonFinite counts elements where either side is NaN or infinite and
	// they differ.
	NonFinite int
}

// Within reports whether the difference is within atol + rtol x MaxRef.
func (d OutputDiff) Within(atol, rtol float64) bool {
	return d.NonFinite == 0 && d.MaxAbs <= atol+rtol*d.MaxRef
}

// CheckResult is what CheckSplit measured.
type CheckResult struct {
	Model    string
	Original string
	Inputs   int
	Outputs  []OutputDiff
}

// ErrNoOriginal is returned when the whole model to compare with is
// unknown.
var ErrNoOriginal = errors.New("ort: no whole model to compare with")

// CheckSplit runs the split model's blocks one after the other through ONNX
// Runtime and the whole model it was cut from, on the same sample inputs,
// and reports the largest differences of the outputs.
func CheckSplit(cfg CheckConfig) (*CheckResult, error) {
	if cfg.Inputs == 0 {
		cfg.Inputs = 8
	}
	if cfg.Inputs < 0 {
		return nil, fmt.Errorf("ort: check: %d inputs", cfg.Inputs)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	chain, err := OpenChain(cfg.Model, Options{Threads: cfg.Threads})
	if err != nil {
		return nil, err
	}
	defer chain.Close()
	m := chain.Manifest
	orig := cfg.Original
	if orig == "" {
		orig = m.Original
		if orig != "" && !filepath.IsAbs(orig) {
			orig = filepath.Join(chain.Dir, orig)
		}
	}
	if orig == "" {
		orig = filepath.Join(chain.Dir, "model.onnx")
		if _, err := os.Stat(orig); err != nil {
			return nil, fmt.Errorf("%w: %s records no original model and %s does not exist; name it with --onnx", ErrNoOriginal, ManifestPath(cfg.Model), orig)
		}
	}
	data, err := os.ReadFile(orig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (name the whole model with --onnx)", ErrNoOriginal, err)
	}
	out := m.Blocks[m.K()-1].Output
	whole, err := NewRunner(data, orig, m.Input.Name, []string{out.Name}, Options{Threads: cfg.Threads})
	if err != nil {
		return nil, err
	}
	defer whole.Close()
	d := OutputDiff{Name: out.Name}
	for i := range cfg.Inputs {
		x := sampleInput(int(m.Input.Elements), cfg.Seed+uint64(i))
		ref, err := whole.Run(m.Input.Shape, x)
		if err != nil {
			return nil, fmt.Errorf("check %s: input %d: whole model: %w", m.Name, i, err)
		}
		got, err := chain.Run(0, chain.K(), x)
		if err != nil {
			return nil, fmt.Errorf("check %s: input %d: blocks: %w", m.Name, i, err)
		}
		if len(ref[0]) != len(got) {
			return nil, fmt.Errorf("check %s: input %d: the whole model gives %d values for %q, the blocks %d", m.Name, i, len(ref[0]), out.Name, len(got))
		}
		for j, r := range ref[0] {
			a, b := float64(got[j]), float64(r)
			if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
				if !(math.IsNaN(a) && math.IsNaN(b)) && a != b {
					d.NonFinite++
				}
				continue
			}
			d.MaxAbs = max(d.MaxAbs, math.Abs(a-b))
			d.MaxRef = max(d.MaxRef, math.Abs(b))
		}
	}
	if d.MaxRef > 0 {
		d.MaxRel = d.MaxAbs / d.MaxRef
	}
	return &CheckResult{Model: m.Name, Original: orig, Inputs: cfg.Inputs, Outputs: []OutputDiff{d}}, nil
}
