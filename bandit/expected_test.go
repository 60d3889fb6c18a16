package bandit_test

import (
	"errors"
	"math"
	"testing"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// At the prior, dyno's expected cost of every arm is the cost model's.
func TestExpectedCostsAtThePriorAreTheCostModels(t *testing.T) {
	cm := mobileNet(t)
	obj := costmodel.Objective{Kind: costmodel.MinLatency}
	p, err := bandit.NewDyno(cm, bandit.Config{Objective: obj})
	if err != nil {
		t.Fatal(err)
	}
	c := costmodel.Conditions{BandwidthMbps: 3, RTTMs: 50}
	got := make([]float64, len(cm.Arms()))
	if err := p.ExpectedCosts(c, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		want := obj.Cost(cm.Predict(i, c))
		if math.Abs(got[i]-want) > 1e-6*math.Max(1, want) {
			t.Fatalf("arm %v: expected cost %g, cost model %g", cm.Arms()[i], got[i], want)
		}
	}
	if err := p.ExpectedCosts(c, got[:1]); !errors.Is(err, bandit.ErrInvalid) {
		t.Fatalf("short dst: %v", err)
	}
	if err := p.ExpectedCosts(costmodel.Conditions{}, got); !errors.Is(err, bandit.ErrInvalid) {
		t.Fatalf("zero bandwidth: %v", err)
	}
}
