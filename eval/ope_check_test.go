package eval_test

import (
	"slices"
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

// TestEvaluationOnDynoLogs is the reduced check of offline evaluation on
// the logs dyno itself makes (`dynoctl eval coverage --logger dyno`, 100
// seeds, is the full one). With the default floors the intervals of IPS,
// SNIPS and DR for static, device-only and cloud-only (30 times the best
// cost, seen through the baseline floor alone) cover the truth in at least
// 90% of the seeds. Every other case (dyno without the floors, where
// targets put mass on arms of probability 0; a logger that explores 5%; a
// log so short that the weights rest on a handful of records; the logger
// itself) either covers in 90% of the seeds or says so on every seed where
// it does not: a warning or a verdict other than supported.
func TestEvaluationOnDynoLogs(t *testing.T) {
	ss, err := eval.LoadScenarios("../scenarios/ope/mobilenet-egreedy.json")
	if err != nil {
		t.Fatal(err)
	}
	w, err := ss[0].Build()
	if err != nil {
		t.Fatal(err)
	}
	const seeds = 10
	for _, tc := range []struct {
		name     string
		logger   string
		tuning   eval.Tuning
		requests int
		covered  []string // candidates that must cover; the others must warn where they miss
	}{
		{"dyno default floors", bandit.NameDyno, eval.Tuning{}, 0, []string{bandit.NameStatic, bandit.NameDevice, bandit.NameCloud}},
		{"dyno without floors", bandit.NameDyno, eval.Tuning{Dyno: bandit.DynoConfig{ExploreFloor: -1, BaselineFloor: -1}}, 0, nil},
		{"egreedy 0.05", bandit.NameEGreedy, eval.Tuning{EGreedy: bandit.EGreedyConfig{Epsilon: 0.05}}, 0, nil},
		{"tiny ESS", bandit.NameEGreedy, eval.Tuning{EGreedy: bandit.EGreedyConfig{Epsilon: 0.05}}, 150, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := eval.CheckCoverage(w, eval.CoverageOptions{Logger: tc.logger, Tuning: tc.tuning, Seeds: seeds, Requests: tc.requests,
				Candidates: []string{bandit.NameStatic, bandit.NameDevice, bandit.NameCloud, eval.LoggerName}, EstimateOptions: eval.EstimateOptions{Bootstrap: 50}})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range res.Candidates {
				for _, e := range []eval.Estimator{eval.IPS, eval.SNIPS, eval.DR} {
					t.Logf("%-7s %-6s covered %2d/%d, missed unwarned %d, truth %.1f", c.Name, e, c.Covered[e], seeds, c.Silent[e], c.MeanTruth)
					if c.Silent[e] > 0 && float64(c.Covered[e]) < 0.9*seeds {
						t.Errorf("%s: %s covered the truth in %d of %d seeds and missed %d times without a warning", c.Name, e, c.Covered[e], seeds, c.Silent[e])
					}
					if slices.Contains(tc.covered, c.Name) && float64(c.Covered[e]) < 0.9*seeds {
						t.Errorf("%s: %s covered the truth in %d of %d seeds, want 90%%", c.Name, e, c.Covered[e], seeds)
					}
				}
			}
		})
	}
}
