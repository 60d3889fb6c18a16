package profile

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/packing"
	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/mnist"
)

// Calibration data sources.
const (
	// DataMNIST is the labelled MNIST test set (the reference classifier).
	DataMNIST = "mnist"
	// DataRandom is standard normal inputs: top-1 agreement only.
	DataRandom = "random"
)

// CalibrateConfig says what to calibrate on. Zero values take the defaults
// documented per field.
type CalibrateConfig struct {
	// Model is model.json or the folder holding it.
	Model string
	// Data is DataMNIST, DataRandom (default) or "file:PATH", a file of
	// little-endian float32 inputs, one model input after another.
	Data string
	// Samples caps the inputs used; default 2000 for MNIST, 16 for random
	// inputs, every input of a file.
	Samples int
	// Seed draws random inputs; default 1.
	Seed uint64
	// Bits are the precisions to calibrate; default the manifest's allowed
	// bits.
	Bits []int
	// Threads is ONNX Runtime's intra-op thread count; 0 is its default.
	Threads int
	// Pack is how activations are packed, Bits aside; the zero value is
	// the packing's default scheme with zstd compression (which is what
	// CompressionRatio measures; without compression it is 1).
	Pack packing.Options
	// NoCompression packs without compression (the ratio is then 1).
	NoCompression bool
}

// Calibrate measures, for every split s = 0 .. K-1 and every precision, the
// accuracy of the model when the activation crossing split s is packed with
// executor/packing (Encode, then Decode, exactly as it is sent) and the rest
// of the chain runs on the decoded values; and the top-1 agreement with the
// unquantised model. With labelled data the metric is label accuracy, else
// the accuracy is the agreement and the baseline 1.
func Calibrate(ctx context.Context, cfg CalibrateConfig, log *slog.Logger) (*costmodel.AccuracyTable, error) {
	if cfg.Model == "" {
		return nil, fmt.Errorf("%w: no model", ErrConfig)
	}
	if cfg.Data == "" {
		cfg.Data = DataRandom
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Samples < 0 {
		return nil, fmt.Errorf("%w: samples %d is negative", ErrConfig, cfg.Samples)
	}
	chain, err := ort.OpenChain(cfg.Model, ort.Options{Threads: cfg.Threads})
	if err != nil {
		return nil, err
	}
	defer chain.Close()
	m := chain.Manifest
	bits := cfg.Bits
	if bits == nil {
		bits = m.AllowedBits
	}
	for _, b := range bits {
		if !slices.Contains(m.AllowedBits, b) {
			return nil, fmt.Errorf("%w: %d bits is not allowed by %s (allowed %v)", ErrConfig, b, m.Name, m.AllowedBits)
		}
	}
	inputs, labels, desc, err := loadInputs(cfg, m)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	k := m.K()
	type cell struct {
		correct, agree   int
		packed, unpacked int64
	}
	cells := make([][]cell, k) // [split][bits index]
	for s := range cells {
		cells[s] = make([]cell, len(bits))
	}
	baseCorrect := 0
	n := len(inputs)
	var msg []byte
	var dec []float32
	for i, x := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		acts, err := activations(chain, x)
		if err != nil {
			return nil, fmt.Errorf("calibrate %s: input %d: %w", m.Name, i, err)
		}
		ref := argmax(acts[k])
		if labels != nil && ref == int(labels[i]) {
			baseCorrect++
		}
		for s := 0; s < k; s++ {
			shape := m.Input.Shape
			if s > 0 {
				shape = m.Blocks[s-1].Output.Shape
			}
			for bi, b := range bits {
				opt := cfg.Pack
				opt.Bits = b
				if !cfg.NoCompression {
					opt.Compression = packing.CompressionZstd
				}
				msg, err = packing.Encode(msg[:0], acts[s], shape, opt)
				if err != nil {
					return nil, fmt.Errorf("calibrate %s: input %d, split %d, %d bits: pack: %w", m.Name, i, s, b, err)
				}
				var h packing.Header
				dec, h, err = packing.Decode(dec, msg, packing.DecodeOptions{})
				if err != nil {
					return nil, fmt.Errorf("calibrate %s: input %d, split %d, %d bits: unpack: %w", m.Name, i, s, b, err)
				}
				y, err := chain.Run(s, k, dec)
				if err != nil {
					return nil, fmt.Errorf("calibrate %s: input %d, split %d, %d bits: %w", m.Name, i, s, b, err)
				}
				top := argmax(y)
				c := &cells[s][bi]
				if top == ref {
					c.agree++
				}
				if labels != nil && top == int(labels[i]) {
					c.correct++
				}
				c.packed += int64(h.PayloadLen)
				c.unpacked += packing.PackedSize(int64(len(acts[s])), b)
			}
		}
		if (i+1)%500 == 0 {
			log.Info("calibrate: progress", "model", m.Name, "inputs", i+1, "of", n, "elapsed", time.Since(start).Round(time.Millisecond))
		}
	}
	t := &costmodel.AccuracyTable{
		Version: costmodel.AccuracyVersion,
		Model:   m.Name,
		Samples: n,
	}
	comp := "zstd"
	if cfg.NoCompression {
		comp = "none"
	}
	t.Source = fmt.Sprintf("dyno-executor calibrate: %s, executor/packing (scheme %s, clip %g, compression %s) at every split", desc, schemeLabel(cfg.Pack.Scheme), cfg.Pack.ClipPercentile, comp)
	if labels != nil {
		t.Metric = "label-accuracy"
		t.Baseline = float64(baseCorrect) / float64(n)
	} else {
		t.Metric = "top1-agreement"
		t.Baseline = 1
	}
	for s := 0; s < k; s++ {
		for bi, b := range bits {
			c := cells[s][bi]
			e := costmodel.AccuracyEntry{Split: s, Bits: b, Agreement: float64(c.agree) / float64(n)}
			if labels != nil {
				e.Accuracy = float64(c.correct) / float64(n)
			} else {
				e.Accuracy = e.Agreement
			}
			if c.unpacked > 0 {
				e.CompressionRatio = math.Min(1, float64(c.packed)/float64(c.unpacked))
			}
			t.Entries = append(t.Entries, e)
		}
	}
	log.Info("calibrate: done", "model", m.Name, "inputs", n, "arms", len(t.Entries), "baseline", t.Baseline, "elapsed", time.Since(start).Round(time.Millisecond))
	if err := t.Validate(k); err != nil {
		return nil, err
	}
	return t, nil
}

