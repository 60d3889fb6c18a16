package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// EstimateOptions configures the estimators. The zero value is usable.
type EstimateOptions struct {
	// Tau is switch-DR's weight threshold; zero means DefaultSwitchTau.
	Tau float64
	// Bootstrap is the number of bootstrap replicates; zero means 200,
	// negative disables the bootstrap interval.
	Bootstrap int
	// Level is the intervals' coverage; zero means 0.95.
	Level float64
	// Seed makes the replay's draws and the bootstrap repeatable.
	Seed uint64
	// MinPropensity is the logged probability below which an arm counts
	// as barely supported (Diagnostics.LowSupportMass); zero means
	// DefaultMinPropensity.
	MinPropensity float64
}

// rareBuckets is the number of binary-exponent buckets of the logged
// probabilities; rareDraws the expected number of draws below which an arm
// is rare in a log.
const (
	rareBuckets = 40
	rareDraws   = 10
)

// DefaultMinPropensity is the default of EstimateOptions.MinPropensity: a
// weight above 1000 means one record speaks for a thousand.
const DefaultMinPropensity = 1e-3

// replicates is the number of bootstrap replicates (0 when disabled).
func (o *EstimateOptions) replicates() int { return max(o.Bootstrap, 0) }

func (o *EstimateOptions) defaults() error {
	if o.Tau == 0 {
		o.Tau = DefaultSwitchTau
	}
	if o.Bootstrap == 0 {
		o.Bootstrap = 200
	}
	if o.Level == 0 {
		o.Level = 0.95
	}
	if o.MinPropensity == 0 {
		o.MinPropensity = DefaultMinPropensity
	}
	if !(o.MinPropensity > 0 && o.MinPropensity < 1) {
		return fmt.Errorf("eval: minimum propensity %g outside (0, 1)", o.MinPropensity)
	}
	if !(o.Level > 0 && o.Level < 1) {
		return fmt.Errorf("eval: interval level %g outside (0, 1)", o.Level)
	}
	if !(o.Tau > 0) {
		return fmt.Errorf("eval: switch-DR threshold %g is not positive", o.Tau)
	}
	return nil
}

// Estimate is one estimator's value of the target policy's mean cost with
// its intervals. A value or bound that the log cannot give is NaN here and
// null in JSON, and Reason says why.
type Estimate struct {
	Estimator Estimator `json:"estimator"`
	Value     float64   `json:"value"`
	// SE is the standard error behind the analytic interval.
	SE float64 `json:"se"`
	// Lo and Hi bound the analytic interval: the normal approximation of
	// the mean (the delta method for the ratio estimators SNIPS and
	// replay), its variance floored where the weights rest on few records
	// (see Floored).
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	// Floored is set when the variance floor, not the sample variance,
	// set the analytic interval: the weighted records are too few for
	// their own spread to be trusted.
	Floored bool `json:"floored,omitempty"`
	// BootLo and BootHi bound the percentile interval of the Poisson
	// bootstrap (NaN when disabled).
	BootLo float64 `json:"boot_lo"`
	BootHi float64 `json:"boot_hi"`
	// N is the samples used; for replay, the ones it kept.
	N int64 `json:"n"`
	// Verdict says whether the log supports the estimate.
	Verdict Verdict `json:"verdict"`
	// Reason explains a verdict other than supported and any null.
	Reason string `json:"reason,omitempty"`
}

