package bandit

import "github.com/dynoml/dyno/costmodel"

// Stage indices of the five quantities dyno predicts for every arm.
const (
	stD = iota // device compute plus packing
	stT        // transfer (the link busy with the request)
	stR        // round trip
	stQ        // cloud queue
	stC        // cloud compute plus unpacking
	nStages
)

// stageNames name the stages in errors and summaries.
var stageNames = [nStages]string{"device", "transfer", "rtt", "queue", "cloud"}

// stagePoint is one arm's predicted stages in dyno's five-stage form.
type stagePoint [nStages]float64

// stages converts a point to costmodel.Stages for the objective.
func (p *stagePoint) stages(arm costmodel.Arm, bytes float64) costmodel.Stages {
	return costmodel.Stages{
		Arm: arm, DeviceMs: p[stD], NetworkMs: p[stT], RTTMs: p[stR], CloudQueueMs: p[stQ], CloudMs: p[stC],
		Bytes: bytes,
	}
}

// gradient is the objective's derivative with respect to each stage, used
// to carry stage uncertainty into cost uncertainty (the delta method). It
// mirrors costmodel.Objective.Cost; TestGradientMatchesCost holds the two
// together.
type gradient struct {
	o costmodel.Objective
	// latW is the latency weight of the objective's tie-break (or of the
	// weighted objective), read off the objective itself: the cost of a
	// request whose only time is a round trip, which is latency and
	// nothing else.
	latW    float64
	penalty float64
}

func newGradient(o costmodel.Objective) gradient {
	g := gradient{o: o, penalty: o.SLOPenalty}
	if g.penalty == 0 {
		g.penalty = costmodel.DefaultSLOPenalty
	}
	probe := o
	probe.LatencySLOMs = 0
	g.latW = probe.Cost(costmodel.Stages{RTTMs: 1})
	return g
}

// cost is the objective's cost of a point: costmodel.Objective.Cost
// without building a Stages value, for the hot path. TestCostMatchesObjective
// holds the two together.
func (g *gradient) cost(p *stagePoint, bytes float64) float64 {
	lat := p[stD] + p[stT] + p[stR] + p[stQ] + p[stC]
	var c float64
	switch g.o.Kind {
	case costmodel.MinLatency:
		c = lat
	case costmodel.MaxThroughput:
		c = max(p[stD], p[stT], p[stQ]+p[stC]) + g.latW*lat
	case costmodel.MinCloudCost:
		c = p[stC] + g.latW*lat
	case costmodel.Weighted:
		w := g.o.Weights
		c = w.LatencyMs*lat + w.BottleneckMs*max(p[stD], p[stT], p[stQ]+p[stC]) + w.CloudGPUMs*p[stC] + w.KB*bytes/1000
	}
	if s := g.o.LatencySLOMs; s > 0 && lat > s {
		c += g.penalty * (lat - s)
	}
	return c
}

// at returns d cost / d stage at p.
func (g *gradient) at(p *stagePoint) (out stagePoint) {
	lat := p[stD] + p[stT] + p[stR] + p[stQ] + p[stC]
	// the bottleneck of a pipelined stream: device, transfer, or cloud
	// (queue plus compute); the round trip overlaps
	var bottleneck stagePoint
	cloud := p[stQ] + p[stC]
	switch {
	case p[stD] >= p[stT] && p[stD] >= cloud:
		bottleneck[stD] = 1
	case p[stT] >= cloud:
		bottleneck[stT] = 1
	default:
		bottleneck[stQ], bottleneck[stC] = 1, 1
	}
	switch g.o.Kind {
	case costmodel.MinLatency:
		out = stagePoint{1, 1, 1, 1, 1}
	case costmodel.MaxThroughput:
		for i := range out {
			out[i] = bottleneck[i] + g.latW
		}
	case costmodel.MinCloudCost:
		for i := range out {
			out[i] = g.latW
		}
		out[stC]++
	case costmodel.Weighted:
		w := g.o.Weights
		for i := range out {
			out[i] = w.LatencyMs + w.BottleneckMs*bottleneck[i]
		}
		out[stC] += w.CloudGPUMs
	}
	if g.o.LatencySLOMs > 0 && lat > g.o.LatencySLOMs {
		for i := range out {
			out[i] += g.penalty
		}
	}
	return out
}
