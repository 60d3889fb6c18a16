package eval_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dynoml/dyno/eval"
)

// synthetic builds n logged samples of a k-armed problem whose expected cost
// of arm a in context x is known, logged by a softmax policy and evaluated
// for a fixed target. It returns the samples and the target's true value.
func synthetic(seed uint64, n, k int, modelNoise float64) ([]eval.Sample, float64) {
	r := rand.New(rand.NewPCG(seed, 99))
	mean := func(x float64, a int) float64 { return 10 + 5*math.Sin(x+float64(a)) + float64(a) }
	samples := make([]eval.Sample, n)
	var truth float64
	for i := range samples {
		x := r.Float64() * 6
		logp := make([]float64, k)
		var z float64
		for a := range logp {
			logp[a] = math.Exp(-mean(x, a) / 5)
			z += logp[a]
		}
		for a := range logp {
			logp[a] /= z
		}
		// The target puts 0.8 on the arm of least expected cost.
		best := 0
		for a := 1; a < k; a++ {
			if mean(x, a) < mean(x, best) {
				best = a
			}
		}
		target := make([]float64, k)
		for a := range target {
			target[a] = 0.2 / float64(k)
		}
		target[best] += 0.8
		var chosen int
		u, acc := r.Float64(), 0.0
		for a := range logp {
			acc += logp[a]
			if u < acc {
				chosen = a
				break
			}
			chosen = a
		}
		model := make([]float64, k)
		for a := range model {
			model[a] = mean(x, a) + modelNoise*r.NormFloat64()
			truth += target[a] * mean(x, a)
		}
		samples[i] = eval.Sample{Arm: chosen, Propensity: logp[chosen], Cost: mean(x, chosen) + 3*r.NormFloat64(), Target: target, Model: model}
	}
	// The truth is the target's expected cost over these contexts.
	return samples, truth / float64(n)
}

func TestEstimatorsUnbiasedAndCovering(t *testing.T) {
	const seeds, n, k = 60, 1500, 5
	covered := map[eval.Estimator]int{}
	bootCovered := map[eval.Estimator]int{}
	sqErr := map[eval.Estimator]float64{}
	sumErr := map[eval.Estimator]float64{}
	for seed := uint64(1); seed <= seeds; seed++ {
		samples, truth := synthetic(seed, n, k, 1)
		res, err := eval.Evaluate(samples, k, eval.Estimators, eval.EstimateOptions{Seed: seed, Bootstrap: 200})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Estimates {
			if e.Lo <= truth && truth <= e.Hi {
				covered[e.Estimator]++
			}
			if e.BootLo <= truth && truth <= e.BootHi {
				bootCovered[e.Estimator]++
			}
			sqErr[e.Estimator] += (e.Value - truth) * (e.Value - truth)
			sumErr[e.Estimator] += e.Value - truth
		}
	}
	for _, e := range []eval.Estimator{eval.IPS, eval.SNIPS, eval.DR} {
		t.Logf("%s: analytic coverage %d/%d, bootstrap %d/%d", e, covered[e], seeds, bootCovered[e], seeds)
		if got := float64(covered[e]) / seeds; got < 0.85 {
			t.Errorf("%s analytic 95%% interval covered the truth in %.0f%% of %d seeds", e, 100*got, seeds)
		}
		if got := float64(bootCovered[e]) / seeds; got < 0.85 {
			t.Errorf("%s bootstrap 95%% interval covered the truth in %.0f%% of %d seeds", e, 100*got, seeds)
		}
		// Unbiased: the mean error over the seeds is within three of its
		// standard errors of zero.
		bias := sumErr[e] / seeds
		se := math.Sqrt(math.Max(0, sqErr[e]/seeds-bias*bias) / seeds)
		t.Logf("%s: mean error %.4f, standard error %.4f", e, bias, se)
		if math.Abs(bias) > 3*se {
			t.Errorf("%s: mean error %.4f over %d seeds is more than three standard errors (%.4f) from zero", e, bias, seeds, se)
		}
	}
	if sqErr[eval.DR] > sqErr[eval.IPS] {
		t.Errorf("DR's squared error %.3f exceeds IPS's %.3f with a good reward model", sqErr[eval.DR], sqErr[eval.IPS])
	}
	t.Logf("MSE over %d seeds: ips %.4f snips %.4f dm %.4f dr %.4f switch-dr %.4f replay %.4f", seeds,
		sqErr[eval.IPS]/seeds, sqErr[eval.SNIPS]/seeds, sqErr[eval.DM]/seeds, sqErr[eval.DR]/seeds, sqErr[eval.SwitchDR]/seeds, sqErr[eval.Replay]/seeds)
}