// Diagnostics say how far the logged data can be trusted for a target.
// A figure the log cannot give is NaN here and null in JSON.
type Diagnostics struct {
	Samples int64 `json:"samples"`
	// ESS is the effective sample size of the importance weights,
	// (sum w)^2 / sum w^2.
	ESS float64 `json:"ess"`
	// MaxWeight is the largest importance weight.
	MaxWeight float64 `json:"max_weight"`
	// MeanWeight is the mean importance weight and MeanWeightSE its
	// standard error. Its expectation is ExpectedMeanWeight: 1 less the
	// target's mass on arms the logger could not choose.
	MeanWeight         float64 `json:"mean_weight"`
	MeanWeightSE       float64 `json:"mean_weight_se"`
	ExpectedMeanWeight float64 `json:"expected_mean_weight"`
	// UnsupportedMass is the share of the target policy's probability on
	// arms the logger never chose anywhere in the log.
	UnsupportedMass float64 `json:"unsupported_mass"`
	// WithDistribution counts the records that carry the logger's whole
	// distribution; the support figures below rest on them.
	WithDistribution int64 `json:"with_distribution"`
	// ZeroSupportMass is the target's mean probability on arms the logger
	// gave probability 0 in the same record: what IPS and SNIPS cannot
	// see at all. ZeroSupportShare is the share of records where that
	// mass is not zero.
	ZeroSupportMass  float64 `json:"zero_support_mass"`
	ZeroSupportShare float64 `json:"zero_support_share"`
	// LowSupportMass is the target's mean probability on arms seen
	// through weights above 1/MinPropensity (the logger gave them less
	// than MinPropensity times the target's probability, but not 0).
	LowSupportMass float64 `json:"low_support_mass"`
	// RareMass is the target's mean probability on arms the logger gives
	// so little probability that the whole log would draw them fewer than
	// 10 times (to a factor of two): whatever they cost, few records show
	// it, so an estimate that averages observed costs (the logger's own
	// mean included) misses their share most of the time.
	RareMass float64 `json:"rare_mass"`
	// RareCostShare is those arms' share of the target's expected cost by
	// the reward model (NaN without one): rare arms can be a small share
	// of the probability and a large one of the cost.
	RareCostShare float64 `json:"rare_cost_share"`
	MinPropensity float64 `json:"min_propensity"`
	// ExpectedESS is the effective sample size the weights have in
	// expectation over the logger's draws, (sum E[w])^2 / sum E[w^2]
	// (the drawn weights where a record has no distribution): unlike ESS
	// it does not depend on whether the rare arms happened to be drawn.
	ExpectedESS float64 `json:"expected_ess"`
}

// Result is every requested estimate of one target policy.
type Result struct {
	Estimates   []Estimate  `json:"estimates"`
	Diagnostics Diagnostics `json:"diagnostics"`
	// Warnings say in words what the diagnostics put in doubt.
	Warnings []string `json:"warnings"`
}

// ratioSums accumulates the sums a ratio estimator sum(num)/sum(den) and its
// delta-method variance need; the mean estimators have den = 1.
type ratioSums struct {
	n                    int64
	num, den, nn, dd, nd float64
	bootNum, bootDen     []float64
}

func (s *ratioSums) add(num, den float64, boot []float64) {
	s.n++
	s.num += num
	s.den += den
	s.nn += num * num
	s.dd += den * den
	s.nd += num * den
	bn, bd := s.bootNum[:len(boot)], s.bootDen[:len(boot)]
	for b, k := range boot {
		bn[b] += k * num
		bd[b] += k * den
	}
}

func (s *ratioSums) value() float64 {
	if s.den == 0 {
		return math.NaN()
	}
	return s.num / s.den
}

// analytic returns the normal interval of the estimate and its standard
// error, with the variance raised to floorVar when the sample variance is
// smaller; floored says the floor widened the interval by more than 40%.
func (s *ratioSums) analytic(z, floorVar float64) (lo, hi, se float64, floored bool) {
	v := s.value()
	n := float64(s.n)
	if s.n < 2 || math.IsNaN(v) {
		return math.NaN(), math.NaN(), math.NaN(), false
	}
	// sum (num_i - v den_i)^2, expanded.
	ss := math.Max(0, s.nn-2*v*s.nd+v*v*s.dd)
	dbar := s.den / n
	variance := ss / (n - 1) / n / (dbar * dbar)
	if floorVar > variance {
		// binding only when it widens the interval by more than 40%
		variance, floored = floorVar, floorVar > 2*variance
	}
	se = math.Sqrt(variance)
	return v - z*se, v + z*se, se, floored
}

