package costmodel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrInvalid is wrapped by every validation failure of this package's inputs.
var ErrInvalid = errors.New("costmodel: invalid input")

// ProfileVersion is the schema version of a profile file.
const ProfileVersion = 1

// Profile is the measured (or derived) latency of every block of one model on
// one device class: what `dyno-executor profile` writes.
type Profile struct {
	Version int    `json:"version"`
	Model   string `json:"model"`
	// DeviceClass names the class ("jetson-xavier-nx", "cloud-t4", ...).
	DeviceClass string `json:"device_class"`
	// Role is "device" or "cloud".
	Role Role `json:"role"`
	// Host is the machine the profile was measured on, or "derived" for a
	// profile computed from published throughput figures.
	Host   string `json:"host"`
	Source string `json:"source,omitempty"`
	// Provider is the ONNX Runtime execution provider the blocks were
	// timed on ("cpu", "cuda", "tensorrt"); empty in profiles from before
	// it was recorded, which were all measured on the CPU.
	Provider string `json:"provider,omitempty"`
	// Blocks has one entry per block of the model, in order.
	Blocks []BlockTiming `json:"blocks"`
	// PackNsPerElement is the time to quantise and pack one element on this
	// machine (device role) or to unpack one (cloud role); zero means the
	// default below.
	PackNsPerElement float64 `json:"pack_ns_per_element,omitempty"`
}

// DefaultPackNsPerElement is the packing cost assumed when a profile does not
// state one: 4 ns an element is 1 GB/s of float32, the packing target.
const DefaultPackNsPerElement = 4.0

// Role says which side of the split a profile describes.
type Role string

// Roles.
const (
	RoleDevice Role = "device"
	RoleCloud  Role = "cloud"
)

// BlockTiming is the latency distribution of one block.
type BlockTiming struct {
	MedianMs float64 `json:"median_ms"`
	P95Ms    float64 `json:"p95_ms"`
	Runs     int     `json:"runs"`
}

// packNs returns the per-element packing cost with the default applied.
func (p *Profile) packNs() float64 {
	if p.PackNsPerElement == 0 {
		return DefaultPackNsPerElement
	}
	return p.PackNsPerElement
}

// Validate checks the profile; blocks is the model's block count (0 skips
// that check).
func (p *Profile) Validate(blocks int) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: profile %s/%s: %s: %s", ErrInvalid, p.Model, p.DeviceClass, field, fmt.Sprintf(format, args...))
	}
	if p.Version != ProfileVersion {
		return bad("version", "got %d, this build reads %d", p.Version, ProfileVersion)
	}
	if p.Model == "" {
		return bad("model", "empty")
	}
	if p.DeviceClass == "" {
		return bad("device_class", "empty")
	}
	if p.Role != RoleDevice && p.Role != RoleCloud {
		return bad("role", "%q is neither %q nor %q", p.Role, RoleDevice, RoleCloud)
	}
	if len(p.Blocks) == 0 {
		return bad("blocks", "empty")
	}
	if blocks > 0 && len(p.Blocks) != blocks {
		return bad("blocks", "has %d entries, the model has %d blocks", len(p.Blocks), blocks)
	}
	for i, b := range p.Blocks {
		f := fmt.Sprintf("blocks[%d]", i)
		if err := finiteNonNegative(b.MedianMs); err != nil {
			return bad(f+".median_ms", "%v", err)
		}
		if err := finiteNonNegative(b.P95Ms); err != nil {
			return bad(f+".p95_ms", "%v", err)
		}
		if b.P95Ms < b.MedianMs {
			return bad(f+".p95_ms", "%g is below the median %g", b.P95Ms, b.MedianMs)
		}
		if b.Runs < 0 {
			return bad(f+".runs", "negative (%d)", b.Runs)
		}
	}
	if err := finiteNonNegative(p.PackNsPerElement); err != nil {
		return bad("pack_ns_per_element", "%v", err)
	}
	return nil
}

func finiteNonNegative(v float64) error {
	switch {
	case math.IsNaN(v):
		return errors.New("NaN")
	case math.IsInf(v, 0):
		return errors.New("infinite")
	case v < 0:
		return fmt.Errorf("negative (%g)", v)
	}
	return nil
}

// decodeStrict decodes one JSON value with unknown fields rejected.
func decodeStrict(r io.Reader, v any, what string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decode %s: %v", ErrInvalid, what, err)
	}
	return nil
}

func loadFile(path string, read func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadProfile decodes and validates a profile.
func ReadProfile(r io.Reader) (*Profile, error) {
	var p Profile
	if err := decodeStrict(r, &p, "profile"); err != nil {
		return nil, err
	}
	if err := p.Validate(0); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadProfile reads a profile file.
func LoadProfile(path string) (*Profile, error) {
	var p *Profile
	err := loadFile(path, func(r io.Reader) (err error) { p, err = ReadProfile(r); return err })
	return p, err
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
