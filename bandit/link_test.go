package bandit_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// TestLinkPerExecutor: two executors of one key, one whose link delivers
// the bandwidth it measures and one whose link delivers 30% of it: each
// learns its own transfer coefficient (about 1 and 3.3), the snapshot
// carries both, and an executor deciding with the restored policy predicts
// with its own.
func TestLinkPerExecutor(t *testing.T) {
	cm := mobileNet(t)
	p, err := bandit.NewDyno(cm, bandit.Config{Objective: mobileLatency, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	const seed = 5
	rng := rand.New(rand.NewPCG(seed, 0))
	arm, _ := cm.Index(costmodel.Arm{Split: 0, Bits: 8})
	eff := map[string]float64{"fast": 1, "slow": 0.3}
	for n := 0; n < 400; n++ {
		id := []string{"fast", "slow"}[n%2]
		c := costmodel.Conditions{BandwidthMbps: 1 + 4*rng.Float64(), RTTMs: 40}
		obs := cm.Predict(arm, c)
		obs.NetworkMs *= (1 / eff[id]) * math.Exp(0.05*rng.NormFloat64())
		r := &bandit.Report{Conditions: c, Arm: cm.Arms()[arm], Propensity: 1, Observed: obs, Executor: id}
		if err := p.Learn(r); err != nil {
			t.Fatal(err)
		}
	}
	for id, e := range eff {
		tr, _, ok := p.LinkPosterior(id)
		if !ok || math.Abs(tr[0]-1/e) > 0.1/e {
			t.Errorf("seed %d: %s: transfer coefficient %.3f (own posterior %v), want about %.2f", seed, id, tr[0], ok, 1/e)
		}
	}
	if _, _, ok := p.LinkPosterior("never"); ok {
		t.Error("an executor that never reported has a link posterior")
	}
	blob, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := bandit.Restore(cm, blob)
	if err != nil {
		t.Fatal(err)
	}
	d := q.(*bandit.Dyno)
	if got := d.Executors(); !slices.Equal(got, []string{"fast", "slow"}) {
		t.Fatalf("restored executors %v", got)
	}
	c := costmodel.Conditions{BandwidthMbps: 2, RTTMs: 40}
	net := map[string]float64{}
	for _, id := range []string{"fast", "slow", "never"} {
		d.SetExecutor(id)
		s, _, _ := d.Predict(c, arm)
		net[id] = s.NetworkMs
	}
	if r := net["slow"] / net["fast"]; math.Abs(r-1/0.3) > 0.4 {
		t.Errorf("seed %d: predicted transfer slow/fast %.2f, want about 3.3", seed, r)
	}
	if !(net["never"] > net["fast"] && net["never"] < net["slow"]) {
		t.Errorf("seed %d: an executor without its own posterior predicts %.1f ms, want the class's, between %.1f and %.1f", seed, net["never"], net["fast"], net["slow"])
	}
}

// TestSafeExploration: arms the table holds just under the floor get
// probability SafeRate where they would be cheapest, until the budget of
// reports from held-out arms is spent; with the budget off, never.
func TestSafeExploration(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	// 4-bit arms are calibrated at 0.74, under this floor by half a point
	obj := costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.745}
	c := costmodel.Conditions{BandwidthMbps: 5, RTTMs: 20}
	heldOut := func(p *bandit.Dyno) float64 {
		var d bandit.Decision
		if err := p.Choose(c, &d); err != nil {
			t.Fatal(err)
		}
		var q float64
		for i, a := range cm.Arms() {
			if _, ok := p.Accuracy(i); !ok && a.Bits == 4 {
				q += d.Probs[i]
			}
		}
		return q
	}
	off, err := bandit.NewDyno(cm, bandit.Config{Objective: obj, Seed: 2, Dyno: bandit.DynoConfig{SafeBudget: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if q := heldOut(off); q != 0 {
		t.Fatalf("safe exploration off: held-out arms have probability %g", q)
	}
	p, err := bandit.NewDyno(cm, bandit.Config{Objective: obj, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if q := heldOut(p); math.Abs(q-0.1) > 1e-12 {
		t.Fatalf("held-out arms have probability %g, want SafeRate 0.1", q)
	}
	// the budget: 0.2% of (reports + 1000)
	i, _ := cm.Index(costmodel.Arm{Split: 4, Bits: 4})
	for n := 0; n < 3; n++ {
		r := &bandit.Report{Conditions: c, Arm: cm.Arms()[i], Propensity: 0.1, Observed: cm.Predict(i, c)}
		if err := p.Learn(r); err != nil {
			t.Fatal(err)
		}
	}
	used, budget := p.SafeExploration()
	if used != 3 || used < budget {
		t.Fatalf("used %g of a budget of %g, want 3 used and the budget spent", used, budget)
	}
	if q := heldOut(p); q != 0 {
		t.Fatalf("budget spent: held-out arms still have probability %g", q)
	}
}