func (s *ratioSums) bootstrap(level float64) (float64, float64) {
	vals := make([]float64, 0, len(s.bootNum))
	for b := range s.bootNum {
		if s.bootDen[b] != 0 {
			vals = append(vals, s.bootNum[b]/s.bootDen[b])
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

// Accumulator estimates one target policy's mean cost from samples fed one
// at a time, in memory that does not grow with the number of samples: the
// intervals come from running sums (analytic) and from a Poisson bootstrap
// whose replicate weights are drawn per sample (Oza and Russell's online
// bagging; Hanley and MacGibbon 2006). It is not safe for concurrent use.
type Accumulator struct {
	opt        EstimateOptions
	estimators []Estimator
	sums       []ratioSums
	rng        *rand.Rand

	sw, sw2, maxW float64
	// support, from the records that carry the logger's distribution:
	// the target's mass on arms of logged probability zero and below
	// MinPropensity, the records with zero-probability mass, and the
	// expected weight and squared weight under the logger (the drawn ones
	// where there is no distribution)
	withDist          int64
	zeroMass, lowMass float64
	zeroRecs          int64
	expW, expW2       float64
	// byExp is the target's mass by the binary exponent of the logger's
	// probability of the arm: byExp[k] holds q in [2^-(k+1), 2^-k), the
	// last bucket everything smaller
	byExp [rareBuckets]float64
	// byExpCost is the same weighted by the reward model's cost of the
	// arm, and modelCost its total, when there is a reward model
	byExpCost [rareBuckets]float64
	modelCost float64
	// with a reward model m: sum pi^2/q m and sum pi^2/q m^2 over arms
	// and records (the expected weighted cost and squared cost under the
	// logger), and sum of each record's m-expected cost squared
	em1, em2, direct2 float64
	// the logged costs and, with a reward model, the residuals of the
	// logged arm: their spread sets the variance floor
	sc, sc2, sr, sr2 float64
	// targetMass and logged are per arm: the target's summed probability
	// and whether the logger ever chose it.
	targetMass []float64
	logged     []bool
	// needsModel is the first estimator that needs the reward model, ""
	// when none does.
	needsModel Estimator
}

// NewAccumulator prepares the estimators for a problem of the given number
// of arms.
func NewAccumulator(arms int, estimators []Estimator, opt EstimateOptions) (*Accumulator, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	if len(estimators) == 0 {
		return nil, fmt.Errorf("eval: no estimators")
	}
	a := &Accumulator{
		opt: opt, estimators: append([]Estimator(nil), estimators...), sums: make([]ratioSums, len(estimators)),
		rng:        rand.New(rand.NewPCG(opt.Seed, 0x6576616c)),
		targetMass: make([]float64, arms), logged: make([]bool, arms),
	}
	for i, e := range estimators {
		if _, err := ParseEstimator(string(e)); err != nil {
			return nil, err
		}
		a.sums[i].bootNum = make([]float64, opt.replicates())
		a.sums[i].bootDen = make([]float64, opt.replicates())
		if e.NeedsModel() && a.needsModel == "" {
			a.needsModel = e
		}
	}
	return a, nil
}

// NeedsModel reports whether any estimator needs Sample.Model.
func (a *Accumulator) NeedsModel() bool { return a.needsModel != "" }

// poisson16 holds the CDF of Poisson(1) at 0, 1, 2, ... in units of 2^-16,
// rounded, up to the first that reaches 2^16 (at k = 8).
var poisson16 = func() []uint32 {
	var t []uint32
	p, acc := math.Exp(-1), 0.0
	for k := 0; ; k++ {
		acc += p
		p /= float64(k + 1)
		v := uint32(math.Round(acc * (1 << 16)))
		t = append(t, v)
		if v >= 1<<16 {
			return t
		}
	}
}()

// BootstrapWeights draws one Poisson(1) weight per replicate into dst; feed
// the same weights to every accumulator of one sample so that replicates
// agree across targets. Each weight takes 16 random bits (four from one
// draw of rng) and its probabilities are Poisson(1)'s rounded to 2^-16:
// the weights' mean and variance are 1 to within 1e-4, far inside the
// bootstrap's own Monte Carlo error, at a quarter of the draws.
func BootstrapWeights(rng *rand.Rand, dst []float64) {
	var r uint64
	for b := range dst {
		if b%4 == 0 {
			r = rng.Uint64()
		}
		u := uint32(r & 0xFFFF)
		r >>= 16
		// k counts the thresholds u reaches; summed without branches,
		// which a random k would mispredict.
		t := poisson16[:9]
		k := b2u(u >= t[0]) + b2u(u >= t[1]) + b2u(u >= t[2]) + b2u(u >= t[3]) + b2u(u >= t[4]) +
			b2u(u >= t[5]) + b2u(u >= t[6]) + b2u(u >= t[7]) + b2u(u >= t[8])
		dst[b] = float64(k)
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Add feeds one sample. boot holds the sample's bootstrap weights (from
// BootstrapWeights, one per replicate); nil draws them here.
func (a *Accumulator) Add(s *Sample, boot []float64) error {
	if err := s.Validate(len(a.logged)); err != nil {
		return err
	}
	if a.needsModel != "" && s.Model == nil {
		return fmt.Errorf("eval: %s needs a reward model", a.needsModel)
	}
	if boot == nil && a.opt.replicates() > 0 {
		boot = make([]float64, a.opt.replicates())
		BootstrapWeights(a.rng, boot)
	}
	if len(boot) != a.opt.replicates() {
		return fmt.Errorf("eval: %d bootstrap weights for %d replicates", len(boot), a.opt.replicates())
	}
	w := s.weight()
	a.sw += w
	a.sw2 += w * w
	a.maxW = math.Max(a.maxW, w)
	a.logged[s.Arm] = true
	a.sc += s.Cost
	a.sc2 += s.Cost * s.Cost
	if s.Logger == nil {
		for i, p := range s.Target {
			a.targetMass[i] += p
		}
		a.expW += w
		a.expW2 += w * w
	} else {
		var zero, low, ew, ew2 float64
		for i, p := range s.Target {
			if p == 0 {
				continue
			}
			a.targetMass[i] += p
			q := s.Logger[i]
			switch {
			case q == 0:
				zero += p
			case q < a.opt.MinPropensity*p:
				low += p
				fallthrough
			default:
				ew += p
				ew2 += p * p / q
			}
			if q > 0 {
				// -floor(log2 q) - 1 from the exponent bits, without a log
				k := max(min(1022-int(math.Float64bits(q)>>52&0x7ff), rareBuckets-1), 0)
				a.byExp[k] += p
				if s.Model != nil {
					a.byExpCost[k] += p * s.Model[i]
				}
			}
			if s.Model != nil {
				m := s.Model[i]
				a.modelCost += p * m
				if q > 0 {
					v := p * p / q * m
					a.em1 += v
					a.em2 += v * m
				}
			}
		}
		a.withDist++
		a.zeroMass += zero
		a.lowMass += low
		if zero > 0 {
			a.zeroRecs++
		}
		a.expW += ew
		a.expW2 += ew2
	}
	if s.Model != nil {
		r := s.Cost - s.Model[s.Arm]
		a.sr += r
		a.sr2 += r * r
	}
	var direct float64 // the reward model's cost of the target, when an estimator uses it
	if a.needsModel != "" {
		direct = s.direct()
		a.direct2 += direct * direct
	}
	for i, e := range a.estimators {
		var num, den float64 = 0, 1
		switch e {
		case IPS:
			num = w * s.Cost
		case SNIPS:
			num, den = w*s.Cost, w
		case Replay:
			// Keep the sample when an arm drawn from the target is the
			// logged one (Li et al., WSDM 2011): unbiased when the logger
			// was uniform over the eligible arms.
			den = 0
			if a.drawTarget(s.Target) == s.Arm {
				num, den = s.Cost, 1
			}
		case DM:
			num = direct
		case DR:
			num = direct + w*(s.Cost-s.Model[s.Arm])
		case SwitchDR:
			num = direct
			if w <= a.opt.Tau {
				num += w * (s.Cost - s.Model[s.Arm])
			}
		}
		a.sums[i].add(num, den, boot)
	}
	return nil
}

func (a *Accumulator) drawTarget(p []float64) int {
	u, acc := a.rng.Float64(), 0.0
	last := 0
	for i, x := range p {
		if x == 0 {
			continue
		}
		acc += x
		last = i
		if u < acc {
			return i
		}
	}
	return last
}

// Result returns the estimates, diagnostics, verdicts and warnings so far.
func (a *Accumulator) Result() (Result, error) {
	var n int64
	if len(a.sums) > 0 {
		n = a.sums[0].n
	}
	if n == 0 {
		return Result{}, ErrNoSamples
	}
	z := normalQuantile(0.5 + a.opt.Level/2)
	nf := float64(n)
	nan := math.NaN()
	d := Diagnostics{Samples: n, MaxWeight: a.maxW, MeanWeight: a.sw / nf, MeanWeightSE: nan,
		ExpectedMeanWeight: nan, ZeroSupportMass: nan, RareMass: nan, RareCostShare: nan, ZeroSupportShare: nan, LowSupportMass: nan,
		MinPropensity: a.opt.MinPropensity}
	if n >= 2 {
		d.MeanWeightSE = math.Sqrt(math.Max(0, a.sw2-a.sw*a.sw/nf) / (nf - 1) / nf)
	}
	if a.sw2 > 0 {
		d.ESS = a.sw * a.sw / a.sw2
	}
	if a.expW2 > 0 {
		d.ExpectedESS = a.expW * a.expW / a.expW2
	}
	for i, m := range a.targetMass {
		if !a.logged[i] {
			d.UnsupportedMass += m
		}
	}
	d.UnsupportedMass /= nf
	d.WithDistribution = a.withDist
	if a.withDist > 0 {
		k := float64(a.withDist)
		d.ZeroSupportMass, d.LowSupportMass = a.zeroMass/k, a.lowMass/k
		d.ZeroSupportShare = float64(a.zeroRecs) / k
		// arms of probability below rareDraws/n: the whole log draws them
		// fewer than rareDraws times
		var rare, rareCost float64
		for b := rareBuckets - 1; b >= 0; b-- {
			if math.Ldexp(1, -b) > rareDraws/nf {
				break
			}
			rare += a.byExp[b]
			rareCost += a.byExpCost[b]
		}
		d.RareMass = rare / k
		if a.modelCost > 0 {
			d.RareCostShare = rareCost / a.modelCost
		}
		// records without a distribution count as fully supported
		d.ExpectedMeanWeight = 1 - a.zeroMass/nf
	}
	// The variance floors: a weighted estimate rests on sum E[w^2] worth
	// of records, each as spread as the log's costs (or the reward
	// model's residuals), however few of them the draws happened to hit.
	// The log's spread is wider than one target's, so the floor applies
	// only below an effective sample size of warnESS, where the sample's
	// own spread stops being trustworthy (and a warning says so).
	// With a reward model the floor is also the variance the estimate
	// has under the logger's draws with the model's costs (and its
	// residual spread) for the costs not seen.
	var costVar, resVar, modelRes float64
	model := false
	if n >= 2 && d.ESS < warnESS {
		costVar = math.Max(0, a.sc2-a.sc*a.sc/nf) / (nf - 1)
		resVar = math.Max(0, a.sr2-a.sr*a.sr/nf) / (nf - 1)
		model = a.needsModel != "" && a.withDist > 0
		modelRes = a.sr2 / nf
	}
	res := Result{Diagnostics: d}
	for i, e := range a.estimators {
		s := &a.sums[i]
		est := Estimate{Estimator: e, Value: s.value(), N: n, BootLo: nan, BootHi: nan}
		if e == Replay {
			est.N = int64(s.den)
		}
		var floor float64
		switch e {
		case IPS:
			floor = costVar * a.expW2 / (nf * nf)
			if model {
				// the variance IPS has under the logger's draws, the
				// reward model standing in for the costs not seen
				floor = math.Max(floor, (a.em2+modelRes*a.expW2-a.direct2)/(nf*nf))
			}
		case SNIPS:
			if a.expW > 0 {
				floor = costVar * a.expW2 / (a.expW * a.expW)
				if v := est.Value; model && !math.IsNaN(v) {
					floor = math.Max(floor, (a.em2-2*v*a.em1+v*v*a.expW2+modelRes*a.expW2)/(a.expW*a.expW))
				}
			}
		case DR:
			floor = resVar * a.expW2 / (nf * nf)
		}
		ze := z
		if e.weighted() && d.ESS < warnESS {
			// few effective records: Student's t with ESS-1 degrees of
			// freedom instead of the normal quantile
			ze = distuv.StudentsT{Mu: 0, Sigma: 1, Nu: math.Max(d.ESS-1, 1)}.Quantile(0.5 + a.opt.Level/2)
		}
		est.Lo, est.Hi, est.SE, est.Floored = s.analytic(ze, floor)
		if a.opt.replicates() > 0 {
			est.BootLo, est.BootHi = s.bootstrap(a.opt.Level)
		}
		res.Estimates = append(res.Estimates, est)
	}
	judge(&res)
	return res, nil
}

// Evaluate runs the estimators over samples held in memory.
func Evaluate(samples []Sample, arms int, estimators []Estimator, opt EstimateOptions) (Result, error) {
	if len(samples) == 0 {
		return Result{}, ErrNoSamples
	}
	acc, err := NewAccumulator(arms, estimators, opt)
	if err != nil {
		return Result{}, err
	}
	for i := range samples {
		if err := acc.Add(&samples[i], nil); err != nil {
			return Result{}, fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return acc.Result()
}

// normalQuantile is the standard normal's inverse CDF.
func normalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
