package profile

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
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
	// DataRandom is standard normal inputs: agreement only.
	DataRandom = "random"
)

// CalibrateConfig says what to calibrate on. Zero values take the defaults
// documented per field.
type CalibrateConfig struct {
	// Model is model.json or the folder holding it.
	Model string
	// Data is DataMNIST, DataRandom (default), a folder of .npy inputs or
	// one .npy file of stacked inputs (the format is described in data.go
	// and docs/models.md), or "file:PATH", a file of little-endian float32
	// inputs, one model input after another.
	Data string
	// Labels is the labels file of .npy data; "" uses labels.txt in the
	// data folder where present.
	Labels string
	// Metric scores each arm; the zero value picks it from the output
	// shape (DefaultMetric).
	Metric Metric
	// Samples caps the inputs used; default 2000 for MNIST, 16 for random
	// inputs, every input of a file or folder.
	Samples int
	// Seed draws random inputs; default 1.
	Seed uint64
	// Bits are the precisions to calibrate; default the manifest's allowed
	// bits. The others get no entry: the cost model treats their arms as
	// not calibrated (ineligible under an accuracy floor), not as
	// accuracy 0.
	Bits []int
	// Threads is ONNX Runtime's intra-op thread count; 0 is its default.
	Threads int
	// Pack is how activations are packed, Bits aside; the zero value is
	// the packing's default scheme with zstd compression (which is what
	// CompressionRatio measures; without compression it is 1).
	Pack packing.Options
	// NoCompression packs without compression (the ratio is then 1).
	NoCompression bool
	// Progress receives progress reports (a bar on a terminal, periodic
	// lines otherwise); nil reports nothing.
	Progress io.Writer
}

// Calibrate measures, for every split s = 0 .. K-1 and every precision, the
// accuracy of the model when the activation crossing split s is packed with
// executor/packing (Encode, then Decode, exactly as it is sent) and the rest
// of the chain runs on the decoded values, scored by the metric: against
// the labels where the data has them, and against the full-precision output
// (agreement) always. Without labels the accuracy is the agreement and the
// baseline 1. Every entry records how many samples it rests on (N).
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
	k := m.K()
	outShape := m.Blocks[k-1].Output.Shape
	metric := cfg.Metric
	var warnings []string
	if metric.Kind == "" {
		var why string
		metric, why, warnings = DefaultMetric(outShape)
		log.Info("calibrate: metric picked from the output shape (--metric chooses another)", "model", m.Name, "metric", metric.String(), "why", why)
	}
	if metric, err = metric.resolve(outShape); err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn("calibrate: "+w, "model", m.Name)
	}
	ds, err := loadInputs(cfg, m)
	if err != nil {
		return nil, err
	}
	rows := metric.Rows(outShape)
	if ds.labels != nil {
		if !metric.Labelled() {
			return nil, fmt.Errorf("%w: the data has labels, but metric %s compares with the full-precision output only; use top1 or topK", ErrConfig, metric)
		}
		for i, l := range ds.labels {
			if len(l) != rows {
				return nil, fmt.Errorf("%w: input %d has %d label(s); metric %s on output %v scores %d row(s), each needs one", ErrConfig, i, len(l), metric, outShape, rows)
			}
			_, classes, _ := metric.rows(outShape)
			for _, c := range l {
				if c >= int64(classes) {
					return nil, fmt.Errorf("%w: input %d: label %d is not one of the output's %d classes", ErrConfig, i, c, classes)
				}
			}
		}
	}
	start := time.Now()
	type cell struct {
		correct, agree   float64
		packed, unpacked int64
	}
	cells := make([][]cell, k) // [split][bits index]
	for s := range cells {
		cells[s] = make([]cell, len(bits))
	}
	baseCorrect := 0.0
	n := len(ds.inputs)
	var msg []byte
	var dec []float32
	var buf, ref, lab []int
	prog := newProgress(cfg.Progress, "calibrate "+m.Name, n)
	for i, x := range ds.inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		acts, err := activations(chain, x)
		if err != nil {
			return nil, fmt.Errorf("calibrate %s: input %d: %w", m.Name, i, err)
		}
		full := acts[k]
		if metric.Labelled() {
			ref = metric.argmaxRows(ref, full, outShape)
		}
		if ds.labels != nil {
			lab = lab[:0]
			for _, c := range ds.labels[i] {
				lab = append(lab, int(c))
			}
			baseCorrect += metric.score(full, outShape, lab, full, buf)
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
				c := &cells[s][bi]
				c.agree += metric.score(y, outShape, ref, full, buf)
				if ds.labels != nil {
					c.correct += metric.score(y, outShape, lab, full, buf)
				}
				c.packed += int64(h.PayloadLen)
				c.unpacked += packing.PackedSize(int64(len(acts[s])), b)
			}
		}
		prog.step(i + 1)
	}
	t := &costmodel.AccuracyTable{
		Version:    costmodel.AccuracyVersion,
		Model:      m.Name,
		Samples:    n,
		MetricSpec: metric.Spec(),
	}
	comp := "zstd"
	if cfg.NoCompression {
		comp = "none"
	}
	t.Source = fmt.Sprintf("dyno-executor calibrate: %s, metric %s, executor/packing (scheme %s, clip %g, compression %s) at every split", ds.desc, metric, schemeLabel(cfg.Pack.Scheme), cfg.Pack.ClipPercentile, comp)
	if ds.labels != nil {
		t.Metric = metric.TableName(true)
		t.Baseline = baseCorrect / float64(n)
	} else {
		t.Metric = metric.TableName(false)
		t.Baseline = 1
	}
	for s := 0; s < k; s++ {
		for bi, b := range bits {
			c := cells[s][bi]
			e := costmodel.AccuracyEntry{Split: s, Bits: b, Agreement: c.agree / float64(n), N: n}
			if ds.labels != nil {
				e.Accuracy = c.correct / float64(n)
			} else {
				e.Accuracy = e.Agreement
			}
			if c.unpacked > 0 {
				e.CompressionRatio = math.Min(1, float64(c.packed)/float64(c.unpacked))
			}
			t.Entries = append(t.Entries, e)
		}
	}
	if len(t.Entries) > 1 && !distinct(t.Entries) {
		log.Warn("calibrate: every arm scores the same: the metric cannot tell the arms apart on this data (try a stricter metric, e.g. --metric cosine:0.999 or relerr:0.01, or more samples)", "model", m.Name, "accuracy", t.Entries[0].Accuracy)
	}
	var skipped []int
	for _, b := range m.AllowedBits {
		if !slices.Contains(bits, b) {
			skipped = append(skipped, b)
		}
	}
	if len(skipped) > 0 {
		log.Info("calibrate: precisions not calibrated: their arms have no entry and count as not calibrated (ineligible under an accuracy floor)", "model", m.Name, "bits", skipped)
	}
	log.Info("calibrate: done", "model", m.Name, "inputs", n, "metric", t.Metric, "arms", len(t.Entries), "baseline", t.Baseline, "elapsed", time.Since(start).Round(time.Millisecond))
	if err := t.Validate(k); err != nil {
		return nil, err
	}
	return t, nil
}

