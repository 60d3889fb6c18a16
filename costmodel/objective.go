package costmodel

import (
	"fmt"
	"math"
)

// ObjectiveKind names what the scheduler minimises.
type ObjectiveKind string

// The objectives.
const (
	// MaxThroughput minimises the bottleneck stage of a pipelined stream
	// (ties go to the lower latency).
	MaxThroughput ObjectiveKind = "max-throughput"
	// MinLatency minimises end-to-end latency.
	MinLatency ObjectiveKind = "min-latency"
	// MinCloudCost minimises cloud GPU time while the latency SLO holds
	// (DynO's onloading aim; ties go to the lower latency); it needs an SLO.
	MinCloudCost ObjectiveKind = "min-cloud-cost"
	// Weighted minimises a weighted sum of latency, bottleneck, cloud GPU
	// time and kilobytes sent.
	Weighted ObjectiveKind = "weighted"
)

// DefaultSLOPenalty is the cost added per millisecond over the SLO.
const DefaultSLOPenalty = 10.0

// Objective turns the stages of an arm into one cost to minimise, with an
// accuracy floor (a hard constraint on which arms are eligible) and an
// optional latency SLO (a soft constraint: each millisecond over it costs
// SLOPenalty, so an arm that meets the SLO wins whenever one exists and the
// least late arm wins otherwise).
type Objective struct {
	Kind ObjectiveKind `json:"kind"`
	// AccuracyFloor in [0, 1]: arms whose accuracy is below it are not
	// eligible.
	AccuracyFloor float64 `json:"accuracy_floor"`
	// LatencySLOMs, zero for none.
	LatencySLOMs float64 `json:"latency_slo_ms,omitempty"`
	// SLOPenalty per ms over the SLO; zero means DefaultSLOPenalty.
	SLOPenalty float64 `json:"slo_penalty,omitempty"`
	// Weights are used by the weighted objective only.
	Weights Weights `json:"weights,omitempty"`
}

// Weights of the weighted objective.
type Weights struct {
	LatencyMs    float64 `json:"latency_ms,omitempty"`
	BottleneckMs float64 `json:"bottleneck_ms,omitempty"`
	CloudGPUMs   float64 `json:"cloud_gpu_ms,omitempty"`
	KB           float64 `json:"kb,omitempty"`
}

// tieBreakLatencyWeight breaks ties between arms of equal cloud cost (every
// device-only arm costs none) or equal bottleneck in favour of the faster one.
const tieBreakLatencyWeight = 1e-3

// Validate names the first bad field.
func (o Objective) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: objective: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	switch o.Kind {
	case MaxThroughput, MinLatency, MinCloudCost, Weighted:
	default:
		return bad("kind", "unknown objective %q (want %s, %s, %s or %s)", o.Kind, MaxThroughput, MinLatency, MinCloudCost, Weighted)
	}
	if err := unit(o.AccuracyFloor); err != nil {
		return bad("accuracy_floor", "%v", err)
	}
	if err := finiteNonNegative(o.LatencySLOMs); err != nil {
		return bad("latency_slo_ms", "%v", err)
	}
	if err := finiteNonNegative(o.SLOPenalty); err != nil {
		return bad("slo_penalty", "%v", err)
	}
	if o.Kind == MinCloudCost && o.LatencySLOMs == 0 {
		return bad("latency_slo_ms", "min-cloud-cost needs a latency SLO")
	}
	w := o.Weights
	for _, f := range []struct {
		name string
		v    float64
	}{{"weights.latency_ms", w.LatencyMs}, {"weights.bottleneck_ms", w.BottleneckMs}, {"weights.cloud_gpu_ms", w.CloudGPUMs}, {"weights.kb", w.KB}} {
		if err := finiteNonNegative(f.v); err != nil {
			return bad(f.name, "%v", err)
		}
	}
	if o.Kind == Weighted && w == (Weights{}) {
		return bad("weights", "all zero: the weighted objective needs at least one weight")
	}
	return nil
}

// Cost is the objective's cost of an arm with the given stages, SLO penalty
// included. Lower is better.
func (o Objective) Cost(s Stages) float64 {
	return o.cost(s.Device(), s.NetworkMs, s.RTTMs, s.Cloud(), s.CloudGPUMs(), s.Bytes)
}

// cost is the objective of the stages D (device), the transfer and the
// round trip, C (cloud), the cloud GPU time and the bytes sent, summed as
// the Stages methods sum them.
func (o *Objective) cost(device, transfer, rtt, cloud, gpu, bytes float64) float64 {
	latency := device + (transfer + rtt) + cloud
	var c float64
	switch o.Kind {
	case MaxThroughput:
		c = bottleneck(device, transfer, cloud) + tieBreakLatencyWeight*latency
	case MinLatency:
		c = latency
	case MinCloudCost:
		c = gpu + tieBreakLatencyWeight*latency
	case Weighted:
		w := &o.Weights
		c = w.LatencyMs*latency + w.BottleneckMs*bottleneck(device, transfer, cloud) + w.CloudGPUMs*gpu + w.KB*bytes/1000
	}
	return c + o.penalty(latency)
}

// bottleneck is Stages.BottleneckMs of the stage times.
func bottleneck(device, transfer, cloud float64) float64 {
	return math.Max(device, math.Max(transfer, cloud))
}

func (o Objective) penalty(latencyMs float64) float64 {
	if o.LatencySLOMs == 0 || latencyMs <= o.LatencySLOMs {
		return 0
	}
	p := o.SLOPenalty
	if p == 0 {
		p = DefaultSLOPenalty
	}
	return p * (latencyMs - o.LatencySLOMs)
}

// MeetsSLO reports whether a latency meets the objective's SLO (always true
// without one).
func (o Objective) MeetsSLO(latencyMs float64) bool {
	return o.LatencySLOMs == 0 || latencyMs <= o.LatencySLOMs
}
