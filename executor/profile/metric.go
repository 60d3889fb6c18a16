package profile

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metric kinds.
const (
	// MetricTop1 compares the argmax along the class axis, per row (every
	// position of the other axes: one row for a classifier, one per time
	// step for a sequence, one per pixel for a segmentation map).
	MetricTop1 = "top1"
	// MetricTopK counts a row as agreeing when the reference class (the
	// full-precision argmax, or the label) is among the k largest.
	MetricTopK = "topk"
	// MetricCosine counts a sample as agreeing when the cosine similarity
	// of the output with the full-precision output is at least Threshold.
	MetricCosine = "cosine"
	// MetricRelErr counts a sample as agreeing when the relative L2 error
	// against the full-precision output is at most Threshold.
	MetricRelErr = "relerr"
)

// Default thresholds of the dense metrics.
const (
	DefaultCosine = 0.99
	DefaultRelErr = 0.05
)

// Metric scores a model's output at an arm against its full-precision
// output (agreement) and, for the class metrics, against labels. The zero
// value means "pick from the output shape" (DefaultMetric).
type Metric struct {
	Kind string
	// K is top-k's k.
	K int
	// Threshold is cosine's least similarity or relerr's largest error.
	Threshold float64
	// Axis is the class axis of top1 and top-k; -1 means the last.
	Axis int
}

// ParseMetric reads --metric: "auto" (or ""), "top1", "top1:AXIS",
// "top5", "top5:AXIS" or "topk:K", "cosine", "cosine:MIN", "relerr",
// "relerr:MAX".
func ParseMetric(s string) (Metric, error) {
	name, arg, hasArg := strings.Cut(strings.TrimSpace(s), ":")
	num := func(def float64) (float64, error) {
		if !hasArg {
			return def, nil
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || math.IsNaN(v) || v <= 0 {
			return 0, fmt.Errorf("%w: metric %q: %q is not a positive number", ErrConfig, s, arg)
		}
		return v, nil
	}
	switch {
	case name == "" || name == "auto":
		return Metric{}, nil
	case name == MetricTop1:
		m := Metric{Kind: MetricTop1, Axis: -1}
		if hasArg {
			a, err := strconv.Atoi(arg)
			if err != nil || a < 0 {
				return Metric{}, fmt.Errorf("%w: metric %q: class axis %q is not a non-negative integer", ErrConfig, s, arg)
			}
			m.Axis = a
		}
		return m, nil
	case name == MetricTopK || strings.HasPrefix(name, "top"):
		ks, axis := strings.TrimPrefix(name, "top"), -1
		if name == MetricTopK {
			ks = arg
		} else if hasArg {
			a, err := strconv.Atoi(arg)
			if err != nil || a < 0 {
				return Metric{}, fmt.Errorf("%w: metric %q: class axis %q is not a non-negative integer", ErrConfig, s, arg)
			}
			axis = a
		}
		k, err := strconv.Atoi(ks)
		if err != nil || k < 1 {
			return Metric{}, fmt.Errorf("%w: metric %q: k %q is not a positive integer", ErrConfig, s, ks)
		}
		if k == 1 {
			return Metric{Kind: MetricTop1, Axis: axis}, nil
		}
		return Metric{Kind: MetricTopK, K: k, Axis: axis}, nil
	case name == MetricCosine:
		v, err := num(DefaultCosine)
		if err != nil {
			return Metric{}, err
		}
		if v > 1 {
			return Metric{}, fmt.Errorf("%w: metric %q: a cosine similarity is at most 1", ErrConfig, s)
		}
		return Metric{Kind: MetricCosine, Threshold: v}, nil
	case name == MetricRelErr:
		v, err := num(DefaultRelErr)
		if err != nil {
			return Metric{}, err
		}
		return Metric{Kind: MetricRelErr, Threshold: v}, nil
	}
	return Metric{}, fmt.Errorf("%w: metric %q is none of auto, top1[:AXIS], topK (e.g. top5), cosine[:MIN], relerr[:MAX]", ErrConfig, s)
}

// DefaultMetric picks the metric for an output shape, says why, and warns
// where the output gives the metric little to tell arms apart by: top1 per
// row along the last axis for a classifier ([1, C]) or a sequence
// ([1, T, C]); top1 along the channel axis per pixel for a map of C > 1
// channels ([1, C, H, W]); cosine similarity for dense outputs of one
// channel or higher rank; relative error for a single value.
func DefaultMetric(shape []int64) (Metric, string, []string) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	r := len(shape)
	last := int64(1)
	if r > 0 {
		last = shape[r-1]
	}
	switch {
	case n == 1:
		return Metric{Kind: MetricRelErr, Threshold: DefaultRelErr}, "the output is a single value",
			[]string{"the output has one element: no class to compare, so arms are told apart only by the relative error of one number"}
	case r <= 2 && last > 1:
		return Metric{Kind: MetricTop1, Axis: r - 1}, fmt.Sprintf("output %v: class scores along the last axis", shape), nil
	case r == 3 && last > 1:
		return Metric{Kind: MetricTop1, Axis: 2}, fmt.Sprintf("output %v: class scores per time step along the last axis", shape), nil
	case r == 4 && shape[1] > 1:
		return Metric{Kind: MetricTop1, Axis: 1}, fmt.Sprintf("output %v: a map with class scores along the channel axis, compared per pixel (--metric cosine for a dense map that is not per-class)", shape), nil
	}
	return Metric{Kind: MetricCosine, Threshold: DefaultCosine}, fmt.Sprintf("output %v: a dense output", shape), nil
}

