package costmodel

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/model"
)

// Hardware describes a device class by published figures, for deriving a
// profile without running anything on it (a roofline estimate). Profiles
// measured by `dyno-executor profile` replace derived ones.
type Hardware struct {
	Class string `json:"class"`
	Role  Role   `json:"role"`
	// PeakGFLOPS is the vendor's peak arithmetic throughput at the
	// precision inference runs at.
	PeakGFLOPS float64 `json:"peak_gflops"`
	// Utilisation is the share of peak a batch-1 CNN layer reaches
	// (an assumption, stated with its source).
	Utilisation float64 `json:"utilisation"`
	// MemGBps is the vendor's peak memory bandwidth.
	MemGBps float64 `json:"mem_gbps"`
	// BytesPerValue is 2 for FP16 inference, 4 for FP32.
	BytesPerValue float64 `json:"bytes_per_value"`
	// OpOverheadMs is the fixed cost of launching one layer.
	OpOverheadMs float64 `json:"op_overhead_ms"`
	// PackNsPerElement is the packing (device) or unpacking (cloud) cost.
	PackNsPerElement float64 `json:"pack_ns_per_element"`
	Source           string  `json:"source"`
}

// p95OverMedian is the tail assumed for derived profiles: batch-1 inference
// on a quiet machine has a p95 about 20% above its median.
const p95OverMedian = 1.2

// DeriveProfile estimates the latency of every block of arch on hw with a
// roofline model: each layer takes the longer of its arithmetic time
// (FLOPs / (peak x utilisation)) and its memory time (activations in and out
// plus weights, over the memory bandwidth), plus a launch overhead.
func DeriveProfile(arch *model.Arch, hw Hardware) (*Profile, error) {
	if hw.PeakGFLOPS <= 0 || hw.Utilisation <= 0 || hw.Utilisation > 1 || hw.MemGBps <= 0 || hw.BytesPerValue <= 0 {
		return nil, fmt.Errorf("%w: hardware %s: peak_gflops, mem_gbps and bytes_per_value must be positive and utilisation in (0, 1]", ErrInvalid, hw.Class)
	}
	stats, err := arch.Infer()
	if err != nil {
		return nil, err
	}
	p := &Profile{
		Version: ProfileVersion, Model: arch.Name, DeviceClass: hw.Class, Role: hw.Role, Host: "derived",
		Source: fmt.Sprintf("roofline estimate from published figures: %s", hw.Source),
		Blocks: make([]BlockTiming, len(arch.Units)), PackNsPerElement: hw.PackNsPerElement,
	}
	flops := hw.PeakGFLOPS * hw.Utilisation * 1e6 // FLOPs per ms
	bw := hw.MemGBps * 1e6                        // bytes per ms
	for _, st := range stats {
		var in int64
		for _, s := range st.In {
			in += s.Elements()
		}
		bytes := float64(in+st.Out.Elements()+st.Params) * hw.BytesPerValue
		ms := math.Max(float64(st.FLOPs)/flops, bytes/bw) + hw.OpOverheadMs
		p.Blocks[st.Unit].MedianMs += ms
	}
	for i := range p.Blocks {
		m := round3(p.Blocks[i].MedianMs)
		p.Blocks[i] = BlockTiming{MedianMs: m, P95Ms: round3(m * p95OverMedian)}
	}
	return p, p.Validate(len(arch.Units))
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
