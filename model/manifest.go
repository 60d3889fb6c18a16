package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// ErrInvalidManifest is wrapped by every manifest validation failure.
var ErrInvalidManifest = errors.New("model: invalid manifest")

// ManifestVersion is the schema version written into model.json.
const ManifestVersion = 1

// Manifest describes a CNN cut into a chain of blocks. It is the model.json
// that the splitter writes and the cost model reads.
type Manifest struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// Input is the tensor fed to block 1 (and sent as-is by the cloud-only arm).
	Input Tensor `json:"input"`
	// Blocks is the chain; block i (1-based in the cost model) consumes the
	// output of block i-1.
	Blocks []Block `json:"blocks"`
	// AllowedBits lists the activation precisions the model may be sent at.
	AllowedBits []int `json:"allowed_bits"`
	// Classes is the number of output classes, 0 if not a classifier.
	Classes int `json:"classes,omitempty"`
	// Source says where the figures come from (splitter, architecture table).
	Source string `json:"source,omitempty"`
	// Original is the whole ONNX model the blocks were cut from (relative
	// to model.json's folder when it lies inside it), for `dynoctl model
	// check`; empty when unknown.
	Original string `json:"original,omitempty"`
}

// Tensor is a named tensor with a static shape.
type Tensor struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Elements int64   `json:"elements"`
}

// Block is one link of the chain.
type Block struct {
	Name string `json:"name"`
	// File is the block's ONNX file, relative to model.json; empty for
	// manifests made from an architecture table.
	File   string `json:"file,omitempty"`
	Output Tensor `json:"output"`
	// FLOPs counts multiply and add separately (2 per MAC). Where
	// FLOPsUncounted is set it is a lower bound: those operators' FLOPs are
	// unknown (profiles, not FLOPs, drive the cost model).
	FLOPs  int64 `json:"flops"`
	Params int64 `json:"params"`
	// FLOPsUncounted lists the operators of the block whose FLOPs dyno
	// does not count, with their node counts ("Resize:2").
	FLOPsUncounted []string `json:"flops_uncounted,omitempty"`
}

// ValidBits is every precision the packing supports.
var ValidBits = []int{32, 16, 8, 6, 4, 3, 2}

// IsValidBits reports whether b is a supported precision.
func IsValidBits(b int) bool { return slices.Contains(ValidBits, b) }

// K is the number of blocks.
func (m *Manifest) K() int { return len(m.Blocks) }

// Elements returns n[s], the element count of the tensor crossing split s:
// the input for s = 0, the output of block s otherwise.
func (m *Manifest) Elements(s int) int64 {
	if s == 0 {
		return m.Input.Elements
	}
	return m.Blocks[s-1].Output.Elements
}

// TotalFLOPs sums the FLOPs of every block.
func (m *Manifest) TotalFLOPs() int64 {
	var t int64
	for _, b := range m.Blocks {
		t += b.FLOPs
	}
	return t
}

// TotalParams sums the parameters of every block.
func (m *Manifest) TotalParams() int64 {
	var t int64
	for _, b := range m.Blocks {
		t += b.Params
	}
	return t
}

// Validate checks the manifest and names the first bad field.
func (m *Manifest) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidManifest, field, fmt.Sprintf(format, args...))
	}
	if m.Version != ManifestVersion {
		return bad("version", "got %d, this build reads %d", m.Version, ManifestVersion)
	}
	if m.Name == "" {
		return bad("name", "empty")
	}
	if err := m.Input.validate(); err != nil {
		return bad("input", "%v", err)
	}
	if len(m.Blocks) == 0 {
		return bad("blocks", "empty: a model needs at least one block")
	}
	for i, b := range m.Blocks {
		f := fmt.Sprintf("blocks[%d]", i)
		if b.Name == "" {
			return bad(f+".name", "empty")
		}
		if err := b.Output.validate(); err != nil {
			return bad(f+".output", "%v", err)
		}
		if b.FLOPs < 0 {
			return bad(f+".flops", "negative (%d)", b.FLOPs)
		}
		if b.Params < 0 {
			return bad(f+".params", "negative (%d)", b.Params)
		}
	}
	if len(m.AllowedBits) == 0 {
		return bad("allowed_bits", "empty")
	}
	seen := map[int]bool{}
	for i, b := range m.AllowedBits {
		if !IsValidBits(b) {
			return bad(fmt.Sprintf("allowed_bits[%d]", i), "unknown precision %d (supported: %v)", b, ValidBits)
		}
		if seen[b] {
			return bad(fmt.Sprintf("allowed_bits[%d]", i), "duplicate precision %d", b)
		}
		seen[b] = true
	}
	if !seen[32] {
		return bad("allowed_bits", "must include 32 (full precision)")
	}
	if m.Classes < 0 {
		return bad("classes", "negative (%d)", m.Classes)
	}
	return nil
}

func (t Tensor) validate() error {
	if t.Name == "" {
		return errors.New("name: empty")
	}
	if len(t.Shape) == 0 {
		return errors.New("shape: empty")
	}
	n := int64(1)
	for i, d := range t.Shape {
		if d <= 0 {
			return fmt.Errorf("shape[%d]: %d is not a positive dimension", i, d)
		}
		if n > math.MaxInt64/d {
			return fmt.Errorf("shape: element count overflows")
		}
		n *= d
	}
	if t.Elements != n {
		return fmt.Errorf("elements: %d does not match shape %v (%d)", t.Elements, t.Shape, n)
	}
	return nil
}

// NewTensor builds a Tensor with its element count.
func NewTensor(name string, shape ...int64) Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return Tensor{Name: name, Shape: append([]int64(nil), shape...), Elements: n}
}

// ReadManifest decodes and validates a manifest. Unknown fields are an error.
func ReadManifest(r io.Reader) (*Manifest, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrInvalidManifest, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// LoadManifest reads a manifest file.
func LoadManifest(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := ReadManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// WriteManifest writes m as indented JSON after validating it.
func WriteManifest(w io.Writer, m *Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}
