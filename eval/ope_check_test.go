package eval_test

import (
	"testing"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/eval"
)

// TestOffPolicyIntervalsCoverTheTruth makes logs with an exploring policy in
// a simulated world whose true costs are known, and checks that the 95%
// intervals of IPS, SNIPS and DR cover each candidate's true value in at
// least 90% of the seeds and that DR's squared error is no worse than IPS's.
// This is the reduced check; `dynoctl eval coverage` runs the full one (100
// seeds).
func TestOffPolicyIntervalsCoverTheTruth(t *testing.T) {
	ss, err := eval.LoadScenarios("../scenarios/ope/mobilenet-egreedy.json")
	if err != nil {
		t.Fatal(err)
	}
	w, err := ss[0].Build()
	if err != nil {
		t.Fatal(err)
	}
	const seeds = 20
	res, err := eval.CheckCoverage(w, eval.CoverageOptions{Seeds: seeds, Tuning: eval.Tuning{EGreedy: bandit.EGreedyConfig{Epsilon: 1}}, EstimateOptions: eval.EstimateOptions{Bootstrap: 100}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Candidates {
		for _, e := range []eval.Estimator{eval.IPS, eval.SNIPS, eval.DR} {
			t.Logf("%-7s %-6s covered %2d/%d (bootstrap %2d/%d), MSE %.2f, mean truth %.1f", c.Name, e, c.Covered[e], seeds, c.BootCovered[e], seeds, c.MSE[e], c.MeanTruth)
			if float64(c.Covered[e]) < 0.9*seeds {
				t.Errorf("%s: %s's analytic interval covered the truth in %d of %d seeds, want at least 90%%", c.Name, e, c.Covered[e], seeds)
			}
		}
		if c.MSE[eval.DR] > c.MSE[eval.IPS] {
			t.Errorf("%s: DR's mean squared error %.3f exceeds IPS's %.3f", c.Name, c.MSE[eval.DR], c.MSE[eval.IPS])
		}
	}
}
