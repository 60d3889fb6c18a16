package costmodel

import (
	"fmt"
	"sort"
)

// Ranked is one arm's prediction, cost and eligibility.
type Ranked struct {
	Stages
	Cost       float64 `json:"cost"`
	LatencyMs  float64 `json:"latency_ms"`
	Throughput float64 `json:"throughput_rps"`
	CloudGPUMs float64 `json:"cloud_gpu_ms"`
	MeetsSLO   bool    `json:"meets_slo"`
	// Excluded says why the arm may not be chosen; empty if eligible.
	Excluded string `json:"excluded,omitempty"`
}

// Choice is the static DynO scheduler's decision.
type Choice struct {
	Best Arm `json:"best"`
	// Ranked lists every arm, eligible ones first by ascending cost, then
	// excluded ones.
	Ranked []Ranked `json:"ranked"`
}

// Eligible reports whether arm i may be chosen under the objective, and
// why not. allowed masks arms by index (nil allows all).
func (cm *Model) Eligible(i int, o Objective, allowed []bool) (bool, string) {
	b := cm.bases[i]
	switch {
	case allowed != nil && !allowed[i]:
		return false, "masked"
	case !b.Calibrated && o.AccuracyFloor > 0:
		return false, fmt.Sprintf("no accuracy entry (floor %.3f)", o.AccuracyFloor)
	case b.Accuracy < o.AccuracyFloor:
		return false, fmt.Sprintf("accuracy %.3f below floor %.3f", b.Accuracy, o.AccuracyFloor)
	}
	return true, ""
}

// Choose is the static DynO scheduler: evaluate every arm under conditions c
// and pick the eligible arm of least cost. allowed masks arms by index (nil
// allows all).
func (cm *Model) Choose(c Conditions, o Objective, allowed []bool) (Choice, error) {
	if err := c.Validate(); err != nil {
		return Choice{}, err
	}
	if err := o.Validate(); err != nil {
		return Choice{}, err
	}
	if allowed != nil && len(allowed) != len(cm.arms) {
		return Choice{}, fmt.Errorf("%w: mask has %d entries for %d arms", ErrInvalid, len(allowed), len(cm.arms))
	}
	ranked := make([]Ranked, len(cm.arms))
	for i := range cm.arms {
		s := cm.Predict(i, c)
		r := Ranked{Stages: s, Cost: o.Cost(s), LatencyMs: s.LatencyMs(), Throughput: s.ThroughputRPS(), CloudGPUMs: s.CloudGPUMs(), MeetsSLO: o.MeetsSLO(s.LatencyMs())}
		if ok, why := cm.Eligible(i, o, allowed); !ok {
			r.Excluded = why
		}
		ranked[i] = r
	}
	sort.SliceStable(ranked, func(i, j int) bool {
		ei, ej := ranked[i].Excluded == "", ranked[j].Excluded == ""
		if ei != ej {
			return ei
		}
		return ranked[i].Cost < ranked[j].Cost
	})
	if ranked[0].Excluded != "" {
		return Choice{Ranked: ranked}, fmt.Errorf("%w: every arm is masked or below the accuracy floor %.3f", ErrNoEligibleArm, o.AccuracyFloor)
	}
	return Choice{Best: ranked[0].Arm, Ranked: ranked}, nil
}
