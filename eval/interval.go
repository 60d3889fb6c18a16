package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// EstimateOptions configures Evaluate. The zero value is usable.
type EstimateOptions struct {
	// Tau is switch-DR's weight threshold; zero means DefaultSwitchTau.
	Tau float64
	// Bootstrap is the number of resamples for the bootstrap interval;
	// zero means 200, negative disables it.
	Bootstrap int
	// Level is the interval's coverage; zero means 0.95.
	Level float64
	// Seed makes the replay's rejection draws and the bootstrap repeatable.
	Seed uint64
}

// Estimate is one estimator's value of the target policy's mean cost with
// its intervals.
type Estimate struct {
	Estimator Estimator `json:"estimator"`
	Value     float64   `json:"value"`
	// BootLo and BootHi bound the percentile bootstrap interval.
	BootLo float64 `json:"boot_lo"`
	BootHi float64 `json:"boot_hi"`
	// Lo and Hi bound the analytic interval: the normal approximation of
	// the mean (delta method for the ratio estimators).
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	// N is the samples used; for replay, the ones it kept.
	N int `json:"n"`
}

// Diagnostics say how far the logged data can be trusted for a target.
type Diagnostics struct {
	Samples int `json:"samples"`
	// ESS is the effective sample size of the importance weights,
	// (sum w)^2 / sum w^2.
	ESS float64 `json:"ess"`
	// MaxWeight is the largest importance weight.
	MaxWeight float64 `json:"max_weight"`
	// MeanWeight should be near 1 when the logged propensities are right.
	MeanWeight float64 `json:"mean_weight"`
	// UnsupportedMass is the share of the target policy's probability on
	// arms the logger never chose: estimates cannot see those arms.
	UnsupportedMass float64 `json:"unsupported_mass"`
}

// Result is every requested estimate of one target policy.
type Result struct {
	Estimates   []Estimate  `json:"estimates"`
	Diagnostics Diagnostics `json:"diagnostics"`
}

// Evaluate runs the estimators over samples of a problem with the given
// number of arms.
func Evaluate(samples []Sample, arms int, estimators []Estimator, opt EstimateOptions) (Result, error) {
	if len(samples) == 0 {
		return Result{}, ErrNoSamples
	}
	for i := range samples {
		if err := samples[i].Validate(arms); err != nil {
			return Result{}, fmt.Errorf("sample %d: %w", i, err)
		}
	}
	if opt.Tau == 0 {
		opt.Tau = DefaultSwitchTau
	}
	if opt.Bootstrap == 0 {
		opt.Bootstrap = 200
	}
	if opt.Level == 0 {
		opt.Level = 0.95
	}
	if !(opt.Level > 0 && opt.Level < 1) {
		return Result{}, fmt.Errorf("eval: interval level %g outside (0, 1)", opt.Level)
	}
	res := Result{Diagnostics: diagnose(samples, arms)}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x6576616c))
	keep := make([]bool, len(samples))
	maxW := res.Diagnostics.MaxWeight
	kept := 0
	for i := range samples {
		if maxW > 0 && rng.Float64()*maxW < samples[i].weight() {
			keep[i] = true
			kept++
		}
	}
	z := normalQuantile(0.5 + opt.Level/2)
	for _, e := range estimators {
		num, den, err := terms(e, samples, opt.Tau, keep)
		if err != nil {
			return Result{}, err
		}
		est := Estimate{Estimator: e, Value: ratio(num, den, nil), N: len(samples)}
		if e == Replay {
			est.N = kept
		}
		est.Lo, est.Hi = analytic(num, den, est.Value, z)
		est.BootLo, est.BootHi = math.NaN(), math.NaN()
		if opt.Bootstrap > 0 {
			est.BootLo, est.BootHi = bootstrap(num, den, opt.Bootstrap, opt.Level, rng)
		}
		res.Estimates = append(res.Estimates, est)
	}
	return res, nil
}

func diagnose(samples []Sample, arms int) Diagnostics {
	logged := make([]bool, arms)
	var sw, sw2, maxW float64
	for i := range samples {
		logged[samples[i].Arm] = true
		w := samples[i].weight()
		sw += w
		sw2 += w * w
		maxW = math.Max(maxW, w)
	}
	var unsupported float64
	for i := range samples {
		for a, p := range samples[i].Target {
			if !logged[a] {
				unsupported += p
			}
		}
	}
	n := float64(len(samples))
	d := Diagnostics{Samples: len(samples), MaxWeight: maxW, MeanWeight: sw / n, UnsupportedMass: unsupported / n}
	if sw2 > 0 {
		d.ESS = sw * sw / sw2
	}
	return d
}

// analytic is the normal-approximation interval of a mean, or of a ratio of
// means by the delta method.
func analytic(num, den []float64, v, z float64) (float64, float64) {
	n := float64(len(num))
	var ss, dbar float64
	if den == nil {
		for _, x := range num {
			ss += (x - v) * (x - v)
		}
		dbar = 1
	} else {
		for i := range num {
			r := num[i] - v*den[i]
			ss += r * r
			dbar += den[i]
		}
		dbar /= n
	}
	if n < 2 || dbar == 0 || math.IsNaN(v) {
		return math.NaN(), math.NaN()
	}
	se := math.Sqrt(ss/(n-1)/n) / dbar
	return v - z*se, v + z*se
}

func bootstrap(num, den []float64, b int, level float64, rng *rand.Rand) (float64, float64) {
	n := len(num)
	idx := make([]int, n)
	vals := make([]float64, 0, b)
	for r := 0; r < b; r++ {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		if v := ratio(num, den, idx); !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return math.NaN(), math.NaN()
	}
	sort.Float64s(vals)
	lo := vals[int(math.Floor((1-level)/2*float64(len(vals)-1)))]
	hi := vals[int(math.Ceil((1+level)/2*float64(len(vals)-1)))]
	return lo, hi
}

// normalQuantile is the standard normal's inverse CDF.
func normalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
