package profile

import "fmt"

// MetricFor is the metric an accuracy table's metric_spec names, resolved
// against the model's output shape, as a scorer of outputs after
// calibration needs it: an empty or "auto" spec (tables written before
// the spec was recorded) is the metric Calibrate picks from the shape. why
// says where it came from.
func MetricFor(spec string, shape []int64) (Metric, string, error) {
	m, err := ParseMetric(spec)
	if err != nil {
		return Metric{}, "", err
	}
	why := "the accuracy table's metric_spec " + spec
	if m.Kind == "" {
		var from string
		m, from, _ = DefaultMetric(shape)
		why = "picked from the output shape as calibration does (the table records no metric_spec): " + from
	}
	if m, err = m.resolve(shape); err != nil {
		return Metric{}, "", fmt.Errorf("metric_spec %q: %w", spec, err)
	}
	return m, why, nil
}

// Classes is the number of classes along the class axis of a resolved
// class metric (0 for the dense metrics).
func (m Metric) Classes(shape []int64) int {
	if !m.Labelled() {
		return 0
	}
	_, c, _ := m.rows(shape)
	return c
}