// distinct reports whether the entries' accuracies differ.
func distinct(es []costmodel.AccuracyEntry) bool {
	for _, e := range es[1:] {
		if e.Accuracy != es[0].Accuracy {
			return true
		}
	}
	return false
}

func schemeLabel(s packing.Scheme) string {
	if s == packing.SchemeAuto {
		return "auto"
	}
	return s.String()
}

// loadInputs returns the calibration set.
func loadInputs(cfg CalibrateConfig, m *model.Manifest) (*dataset, error) {
	size := int(m.Input.Elements)
	if cfg.Labels != "" && (cfg.Data == DataMNIST || cfg.Data == DataRandom || strings.HasPrefix(cfg.Data, "file:")) {
		return nil, fmt.Errorf("%w: --labels goes with .npy data (a folder or a file), not %q", ErrConfig, cfg.Data)
	}
	switch {
	case cfg.Data == DataMNIST:
		if size != mnist.Side*mnist.Side {
			return nil, fmt.Errorf("%w: %s takes %d input values (%v); MNIST images have %d", ErrConfig, m.Name, size, m.Input.Shape, mnist.Side*mnist.Side)
		}
		dir, err := mnist.Dir()
		if err != nil {
			return nil, err
		}
		test, err := mnist.LoadTest(dir)
		if err != nil {
			return nil, err
		}
		n := cfg.Samples
		if n == 0 {
			n = 2000
		}
		test = test.Head(n)
		ds := &dataset{desc: fmt.Sprintf("the first %d MNIST test images (labelled)", test.Count())}
		for i := range test.Count() {
			ds.inputs = append(ds.inputs, test.Image(i))
			ds.labels = append(ds.labels, []int64{int64(test.Labels[i])})
		}
		return ds, nil
	case cfg.Data == DataRandom:
		n := cfg.Samples
		if n == 0 {
			n = 16
		}
		ds := &dataset{desc: fmt.Sprintf("%d standard normal random inputs (seed %d)", n, cfg.Seed)}
		for i := range n {
			ds.inputs = append(ds.inputs, randomInput(size, cfg.Seed+uint64(i)))
		}
		return ds, nil
	case strings.HasPrefix(cfg.Data, "file:"):
		path := cfg.Data[5:]
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("calibrate: inputs: %w", err)
		}
		if len(raw) == 0 || len(raw)%(4*size) != 0 {
			return nil, fmt.Errorf("%w: %s: %d bytes is not a whole number of %d-value float32 inputs (%d bytes each)", ErrConfig, path, len(raw), size, 4*size)
		}
		n := len(raw) / (4 * size)
		if cfg.Samples > 0 {
			n = min(n, cfg.Samples)
		}
		ds := &dataset{desc: fmt.Sprintf("%d inputs from %s", n, path)}
		for i := range n {
			x := make([]float32, size)
			for j := range x {
				x[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*size+j):]))
			}
			ds.inputs = append(ds.inputs, x)
		}
		return ds, nil
	}
	if st, err := os.Stat(cfg.Data); err == nil && (st.IsDir() || strings.HasSuffix(cfg.Data, ".npy")) {
		return loadNpyData(cfg.Data, cfg.Labels, m.Input.Shape, cfg.Samples)
	}
	return nil, fmt.Errorf("%w: data %q is none of %q, %q, a folder of .npy files, a .npy file, \"file:PATH\"", ErrConfig, cfg.Data, DataMNIST, DataRandom)
}
