package controller

import (
	"math"
	"sort"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// summaryTop is how many of the most probable arms a summary lists.
const summaryTop = 5

// summarize restores a published policy and says what it does at c: its
// greedy arm, its most probable arms with their expected costs, the static
// DynO choice, and the posterior of the stage coefficients. It reads only
// the published version, never the learner's live state.
func summarize(k *keyEntry, pol *api.Policy, c costmodel.Conditions) (*api.PolicySummary, error) {
	state, err := pol.DecodedBanditState()
	if err != nil {
		return nil, err
	}
	p, err := bandit.Restore(k.cm, state)
	if err != nil {
		return nil, err
	}
	var d bandit.Decision
	if err := p.Choose(c, &d); err != nil {
		return nil, err
	}
	obj := costmodel.Objective{Kind: costmodel.MinLatency}
	if o := k.objective.Load(); o != nil {
		obj = *o
	}
	arms := k.cm.Arms()
	costs := make([]float64, len(arms))
	from := "costmodel"
	if ec, ok := p.(expectedCoster); ok && ec.ExpectedCosts(c, costs) == nil {
		from = "posterior"
	} else {
		for i := range arms {
			costs[i] = obj.Cost(k.cm.Predict(i, c))
		}
	}
	s := &api.PolicySummary{Conditions: apiConditions(c), CostFrom: from}
	// Greedy: the lowest expected cost among the arms the policy may choose
	// (probability above zero); the most probable arm if none has a cost.
	greedy := -1
	for i := range arms {
		if d.Probs[i] > 0 && !math.IsNaN(costs[i]) && (greedy < 0 || costs[i] < costs[greedy]) {
			greedy = i
		}
	}
	if greedy < 0 {
		greedy = d.Index
	}
	s.Greedy, s.GreedyProbability, s.GreedyExpectedCost = apiArm(arms[greedy]), d.Probs[greedy], costs[greedy]
	order := make([]int, len(arms))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return d.Probs[order[a]] > d.Probs[order[b]] })
	for _, i := range order[:min(summaryTop, len(order))] {
		s.Top = append(s.Top, &api.ArmSummary{Arm: apiArm(arms[i]), Probability: d.Probs[i], ExpectedCost: costs[i]})
	}
	if ch, err := k.cm.Choose(c, obj, nil); err == nil {
		s.StaticArm = apiArm(ch.Best)
		s.StaticCost = ch.Ranked[0].Cost
	}
	if pp, ok := p.(posteriorer); ok {
		post := pp.Posterior()
		for i, st := range []struct {
			name string
			v    [2]float64
		}{{"device", post.Device}, {"transfer", post.Transfer}, {"rtt", post.RTT}, {"queue", post.Queue}, {"cloud", post.Cloud}} {
			s.Stages = append(s.Stages, &api.StageSummary{Stage: st.name, Coefficient: st.v[0], Second: st.v[1], NoiseSd: post.NoiseSD[i]})
		}
	}
	return s, nil
}

func apiArm(a costmodel.Arm) *api.Arm { return &api.Arm{Split: uint32(a.Split), Bits: uint32(a.Bits)} }

func apiConditions(c costmodel.Conditions) *api.Conditions {
	return &api.Conditions{BandwidthMbps: c.BandwidthMbps, RttMs: c.RTTMs, CloudQueueMs: c.CloudQueueMs, CloudSlowdown: c.CloudSlowdown, DeviceSlowdown: c.DeviceSlowdown}
}
