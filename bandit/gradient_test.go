package bandit

import (
	"math/rand/v2"
	"testing"

	"github.com/dynoml/dyno/costmodel"
)

var testObjectives = []struct {
	name string
	o    costmodel.Objective
}{
	{"min-latency", costmodel.Objective{Kind: costmodel.MinLatency}},
	{"min-latency with SLO", costmodel.Objective{Kind: costmodel.MinLatency, LatencySLOMs: 300}},
	{"max-throughput", costmodel.Objective{Kind: costmodel.MaxThroughput}},
	{"max-throughput with SLO", costmodel.Objective{Kind: costmodel.MaxThroughput, LatencySLOMs: 300, SLOPenalty: 3}},
	{"min-cloud-cost", costmodel.Objective{Kind: costmodel.MinCloudCost, LatencySLOMs: 300}},
	{"weighted", costmodel.Objective{Kind: costmodel.Weighted, LatencySLOMs: 400, Weights: costmodel.Weights{LatencyMs: 1, BottleneckMs: 2, CloudGPUMs: 20, KB: 0.1}}},
}

// TestCostMatchesObjective holds the hot path's cost to the objective's.
func TestCostMatchesObjective(t *testing.T) {
	const seed = 5
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, tc := range testObjectives {
		t.Run(tc.name, func(t *testing.T) {
			g := newGradient(tc.o)
			for n := 0; n < 2000; n++ {
				var p stagePoint
				for k := range p {
					p[k] = 200 * rng.Float64()
				}
				bytes := 1e5 * rng.Float64()
				want := tc.o.Cost(p.stages(costmodel.Arm{}, bytes))
				if got := g.cost(&p, bytes); !approxEq(got, want, 1e-12) {
					t.Fatalf("seed %d: cost(%v) = %g, objective says %g", seed, p, got, want)
				}
			}
		})
	}
}

// TestGradientMatchesCost checks the gradient against finite differences of
// the objective away from its kinks.
func TestGradientMatchesCost(t *testing.T) {
	const seed, h = 9, 1e-4
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, tc := range testObjectives {
		t.Run(tc.name, func(t *testing.T) {
			g := newGradient(tc.o)
			checked := 0
			for n := 0; n < 2000 && checked < 300; n++ {
				var p stagePoint
				for k := range p {
					p[k] = 200 * rng.Float64()
				}
				// stay away from the max and SLO kinks
				lat := p[stD] + p[stT] + p[stR] + p[stQ] + p[stC]
				top := []float64{p[stD], p[stT], p[stQ] + p[stC]}
				if abs(lat-tc.o.LatencySLOMs) < 1 || nearTie(top, 1) {
					continue
				}
				checked++
				grad := g.at(&p)
				for k := range p {
					q := p
					q[k] += h
					fd := (tc.o.Cost(q.stages(costmodel.Arm{}, 0)) - tc.o.Cost(p.stages(costmodel.Arm{}, 0))) / h
					if !approxEq(grad[k], fd, 1e-4) {
						t.Fatalf("seed %d: at %v d/d%s = %g, finite difference %g", seed, p, stageNames[k], grad[k], fd)
					}
				}
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func nearTie(v []float64, tol float64) bool {
	for i := range v {
		for j := i + 1; j < len(v); j++ {
			if abs(v[i]-v[j]) < tol {
				return true
			}
		}
	}
	return false
}
