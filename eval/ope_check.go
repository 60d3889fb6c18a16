package eval

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/tracelog"
)

// CoverageOptions configure CheckCoverage.
type CoverageOptions struct {
	// Logger is the exploring policy that makes the logs; default
	// egreedy with Tuning.EGreedy.Epsilon (default 0.5). dyno logs with
	// Tuning.Dyno, its exploration floor included.
	Logger string
	Tuning Tuning
	// Candidates are the policies evaluated offline; default static,
	// device, cloud and dyno (each frozen at its prior).
	Candidates []string
	// Seeds is the number of independent logs; default 100.
	Seeds int
	// Requests per log; zero means the scenario's.
	Requests int
	// Estimators checked; default ips, snips and dr.
	Estimators []Estimator
	EstimateOptions
}

// LoggerName names the logger itself among the candidates.
const LoggerName = "logger"

// CoverageResult is how often each estimator's interval covered the truth.
type CoverageResult struct {
	Scenario string `json:"scenario"`
	Logger   string `json:"logger"`
	// ExploreFloor is dyno's exploration floor when dyno logged.
	ExploreFloor float64             `json:"explore_floor,omitempty"`
	Seeds        int                 `json:"seeds"`
	Requests     int                 `json:"requests"`
	Candidates   []CandidateCoverage `json:"candidates"`
}

// CandidateCoverage is one candidate's coverage and error per estimator.
type CandidateCoverage struct {
	Name string `json:"name"`
	// MeanTruth is the candidate's true value averaged over the seeds.
	MeanTruth float64 `json:"mean_truth"`
	// Covered counts the seeds whose analytic interval held the truth;
	// BootCovered the bootstrap interval's.
	Covered     map[Estimator]int `json:"covered"`
	BootCovered map[Estimator]int `json:"boot_covered"`
	// Silent counts the seeds whose analytic interval missed the truth
	// while the evaluation warned of nothing and judged the estimate
	// supported: the misses nobody was told about.
	Silent map[Estimator]int `json:"silent"`
	// Undefined counts the seeds where the estimate had no value (no
	// support); MSE is over the others.
	Undefined map[Estimator]int     `json:"undefined"`
	MSE       map[Estimator]float64 `json:"mse"`
}

// CheckCoverage makes Seeds logs of the world with an exploring policy and
// evaluates each candidate on each log, against the truth the simulator
// knows: the candidate's expected cost on the logged requests,
// sum over arms of its probability times the arm's true expected cost.
func CheckCoverage(w *World, opt CoverageOptions) (*CoverageResult, error) {
	if opt.Logger == "" {
		opt.Logger = bandit.NameEGreedy
	}
	if opt.Logger == bandit.NameEGreedy && opt.Tuning.EGreedy.Epsilon == 0 {
		opt.Tuning.EGreedy.Epsilon = 0.5
	}
	if len(opt.Candidates) == 0 {
		opt.Candidates = []string{bandit.NameStatic, bandit.NameDevice, bandit.NameCloud, bandit.NameDyno}
	}
	if opt.Seeds == 0 {
		opt.Seeds = 100
	}
	if opt.Requests == 0 {
		opt.Requests = w.Scenario.Requests
	}
	if len(opt.Estimators) == 0 {
		opt.Estimators = []Estimator{IPS, SNIPS, DR}
	}
	res := &CoverageResult{Scenario: w.Scenario.Name, Logger: opt.Logger, Seeds: opt.Seeds, Requests: opt.Requests}
	if opt.Logger == bandit.NameDyno {
		res.ExploreFloor = opt.Tuning.Dyno.ExploreFloor
		if res.ExploreFloor == 0 {
			res.ExploreFloor = bandit.DefaultExploreFloor
		}
	}
	for _, c := range opt.Candidates {
		res.Candidates = append(res.Candidates, CandidateCoverage{Name: c, Covered: map[Estimator]int{}, BootCovered: map[Estimator]int{},
			Silent: map[Estimator]int{}, Undefined: map[Estimator]int{}, MSE: map[Estimator]float64{}})
	}
	for seed := 0; seed < opt.Seeds; seed++ {
		build := func(salt uint64) ([]Target, error) {
			var ts []Target
			for i, c := range opt.Candidates {
				if c == LoggerName {
					ts = append(ts, LoggerTarget(c))
					continue
				}
				p, err := bandit.New(c, w.Seen, bandit.Config{Objective: w.Scenario.Objective, Seed: uint64(seed)*131 + uint64(i) + salt, Layers: w.Layers})
				if err != nil {
					return nil, err
				}
				ts = append(ts, Target{Name: c, Policy: p})
			}
			return ts, nil
		}
		targets, err := build(0)
		if err != nil {
			return nil, err
		}
		// A second copy of each candidate gives the distributions the
		// truth is computed with; candidates never learn, so both copies
		// agree on every distribution.
		truthPolicies, err := build(1 << 32)
		if err != nil {
			return nil, err
		}
		eo := opt.EstimateOptions
		eo.Seed = uint64(seed)
		off, err := NewOffline(w.Seen, targets, OfflineOptions{EstimateOptions: eo, Estimators: opt.Estimators, Objective: w.Scenario.Objective})
		if err != nil {
			return nil, err
		}
		truth := make([]float64, len(targets))
		var dec bandit.Decision
		err = w.Log(opt.Logger, seed, opt.Requests, &opt.Tuning, func(rec *tracelog.Record, trueCost []float64) error {
			for t, tp := range truthPolicies {
				if tp.Logged {
					dec.Probs = append(dec.Probs[:0], rec.Probs...)
				} else if err := tp.Policy.Choose(rec.Conditions, &dec); err != nil {
					return err
				}
				for a, p := range dec.Probs {
					if p > 0 {
						truth[t] += p * trueCost[a]
					}
				}
			}
			return off.Add(rec)
		})
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", seed, err)
		}
		rep, err := off.Report()
		if err != nil {
			return nil, err
		}
		for t := range targets {
			v := truth[t] / float64(rep.Records)
			c := &res.Candidates[t]
			c.MeanTruth += v / float64(opt.Seeds)
			tr := &rep.Targets[t]
			for _, e := range tr.Estimates {
				switch {
				case e.Lo <= v && v <= e.Hi:
					c.Covered[e.Estimator]++
				case len(tr.Warnings) == 0 && e.Verdict == Supported:
					c.Silent[e.Estimator]++
				}
				if !math.IsNaN(e.BootLo) && e.BootLo <= v && v <= e.BootHi {
					c.BootCovered[e.Estimator]++
				}
				if math.IsNaN(e.Value) {
					c.Undefined[e.Estimator]++
				} else {
					c.MSE[e.Estimator] += (e.Value - v) * (e.Value - v) / float64(opt.Seeds)
				}
			}
		}
	}
	return res, nil
}
