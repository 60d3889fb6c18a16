package device

import (
	"errors"
	"strings"
	"testing"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

func modelWith(spec string, shape ...int64) *costmodel.Model {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	m := &model.Manifest{Name: "m", Blocks: []model.Block{{Name: "b", Output: model.Tensor{Name: "y", Shape: shape, Elements: n}}}}
	return &costmodel.Model{Manifest: m, Accuracy: &costmodel.AccuracyTable{Model: "m", MetricSpec: spec}}
}

// TestScorerFromTable: the metric is the table's, or calibration's default
// for the output shape; a spec that does not parse or fit is refused.
func TestScorerFromTable(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		shape []int64
		want  string
		rows  int
	}{
		{"", []int64{1, 10}, "top1:1", 1},
		{"", []int64{1, 16, 12}, "top1:2", 16},
		{"auto", []int64{1, 2, 8, 8}, "top1:1", 64},
		{"", []int64{1, 1, 8, 8}, "cosine:0.99", 1},
		{"top5:2", []int64{1, 16, 12}, "top5:2", 16},
		{"relerr:0.1", []int64{1, 32}, "relerr:0.1", 1},
	} {
		s, _, err := newScorer(modelWith(tc.spec, tc.shape...))
		if err != nil {
			t.Fatalf("%q on %v: %v", tc.spec, tc.shape, err)
		}
		if s.m.Spec() != tc.want || s.rows != tc.rows {
			t.Errorf("%q on %v: metric %s with %d rows, want %s with %d", tc.spec, tc.shape, s.m.Spec(), s.rows, tc.want, tc.rows)
		}
	}
	for _, spec := range []string{"median", "top1:3", "top12:2", "cosine:2"} {
		_, _, err := newScorer(modelWith(spec, 1, 16, 12))
		if err == nil || !strings.Contains(err.Error(), "accuracy table of m") {
			t.Errorf("spec %q: %v, want a refusal naming the table", spec, err)
		}
	}
}

// TestScorerPerRow scores labels and agreement per time step, and refuses
// labels that do not fit the metric.
func TestScorerPerRow(t *testing.T) {
	s, _, err := newScorer(modelWith("", 1, 4, 3))
	if err != nil {
		t.Fatal(err)
	}
	y := []float32{
		0, 1, 0, // 1
		2, 0, 0, // 0
		0, 0, 3, // 2
		0, 5, 4, // 1
	}
	if got := s.label(y, []int{1, 0, 2, 2}); got != 0.75 {
		t.Errorf("label score %g, want 0.75", got)
	}
	full := []float32{0, 1, 0, 2, 0, 0, 0, 0, 3, 0, 4, 5}
	if got := s.agreement(y, full); got != 0.75 {
		t.Errorf("agreement %g, want 0.75", got)
	}
	for name, l := range map[string][]int{"one": {1}, "negative": {1, 0, 2, -1}, "beyond": {1, 0, 2, 3}} {
		if err := s.checkLabels(l, "label"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := s.check(y[:11], "the cloud's"); err == nil {
		t.Error("an output of 11 values for a [1 4 3] output was taken")
	}
	d, _, err := newScorer(modelWith("cosine:0.9", 1, 1, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.checkLabels([]int{0}, "label"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "value") {
		t.Errorf("a label under a dense metric: %v, want ErrInvalid pointing to a value", err)
	}
	if d.keep(y) != nil {
		t.Error("a dense metric keeps the output for labels it never takes")
	}
	if got := d.agreement([]float32{1, 0, 0, 0}, []float32{1, 0.1, 0, 0}); got != 1 {
		t.Errorf("cosine agreement %g, want 1", got)
	}
	if got := d.agreement([]float32{0, 1, 0, 0}, []float32{1, 0, 0, 0}); got != 0 {
		t.Errorf("cosine agreement of orthogonal outputs %g, want 0", got)
	}
}