// resolve fixes the class axis against the output shape.
func (m Metric) resolve(shape []int64) (Metric, error) {
	if m.Kind != MetricTop1 && m.Kind != MetricTopK {
		return m, nil
	}
	if m.Axis < 0 {
		m.Axis = len(shape) - 1
	}
	if m.Axis >= len(shape) {
		return m, fmt.Errorf("%w: class axis %d: the output %v has rank %d", ErrConfig, m.Axis, shape, len(shape))
	}
	if m.Kind == MetricTopK && int64(m.K) >= shape[m.Axis] {
		return m, fmt.Errorf("%w: top-%d of %d classes (axis %d of %v) always agrees", ErrConfig, m.K, shape[m.Axis], m.Axis, shape)
	}
	return m, nil
}

// String names the metric as the accuracy table records it.
func (m Metric) String() string {
	switch m.Kind {
	case MetricTop1:
		return fmt.Sprintf("top1 (class axis %d, per row)", m.Axis)
	case MetricTopK:
		return fmt.Sprintf("top%d (class axis %d, per row)", m.K, m.Axis)
	case MetricCosine:
		return fmt.Sprintf("cosine >= %g", m.Threshold)
	case MetricRelErr:
		return fmt.Sprintf("relative error <= %g", m.Threshold)
	}
	return "auto"
}

// Spec is the metric as ParseMetric reads it ("top1:2", "top5:1",
// "cosine:0.99", "relerr:0.05"), recorded in the accuracy table so that
// whoever scores outputs later (a device comparing with a shadow answer or
// a label) scores them the same way.
func (m Metric) Spec() string {
	switch m.Kind {
	case MetricTop1:
		return fmt.Sprintf("top1:%d", m.Axis)
	case MetricTopK:
		return fmt.Sprintf("top%d:%d", m.K, m.Axis)
	case MetricCosine, MetricRelErr:
		return fmt.Sprintf("%s:%g", m.Kind, m.Threshold)
	}
	return "auto"
}

// Agreement scores output y against the full-precision output full of
// the given shape, in [0, 1]: the share of rows whose class agrees (top1,
// top-k) or 1/0 for the dense metrics. The metric must be resolved (a
// non-negative class axis within the shape), as Calibrate's is.
func (m Metric) Agreement(y, full []float32, shape []int64) float64 {
	var ref []int
	if m.Labelled() {
		ref = m.argmaxRows(nil, full, shape)
	}
	return m.score(y, shape, ref, full, nil)
}

// LabelScore scores output y against labels (one class per row), in
// [0, 1]; for class metrics only, with len(labels) == Rows(shape).
func (m Metric) LabelScore(y []float32, shape []int64, labels []int) float64 {
	return m.score(y, shape, labels, nil, nil)
}