func TestDiagnostics(t *testing.T) {
	// The target equals the logger: every weight is 1, so ESS = n.
	samples := []eval.Sample{
		{Arm: 0, Propensity: 0.5, Cost: 1, Target: []float64{0.5, 0.5, 0}},
		{Arm: 1, Propensity: 0.5, Cost: 3, Target: []float64{0.5, 0.5, 0}},
	}
	res, err := eval.Evaluate(samples, 3, []eval.Estimator{eval.IPS, eval.SNIPS}, eval.EstimateOptions{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Diagnostics
	if d.ESS != 2 || d.MaxWeight != 1 || d.MeanWeight != 1 || d.UnsupportedMass != 0 {
		t.Fatalf("diagnostics %+v, want ESS 2, max and mean weight 1, no unsupported mass", d)
	}
	if v := res.Estimates[0].Value; v != 2 {
		t.Errorf("IPS %g, want 2", v)
	}
	// A target that puts 0.3 on arm 2, which was never logged.
	for i := range samples {
		samples[i].Target = []float64{0.7, 0, 0.3}
	}
	res, err = eval.Evaluate(samples, 3, []eval.Estimator{eval.IPS}, eval.EstimateOptions{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Diagnostics.UnsupportedMass; math.Abs(got-0.3) > 1e-12 {
		t.Errorf("unsupported mass %g, want 0.3", got)
	}
	if got := res.Diagnostics.MaxWeight; math.Abs(got-1.4) > 1e-12 {
		t.Errorf("max weight %g, want 1.4", got)
	}
}

func TestReplayKeepsMatchingDecisions(t *testing.T) {
	// Uniform logging over two arms, a deterministic target on arm 1:
	// replay keeps exactly the decisions that chose arm 1.
	var samples []eval.Sample
	for i := 0; i < 100; i++ {
		samples = append(samples, eval.Sample{Arm: i % 2, Propensity: 0.5, Cost: float64(i%2)*10 + 1, Target: []float64{0, 1}})
	}
	res, err := eval.Evaluate(samples, 2, []eval.Estimator{eval.Replay}, eval.EstimateOptions{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Estimates[0]; e.N != 50 || e.Value != 11 {
		t.Fatalf("replay kept %d with value %g, want 50 and 11", e.N, e.Value)
	}
}

func TestEvaluateRejectsBadSamples(t *testing.T) {
	good := func() eval.Sample { return eval.Sample{Arm: 0, Propensity: 0.5, Cost: 1, Target: []float64{1, 0}} }
	cases := []struct {
		name   string
		mutate func(*eval.Sample)
		ests   []eval.Estimator
		want   string
	}{
		{"zero propensity", func(s *eval.Sample) { s.Propensity = 0 }, nil, "propensity 0 outside (0, 1]"},
		{"propensity above one", func(s *eval.Sample) { s.Propensity = 1.5 }, nil, "propensity 1.5"},
		{"NaN cost", func(s *eval.Sample) { s.Cost = math.NaN() }, nil, "cost NaN"},
		{"arm out of range", func(s *eval.Sample) { s.Arm = 2 }, nil, "arm 2 outside 0..1"},
		{"short target", func(s *eval.Sample) { s.Target = []float64{1} }, nil, "target distribution has 1 arms"},
		{"DR without model", func(*eval.Sample) {}, []eval.Estimator{eval.DR}, "dr needs a reward model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.mutate(&s)
			ests := tc.ests
			if ests == nil {
				ests = []eval.Estimator{eval.IPS}
			}
			_, err := eval.Evaluate([]eval.Sample{s}, 2, ests, eval.EstimateOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := eval.Evaluate(nil, 2, eval.Estimators, eval.EstimateOptions{}); !errors.Is(err, eval.ErrNoSamples) {
		t.Fatalf("no samples: %v", err)
	}
	if _, err := eval.ParseEstimator("magic"); err == nil {
		t.Fatal("unknown estimator accepted")
	}
}

// The bootstrap weights are Poisson(1): mean and variance 1, P(0) = 1/e.
func TestBootstrapWeightsArePoisson(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := make([]float64, 201) // not a multiple of four
	var n, sum, sum2, zeros float64
	for i := 0; i < 5000; i++ {
		eval.BootstrapWeights(rng, w)
		for _, k := range w {
			n++
			sum += k
			sum2 += k * k
			if k == 0 {
				zeros++
			}
		}
	}
	mean := sum / n
	variance := sum2/n - mean*mean
	// About a million draws: the standard error of each is near 0.001.
	if math.Abs(mean-1) > 0.005 || math.Abs(variance-1) > 0.01 || math.Abs(zeros/n-math.Exp(-1)) > 0.003 {
		t.Fatalf("mean %.4f, variance %.4f, P(0) %.4f; want 1, 1, %.4f", mean, variance, zeros/n, math.Exp(-1))
	}
}

// TestSupportPerRecord checks the diagnostics that need the logger's
// distribution: a target that puts 0.4 on an arm the logger gave
// probability 0 in half the records (and chose elsewhere, so the
// never-logged mass misses it) has that mass counted per record, IPS is
// judged biased low and the others unsupported, and a target equal to the
// logger gets every weight 1 and IPS equal to the logged mean.
func TestSupportPerRecord(t *testing.T) {
	var samples []eval.Sample
	var logged float64
	for i := 0; i < 400; i++ {
		logger := []float64{0.5, 0.5, 0}
		if i%2 == 1 {
			logger = []float64{0.4, 0.3, 0.3}
		}
		arm := i % 3 % 2
		if i%2 == 1 && i%5 == 0 {
			arm = 2
		}
		cost := float64(1 + arm + i%4)
		logged += cost
		samples = append(samples, eval.Sample{Arm: arm, Propensity: logger[arm], Cost: cost, Target: []float64{0.3, 0.3, 0.4}, Logger: logger, Model: []float64{1, 2, 3}})
	}
	res, err := eval.Evaluate(samples, 3, []eval.Estimator{eval.IPS, eval.SNIPS, eval.DR}, eval.EstimateOptions{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Diagnostics
	if math.Abs(d.ZeroSupportMass-0.2) > 1e-12 || math.Abs(d.ZeroSupportShare-0.5) > 1e-12 || d.UnsupportedMass != 0 || d.WithDistribution != 400 {
		t.Fatalf("diagnostics %+v, want zero-support mass 0.2 on half the records and no never-logged mass", d)
	}
	want := map[eval.Estimator]eval.Verdict{eval.IPS: eval.BiasedLow, eval.SNIPS: eval.Unsupported, eval.DR: eval.Unsupported}
	for _, e := range res.Estimates {
		if e.Verdict != want[e.Estimator] || e.Reason == "" {
			t.Errorf("%s: verdict %s (%q), want %s", e.Estimator, e.Verdict, e.Reason, want[e.Estimator])
		}
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "probability 0") {
		t.Errorf("warnings %q, want the zero-support one first", res.Warnings)
	}
	// the logger as its own target
	for i := range samples {
		samples[i].Target = samples[i].Logger
	}
	res, err = eval.Evaluate(samples, 3, []eval.Estimator{eval.IPS, eval.SNIPS}, eval.EstimateOptions{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Estimates {
		if math.Abs(e.Value-logged/400) > 1e-9 || e.Verdict != eval.Supported {
			t.Errorf("logger as target: %s = %g (%s), want the logged mean %g, supported", e.Estimator, e.Value, e.Verdict, logged/400)
		}
	}
	if res.Diagnostics.ESS != 400 || res.Diagnostics.MaxWeight != 1 {
		t.Errorf("logger as target: ESS %g, max weight %g, want 400 and 1", res.Diagnostics.ESS, res.Diagnostics.MaxWeight)
	}
}
