package device

import (
	"fmt"
	"slices"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/profile"
)

// scorer scores the model's outputs with the metric of the accuracy table
// the controller learns against, so that a label, a feedback label and a
// shadow comparison measure what calibration measured: per row along the
// class axis (top1, top-k) or by a tolerance against the full-precision
// output (cosine, relative error).
type scorer struct {
	m        profile.Metric
	shape    []int64 // the model's output shape
	elements int
	rows     int // labels a sample needs under a class metric
	classes  int // classes along the class axis; 0 for a dense metric
}

// newScorer parses the cost model's accuracy table metric spec against the
// model's output shape; a spec it cannot parse or that does not fit the
// output is refused.
func newScorer(cm *costmodel.Model) (scorer, string, error) {
	b := cm.Manifest.Blocks
	out := b[len(b)-1].Output
	spec := ""
	if cm.Accuracy != nil {
		spec = cm.Accuracy.MetricSpec
	}
	m, why, err := profile.MetricFor(spec, out.Shape)
	if err != nil {
		return scorer{}, "", fmt.Errorf("device: accuracy table of %s: %w", cm.Manifest.Name, err)
	}
	return scorer{m: m, shape: out.Shape, elements: int(out.Elements), rows: m.Rows(out.Shape), classes: m.Classes(out.Shape)}, why, nil
}

// check refuses an output of the wrong size (from a cloud executor that
// serves another model).
func (s scorer) check(y []float32, what string) error {
	if len(y) != s.elements {
		return fmt.Errorf("device: %s output holds %d values, the model's output %v holds %d", what, len(y), s.shape, s.elements)
	}
	return nil
}

// checkLabels refuses labels the metric cannot score: none under a dense
// metric, one class per row under a class metric, each a class of the
// output.
func (s scorer) checkLabels(labels []int, what string) error {
	if !s.m.Labelled() {
		return fmt.Errorf("%w: %s: the model's metric %s compares with the full-precision output, not with classes; give feedback a value in [0, 1] (or correct) instead", ErrInvalid, what, s.m)
	}
	if len(labels) != s.rows {
		return fmt.Errorf("%w: %s: %d class(es); metric %s on output %v scores %d row(s), one class each", ErrInvalid, what, len(labels), s.m, s.shape, s.rows)
	}
	for i, c := range labels {
		if c < 0 || c >= s.classes {
			return fmt.Errorf("%w: %s: class %d (row %d) is not one of the output's %d classes (0..%d)", ErrInvalid, what, c, i, s.classes, s.classes-1)
		}
	}
	return nil
}

// label scores output y against checked labels, in [0, 1]: the share of
// rows right.
func (s scorer) label(y []float32, labels []int) float64 {
	return s.m.LabelScore(y, s.shape, labels)
}

// agreement scores output y against the full-precision output full, in
// [0, 1], as calibration's agreement does.
func (s scorer) agreement(y, full []float32) float64 {
	return s.m.Agreement(y, full, s.shape)
}

// keep is what a report waiting for feedback holds of its output: a copy
// under a class metric (a feedback label is scored against it), nothing
// under a dense one (which takes no labels).
func (s scorer) keep(y []float32) []float32 {
	if !s.m.Labelled() {
		return nil
	}
	return slices.Clone(y)
}