// TableName is the metric as the accuracy table's Metric field records
// it: "label-accuracy" (top1 on labels), "label-top5-accuracy",
// "top1-agreement", "top5-agreement", "cosine>=0.99-agreement",
// "relerr<=0.05-agreement".
func (m Metric) TableName(labels bool) string {
	var k string
	switch m.Kind {
	case MetricTop1:
		k = "top1"
	case MetricTopK:
		k = fmt.Sprintf("top%d", m.K)
	case MetricCosine:
		k = fmt.Sprintf("cosine>=%g", m.Threshold)
	case MetricRelErr:
		k = fmt.Sprintf("relerr<=%g", m.Threshold)
	}
	switch {
	case labels && m.Kind == MetricTop1:
		return "label-accuracy"
	case labels:
		return "label-" + k + "-accuracy"
	}
	return k + "-agreement"
}

// Labelled reports whether the metric can score labels.
func (m Metric) Labelled() bool { return m.Kind == MetricTop1 || m.Kind == MetricTopK }

// rows splits a shape at the class axis: outer x classes x inner, with
// outer x inner rows.
func (m Metric) rows(shape []int64) (outer, classes, inner int) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < m.Axis:
			outer *= int(d)
		case i > m.Axis:
			inner *= int(d)
		}
	}
	return outer, int(shape[m.Axis]), inner
}

// Rows is the number of rows the class metrics score (1 for the dense
// metrics): how many labels a sample needs.
func (m Metric) Rows(shape []int64) int {
	if !m.Labelled() {
		return 1
	}
	o, _, i := m.rows(shape)
	return o * i
}

// argmaxRows writes the argmax of every row of y into dst.
func (m Metric) argmaxRows(dst []int, y []float32, shape []int64) []int {
	outer, classes, inner := m.rows(shape)
	dst = dst[:0]
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*classes*inner + i
			best := 0
			for c := 1; c < classes; c++ {
				if y[base+c*inner] > y[base+best*inner] {
					best = c
				}
			}
			dst = append(dst, best)
		}
	}
	return dst
}

// inTopK reports whether class want is among the k largest of row r.
func (m Metric) inTopK(y []float32, shape []int64, r, want int) bool {
	outer, classes, inner := m.rows(shape)
	_ = outer
	o, i := r/inner, r%inner
	base := o*classes*inner + i
	v := y[base+want*inner]
	above := 0
	for c := 0; c < classes; c++ {
		if x := y[base+c*inner]; x > v || (x == v && c < want) {
			above++
		}
	}
	return above < m.K
}

// score is the share of rows (class metrics) or the 0/1 verdict (dense
// metrics) of y against the reference: the reference classes ref (one per
// row) for class metrics, the full-precision output full for dense ones.
func (m Metric) score(y []float32, shape []int64, ref []int, full []float32, buf []int) float64 {
	switch m.Kind {
	case MetricTop1:
		got := m.argmaxRows(buf, y, shape)
		hit := 0
		for r, c := range got {
			if c == ref[r] {
				hit++
			}
		}
		return float64(hit) / float64(len(got))
	case MetricTopK:
		hit := 0
		for r, c := range ref {
			if m.inTopK(y, shape, r, c) {
				hit++
			}
		}
		return float64(hit) / float64(len(ref))
	case MetricCosine:
		var dot, a, b float64
		for i := range y {
			dot += float64(y[i]) * float64(full[i])
			a += float64(y[i]) * float64(y[i])
			b += float64(full[i]) * float64(full[i])
		}
		cos := 1.0
		if a > 0 || b > 0 {
			cos = dot / math.Sqrt(a*b)
		}
		if cos >= m.Threshold {
			return 1
		}
		return 0
	case MetricRelErr:
		var d, b float64
		for i := range y {
			e := float64(y[i]) - float64(full[i])
			d += e * e
			b += float64(full[i]) * float64(full[i])
		}
		rel := 0.0
		if b > 0 {
			rel = math.Sqrt(d / b)
		} else if d > 0 {
			rel = math.Inf(1)
		}
		if rel <= m.Threshold {
			return 1
		}
		return 0
	}
	return 0
}
