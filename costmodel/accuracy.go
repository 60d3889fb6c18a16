package costmodel

import (
	"fmt"
	"io"

	"github.com/dynoml/dyno/model"
)

// AccuracyVersion is the schema version of an accuracy table file.
const AccuracyVersion = 1

// AccuracyTable is what `dyno-executor calibrate` writes: for every quantised
// arm (split, bits), the accuracy on a labelled set and the top-1 agreement
// with full precision. Arms at 32 bits and the device-only arm send nothing
// lossy, so their accuracy is Baseline.
type AccuracyTable struct {
	Version int    `json:"version"`
	Model   string `json:"model"`
	// Metric says what Accuracy measures: "label-accuracy" (top-1 on a
	// labelled set), "top1-agreement" (with full precision), or the
	// variants of the other metrics ("label-top5-accuracy",
	// "top5-agreement", "cosine>=0.99-agreement", "relerr<=0.05-agreement").
	Metric string `json:"metric"`
	// MetricSpec is the metric in the form `dyno-executor calibrate
	// --metric` takes ("top1:1", "cosine:0.99"), so outputs can be scored
	// later the way the table was; empty in older tables, read as the
	// metric calibration picks from the output shape (top1 for a classifier).
	MetricSpec string `json:"metric_spec,omitempty"`
	// Baseline is the full-precision accuracy in [0, 1].
	Baseline float64         `json:"baseline"`
	Entries  []AccuracyEntry `json:"entries"`
	Samples  int             `json:"samples,omitempty"`
	Source   string          `json:"source,omitempty"`
}

// AccuracyEntry is the calibration of one arm.
type AccuracyEntry struct {
	Split int `json:"split"`
	Bits  int `json:"bits"`
	// Accuracy is the metric at this arm, in [0, 1].
	Accuracy float64 `json:"accuracy"`
	// Agreement is the top-1 agreement with full precision, in [0, 1].
	Agreement float64 `json:"agreement"`
	// CompressionRatio is packed bytes after lossless compression divided
	// by packed bytes before it (rho in the cost model), in (0, 1]; zero
	// means 1 (no compression measured).
	CompressionRatio float64 `json:"compression_ratio,omitempty"`
	// N is how many samples the entry rests on (the weight of the prior
	// it gives the learner); 0 in tables written before it was recorded,
	// where the table's Samples is the best guess.
	N int `json:"n,omitempty"`
}

// Validate checks the table against a model of k blocks (k = 0 skips the
// split range check).
func (t *AccuracyTable) Validate(k int) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: accuracy table %s: %s: %s", ErrInvalid, t.Model, field, fmt.Sprintf(format, args...))
	}
	if t.Version != AccuracyVersion {
		return bad("version", "got %d, this build reads %d", t.Version, AccuracyVersion)
	}
	if t.Model == "" {
		return bad("model", "empty")
	}
	if err := unit(t.Baseline); err != nil {
		return bad("baseline", "%v", err)
	}
	seen := map[Arm]bool{}
	for i, e := range t.Entries {
		f := fmt.Sprintf("entries[%d]", i)
		if !model.IsValidBits(e.Bits) {
			return bad(f+".bits", "unknown precision %d (supported: %v)", e.Bits, model.ValidBits)
		}
		if e.Split < 0 || (k > 0 && e.Split >= k) {
			return bad(f+".split", "%d is outside 0..%d (the device-only split %d needs no entry)", e.Split, max(k-1, 0), k)
		}
		if err := unit(e.Accuracy); err != nil {
			return bad(f+".accuracy", "%v", err)
		}
		if err := unit(e.Agreement); err != nil {
			return bad(f+".agreement", "%v", err)
		}
		if e.N < 0 {
			return bad(f+".n", "%d samples is negative", e.N)
		}
		if err := finiteNonNegative(e.CompressionRatio); err != nil || e.CompressionRatio > 1 {
			return bad(f+".compression_ratio", "%g is outside (0, 1]", e.CompressionRatio)
		}
		a := Arm{Split: e.Split, Bits: e.Bits}
		if seen[a] {
			return bad(f, "duplicate entry for %v", a)
		}
		seen[a] = true
	}
	return nil
}

func unit(v float64) error {
	if err := finiteNonNegative(v); err != nil {
		return err
	}
	if v > 1 {
		return fmt.Errorf("%g is above 1", v)
	}
	return nil
}

// lookup returns the entry of arm a in a model of k blocks. Full-precision
// and device-only arms lose nothing, so they get the baseline accuracy and
// full agreement; a 32-bit entry still contributes its compression ratio.
func (t *AccuracyTable) lookup(a Arm, k int) (AccuracyEntry, bool) {
	for _, e := range t.Entries {
		if e.Split == a.Split && e.Bits == a.Bits {
			if e.CompressionRatio == 0 {
				e.CompressionRatio = 1
			}
			if a.Bits == 32 {
				e.Accuracy, e.Agreement = t.Baseline, 1
			}
			return e, true
		}
	}
	if a.Bits == 32 || a.Split == k {
		return AccuracyEntry{Split: a.Split, Bits: a.Bits, Accuracy: t.Baseline, Agreement: 1, CompressionRatio: 1}, true
	}
	return AccuracyEntry{}, false
}

// ReadAccuracyTable decodes and validates an accuracy table.
func ReadAccuracyTable(r io.Reader) (*AccuracyTable, error) {
	var t AccuracyTable
	if err := decodeStrict(r, &t, "accuracy table"); err != nil {
		return nil, err
	}
	if err := t.Validate(0); err != nil {
		return nil, err
	}
	return &t, nil
}

// LoadAccuracyTable reads an accuracy table file.
func LoadAccuracyTable(path string) (*AccuracyTable, error) {
	var t *AccuracyTable
	err := loadFile(path, func(r io.Reader) (err error) { t, err = ReadAccuracyTable(r); return err })
	return t, err
}
