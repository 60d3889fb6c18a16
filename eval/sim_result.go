package eval

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// Options tune a simulation run. Zero values take the defaults named.
type Options struct {
	// Policies to run; nil runs every policy of bandit.Names().
	Policies []string
	// Seeds per scenario; zero means 5.
	Seeds int
	// Requests overrides the scenario's request count when positive.
	Requests int
	// Parallel bounds how many (scenario, seed) runs go at once; zero
	// means GOMAXPROCS.
	Parallel int
	// CurveEvery is the spacing of learning-curve points; zero means 100.
	CurveEvery int
	// Window is the rolling window of the learning curves and of the
	// recovery measure; zero means 100.
	Window int
	// Dyno tunes dyno's learner; the zero value takes its defaults.
	Dyno bandit.DynoConfig
	// Tolerance is how close to the oracle's rolling mean cost a policy
	// must come back after a change to count as recovered; zero means 0.05.
	Tolerance float64
	// Traces, when set, is a folder that receives every simulated request
	// as trace records (docs/traces.md), one JSON Lines file per scenario,
	// policy and seed: SCENARIO-POLICY-seedN.jsonl.
	Traces string
}

func (o *Options) resolve() error {
	if o.Policies == nil {
		o.Policies = bandit.Names()
	}
	if len(o.Policies) == 0 {
		return fmt.Errorf("%w: policies: empty", ErrInvalidOptions)
	}
	known := map[string]bool{PolicyDynoShared: true, PolicyDynoSeparate: true}
	for _, n := range bandit.Names() {
		known[n] = true
	}
	seen := map[string]bool{}
	for _, p := range o.Policies {
		if !known[p] {
			return fmt.Errorf("%w: policies: unknown policy %q (known: %v)", ErrInvalidOptions, p, bandit.Names())
		}
		if seen[p] {
			return fmt.Errorf("%w: policies: %q twice", ErrInvalidOptions, p)
		}
		seen[p] = true
	}
	def := func(v *int, d int, name string) error {
		if *v < 0 {
			return fmt.Errorf("%w: %s: negative (%d)", ErrInvalidOptions, name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	for _, f := range []struct {
		v    *int
		d    int
		name string
	}{{&o.Seeds, 5, "seeds"}, {&o.Requests, 0, "requests"}, {&o.Parallel, runtime.GOMAXPROCS(0), "parallel"},
		{&o.CurveEvery, 100, "curve_every"}, {&o.Window, 100, "window"}} {
		if err := def(f.v, f.d, f.name); err != nil {
			return err
		}
	}
	if o.Tolerance == 0 {
		o.Tolerance = 0.05
	}
	if !(o.Tolerance > 0) || math.IsInf(o.Tolerance, 0) {
		return fmt.Errorf("%w: tolerance: %g is not positive", ErrInvalidOptions, o.Tolerance)
	}
	return nil
}

// ScenarioResult is the outcome of one scenario over every seed.
type ScenarioResult struct {
	Scenario  string `json:"scenario"`
	File      string `json:"file,omitempty"`
	Model     string `json:"model"`
	Objective string `json:"objective"`
	Arms      int    `json:"arms"`
	Requests  int    `json:"requests"`
	Seeds     int    `json:"seeds"`
	// Exact says the true costs are what the profiles predict
	// (Scenario.Exact); CalibrationExact that the true accuracy is the
	// calibration table (Scenario.CalibrationExact).
	Exact            bool `json:"exact_profiles"`
	CalibrationExact bool `json:"exact_calibration"`
	// OracleMeanCost is the oracle's mean cost per request.
	OracleMeanCost float64        `json:"oracle_mean_cost"`
	Policies       []PolicyResult `json:"policies"`
	// BestFixed is the best fixed arm in hindsight: per seed, the arm
	// that truly meets the floor with the least total true cost, run for
	// every request.
	BestFixed FixedResult `json:"best_fixed"`
	// Changes are the request counts of the truth's abrupt changes, and
	// ChangeBetter says, per change, whether it made the oracle's cost
	// lower (conditions improved) or not.
	Changes      []int  `json:"changes,omitempty"`
	ChangeBetter []bool `json:"change_better,omitempty"`
	// Executors names the fleet members, when the scenario has a fleet.
	Executors []string `json:"executors,omitempty"`
	// Curves are the learning curves, averaged over seeds.
	Curves []CurvePoint `json:"-"`
}

// PolicyResult is one policy's outcome in one scenario, averaged over seeds
// (sums are per seed, then averaged).
type PolicyResult struct {
	Policy   string  `json:"policy"`
	MeanCost float64 `json:"mean_cost"`
	// Regret is the cumulative regret against the oracle, mean over seeds;
	// RegretSD its standard deviation over seeds.
	Regret   float64 `json:"regret"`
	RegretSD float64 `json:"regret_sd"`
	// SLOShare and FloorShare are the shares of requests whose realised
	// latency met the SLO and whose arm's true accuracy met the floor.
	SLOShare   float64 `json:"slo_share"`
	FloorShare float64 `json:"floor_share"`
	// MeanKB is kilobytes sent per request.
	MeanKB float64 `json:"mean_kb"`
	// Arms is the histogram of chosen arms (summed over seeds), most
	// chosen first.
	Arms []ArmCount `json:"arms"`
	// Recovery is the recovery after each abrupt change.
	Recovery []Recovery `json:"recovery,omitempty"`
	// ExecutorRegret is the regret per fleet member (Scenario.Fleet
	// order), mean over seeds.
	ExecutorRegret []float64 `json:"executor_regret,omitempty"`
	// Errors counts requests on which the policy failed to choose or to
	// learn (it then ran device-only); Error is the first such error.
	Errors int    `json:"errors,omitempty"`
	Error  string `json:"error,omitempty"`
}

// FixedResult is the best fixed arm in hindsight: its regret against the
// oracle, mean and standard deviation over seeds, and the arm that was best
// on most seeds.
type FixedResult struct {
	Arm      string  `json:"arm"`
	Regret   float64 `json:"regret"`
	RegretSD float64 `json:"regret_sd"`
}

// ArmCount is one bar of the arm histogram.
type ArmCount struct {
	Arm   string `json:"arm"`
	Count int    `json:"count"`
}

// Recovery is how long a policy took, after an abrupt change at request At,
// to bring its rolling mean cost (seed-averaged) back within the tolerance
// of the oracle's and keep it there for two windows. Requests is -1 if it
// never did before the next change or the end.
type Recovery struct {
	At       int `json:"at"`
	Requests int `json:"requests"`
	// Better says that conditions improved at the change (the oracle's
	// mean cost after it is below its mean cost before).
	Better bool `json:"better"`
}

// CurvePoint is one point of a learning curve.
type CurvePoint struct {
	Request int
	Policy  string
	// CumRegret is the cumulative regret up to Request; RollingCost and
	// OracleRollingCost are the mean costs over the last Window requests.
	CumRegret, RollingCost, OracleRollingCost float64
}

// Run simulates the scenarios with the options and returns one result per
// scenario, in order. Runs of (scenario, seed) go in parallel up to
// Options.Parallel; ctx cancels between runs.
func Run(ctx context.Context, scenarios []*Scenario, opt Options) ([]*ScenarioResult, error) {
	if err := opt.resolve(); err != nil {
		return nil, err
	}
	worlds := make([]*World, len(scenarios))
	for i, s := range scenarios {
		w, err := s.Build()
		if err != nil {
			return nil, err
		}
		worlds[i] = w
	}
	type job struct{ w, seed int }
	runs := make([][]*seedRun, len(worlds))
	for i := range runs {
		runs[i] = make([]*seedRun, opt.Seeds)
	}
	jobs := make(chan job)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(opt.Parallel, len(worlds)*opt.Seeds) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				w := worlds[j.w]
				n := w.Scenario.Requests
				if opt.Requests > 0 {
					n = opt.Requests
				}
				r, err := w.runSeedTraced(opt, j.seed, n)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				runs[j.w][j.seed] = r
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range worlds {
		for s := 0; s < opt.Seeds; s++ {
			select {
			case jobs <- job{i, s}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	out := make([]*ScenarioResult, len(worlds))
	for i, w := range worlds {
		out[i] = summarise(w, runs[i], &opt)
	}
	return out, nil
}

// summarise aggregates the seeds of one scenario.
func summarise(w *World, runs []*seedRun, opt *Options) *ScenarioResult {
	s := w.Scenario
	n := len(runs[0].oracle)
	res := &ScenarioResult{
		Scenario: s.Name, File: s.Path, Model: w.Manifest.Name, Objective: string(s.Objective.Kind),
		Arms: len(w.Seen.Arms()), Requests: n, Seeds: len(runs), Exact: s.Exact(), CalibrationExact: s.CalibrationExact(),
	}
	for _, c := range s.Truth.Changes {
		if c.DeviceSlowdown != nil || c.CloudSlowdown != nil || c.LinkEfficiency != nil || c.CloudQueueMs != nil {
			if c.At < n {
				res.Changes = append(res.Changes, c.At)
			}
		}
	}
	seeds := float64(len(runs))
	oracle := make([]float64, n)
	for _, r := range runs {
		for i, v := range r.oracle {
			oracle[i] += v / seeds
		}
	}
	res.OracleMeanCost = simMean(oracle)
	arms := w.Seen.Arms()
	res.BestFixed = bestFixed(runs, arms)
	for _, m := range s.Fleet {
		res.Executors = append(res.Executors, m.Name)
	}
	for ci, at := range res.Changes {
		end := n
		if ci+1 < len(res.Changes) {
			end = res.Changes[ci+1]
		}
		start := 0
		if ci > 0 {
			start = res.Changes[ci-1]
		}
		res.ChangeBetter = append(res.ChangeBetter, simMean(oracle[at:end]) < simMean(oracle[start:at]))
	}
	for j, name := range opt.Policies {
		pr := PolicyResult{Policy: name}
		cost := make([]float64, n)
		counts := make([]int, len(arms))
		regrets := make([]float64, 0, len(runs))
		for _, r := range runs {
			p := r.policies[j]
			for i, v := range p.cost {
				cost[i] += v / seeds
			}
			regrets = append(regrets, p.regret)
			if len(p.execRegret) > 0 && pr.ExecutorRegret == nil {
				pr.ExecutorRegret = make([]float64, len(p.execRegret))
			}
			for e, v := range p.execRegret {
				pr.ExecutorRegret[e] += v / seeds
			}
			pr.SLOShare += float64(p.slo) / float64(n) / seeds
			pr.FloorShare += float64(p.floor) / float64(n) / seeds
			pr.MeanKB += p.bytes / float64(n) / 1000 / seeds
			for a, c := range p.arms {
				counts[a] += c
			}
			pr.Errors += p.errors
			if p.lastErr != nil && pr.Error == "" {
				pr.Error = p.lastErr.Error()
			}
		}
		pr.MeanCost = simMean(cost)
		pr.Regret, pr.RegretSD = simMeanSD(regrets)
		for a, c := range counts {
			if c > 0 {
				pr.Arms = append(pr.Arms, ArmCount{Arm: arms[a].String(), Count: c})
			}
		}
		sort.SliceStable(pr.Arms, func(a, b int) bool { return pr.Arms[a].Count > pr.Arms[b].Count })
		for ci, at := range res.Changes {
			end := n
			if ci+1 < len(res.Changes) {
				end = res.Changes[ci+1]
			}
			pr.Recovery = append(pr.Recovery, Recovery{At: at, Requests: recovery(cost, oracle, at, end, opt.Window, opt.Tolerance), Better: res.ChangeBetter[ci]})
		}
		res.Policies = append(res.Policies, pr)
		// learning curve
		var cum, roll, oroll float64
		for i := 0; i < n; i++ {
			cum += cost[i] - oracle[i]
			roll += cost[i]
			oroll += oracle[i]
			if i >= opt.Window {
				roll -= cost[i-opt.Window]
				oroll -= oracle[i-opt.Window]
			}
			if (i+1)%opt.CurveEvery == 0 || i == n-1 {
				k := float64(min(i+1, opt.Window))
				res.Curves = append(res.Curves, CurvePoint{Request: i + 1, Policy: name, CumRegret: cum, RollingCost: roll / k, OracleRollingCost: oroll / k})
			}
		}
	}
	return res
}

// bestFixed finds, per seed, the arm of least total true cost among those
// that truly meet the floor, and averages its regret over seeds.
func bestFixed(runs []*seedRun, arms []costmodel.Arm) FixedResult {
	regrets := make([]float64, 0, len(runs))
	wins := make([]int, len(arms))
	for _, r := range runs {
		best := -1
		for a, t := range r.armTotal {
			if best < 0 || t < r.armTotal[best] {
				best = a
			}
		}
		var o float64
		for _, v := range r.oracle {
			o += v
		}
		regrets = append(regrets, r.armTotal[best]-o)
		wins[best]++
	}
	var fr FixedResult
	fr.Regret, fr.RegretSD = simMeanSD(regrets)
	top := 0
	for a, c := range wins {
		if c > wins[top] {
			top = a
		}
	}
	fr.Arm = arms[top].String()
	return fr
}

// recovery is the number of requests after the change at `at` until the
// policy's mean cost over a window is within tol of the oracle's, for that
// window and the next; -1 if that does not happen before end.
func recovery(cost, oracle []float64, at, end, window int, tol float64) int {
	within := func(from int) bool {
		if from+window > end {
			return false
		}
		var c, o float64
		for i := from; i < from+window; i++ {
			c += cost[i]
			o += oracle[i]
		}
		return c <= (1+tol)*o
	}
	for r := 0; at+r+2*window <= end; r++ {
		if within(at+r) && within(at+r+window) {
			return r
		}
	}
	return -1
}

func simMean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func simMeanSD(v []float64) (float64, float64) {
	m := simMean(v)
	if len(v) < 2 {
		return m, 0
	}
	var s float64
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return m, math.Sqrt(s / float64(len(v)-1))
}

// Policy returns the named policy's result, or nil.
func (r *ScenarioResult) Policy(name string) *PolicyResult {
	for i := range r.Policies {
		if r.Policies[i].Policy == name {
			return &r.Policies[i]
		}
	}
	return nil
}