func schemeLabel(s packing.Scheme) string {
	if s == packing.SchemeAuto {
		return "auto"
	}
	return s.String()
}

// loadInputs returns the calibration inputs, their labels (nil without) and
// a description.
func loadInputs(cfg CalibrateConfig, m *model.Manifest) ([][]float32, []uint8, string, error) {
	size := int(m.Input.Elements)
	switch {
	case cfg.Data == DataMNIST:
		if size != mnist.Side*mnist.Side {
			return nil, nil, "", fmt.Errorf("%w: %s takes %d input values (%v); MNIST images have %d", ErrConfig, m.Name, size, m.Input.Shape, mnist.Side*mnist.Side)
		}
		dir, err := mnist.Dir()
		if err != nil {
			return nil, nil, "", err
		}
		test, err := mnist.LoadTest(dir)
		if err != nil {
			return nil, nil, "", err
		}
		n := cfg.Samples
		if n == 0 {
			n = 2000
		}
		test = test.Head(n)
		in := make([][]float32, test.Count())
		for i := range in {
			in[i] = test.Image(i)
		}
		return in, test.Labels, fmt.Sprintf("the first %d MNIST test images (labelled)", test.Count()), nil
	case cfg.Data == DataRandom:
		n := cfg.Samples
		if n == 0 {
			n = 16
		}
		in := make([][]float32, n)
		for i := range in {
			in[i] = randomInput(size, cfg.Seed+uint64(i))
		}
		return in, nil, fmt.Sprintf("%d standard normal random inputs (seed %d)", n, cfg.Seed), nil
	case len(cfg.Data) > 5 && cfg.Data[:5] == "file:":
		path := cfg.Data[5:]
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, "", fmt.Errorf("calibrate: inputs: %w", err)
		}
		if len(raw) == 0 || len(raw)%(4*size) != 0 {
			return nil, nil, "", fmt.Errorf("%w: %s: %d bytes is not a whole number of %d-value float32 inputs (%d bytes each)", ErrConfig, path, len(raw), size, 4*size)
		}
		n := len(raw) / (4 * size)
		if cfg.Samples > 0 {
			n = min(n, cfg.Samples)
		}
		in := make([][]float32, n)
		for i := range in {
			x := make([]float32, size)
			for j := range x {
				x[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*size+j):]))
			}
			in[i] = x
		}
		return in, nil, fmt.Sprintf("%d inputs from %s", n, path), nil
	}
	return nil, nil, "", fmt.Errorf("%w: data %q is none of %q, %q, \"file:PATH\"", ErrConfig, cfg.Data, DataMNIST, DataRandom)
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
