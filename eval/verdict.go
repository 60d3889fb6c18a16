package eval

import (
	"fmt"
	"math"
	"strings"
)

// Verdict says whether a log supports an estimate.
type Verdict string

// The verdicts.
const (
	// Supported: the target's choices were all possible for the logger,
	// the weights rest on enough records and average what they should.
	Supported Verdict = "supported"
	// BiasedLow: the estimate misses part of the target's cost, so it is
	// low (IPS where the target chose arms the logger could not, or where
	// the weights average less than they should: the rare arms were not
	// drawn often enough).
	BiasedLow Verdict = "biased-low"
	// Unsupported: the log cannot say; the estimate is undefined, rests
	// on too few records, or leans on the reward model's extrapolation.
	Unsupported Verdict = "unsupported"
)

// Thresholds of the verdicts and warnings. The mean weight's is in its own
// standard errors, so it scales with the log.
const (
	// minESS is the effective sample size below which an estimate that
	// weights the logged costs is unsupported.
	minESS = 10
	// warnESS is the effective sample size below which intervals are
	// said to be unreliable.
	warnESS = 100
	// zeroMassTolerance is the target's mass on zero-probability arms
	// that is let pass.
	zeroMassTolerance = 1e-3
	// rareMassTolerance is the target's mass on arms rare in the log that
	// is let pass.
	rareMassTolerance = 0.01
	// meanWeightZ is how many standard errors the mean weight may be from
	// its expectation.
	meanWeightZ = 3
)

// weighted reports whether an estimator averages importance-weighted logged
// costs (all but the direct method).
func (e Estimator) weighted() bool { return e != DM }

// judge gives every estimate of res its verdict and reason and fills
// res.Warnings.
func judge(res *Result) {
	d := &res.Diagnostics
	var warn []string
	zero := !math.IsNaN(d.ZeroSupportMass) && d.ZeroSupportMass > zeroMassTolerance
	if zero {
		warn = append(warn, fmt.Sprintf("%.1f%% of its probability is on arms the logger gave probability 0 (in %.1f%% of the records): IPS is biased low by about that share of the cost, and SNIPS, DR and DM see those choices only through the reward model; log with an exploration floor",
			100*d.ZeroSupportMass, 100*d.ZeroSupportShare))
	}
	if d.WithDistribution == 0 && d.UnsupportedMass > 0.01 {
		warn = append(warn, fmt.Sprintf("%.0f%% of its choices are arms the logger never tried (the records carry no distribution, so arms tried elsewhere may be unsupported too): only the direct method sees them, through its model", 100*d.UnsupportedMass))
	}
	if !math.IsNaN(d.LowSupportMass) && d.LowSupportMass > zeroMassTolerance {
		warn = append(warn, fmt.Sprintf("%.1f%% of its probability is seen through weights above %.0f (the logger gave those arms less than %g of the target's probability): the estimate rests on the few records that drew them", 100*d.LowSupportMass, 1/d.MinPropensity, d.MinPropensity))
	}
	rareCost := !math.IsNaN(d.RareCostShare) && d.RareCostShare > rareMassTolerance
	if rareCost || !math.IsNaN(d.RareMass) && d.RareMass > rareMassTolerance {
		share := ""
		if !math.IsNaN(d.RareCostShare) {
			share = fmt.Sprintf(" (%.1f%% of its cost by the reward model)", 100*d.RareCostShare)
		}
		warn = append(warn, fmt.Sprintf("%.1f%% of its probability%s is on arms the logger gives so little chance that the whole log draws them fewer than %d times: their costs are barely observed, so every estimate that averages logged costs misses their share most of the time (and its interval does not show it)", 100*d.RareMass, share, rareDraws))
	}
	expected := 1.0
	if !math.IsNaN(d.ExpectedMeanWeight) {
		expected = d.ExpectedMeanWeight
	}
	var low, high bool // the mean weight is confidently below or above its expectation
	if !math.IsNaN(d.MeanWeightSE) {
		gap := d.MeanWeight - expected
		off := math.Abs(gap) > meanWeightZ*d.MeanWeightSE && math.Abs(gap) > 1e-9
		low, high = off && gap < 0, off && gap > 0
		by := "with no spread in the weights"
		if d.MeanWeightSE > 0 {
			by = fmt.Sprintf("%.1f standard errors", math.Abs(gap)/d.MeanWeightSE)
		}
		switch {
		case low:
			warn = append(warn, fmt.Sprintf("importance weights average %.3f, %s below the %.3f they should: the arms the logger rarely gives this target's choices were drawn too seldom for the weights to balance, so IPS is low and every weighted estimate rests on luck",
				d.MeanWeight, by, expected))
		case high:
			warn = append(warn, fmt.Sprintf("importance weights average %.3f, %s above the %.3f they should: the logged propensities look too small for the choices made",
				d.MeanWeight, by, expected))
		}
	}
	if d.ESS < warnESS || (d.ExpectedESS > 0 && d.ExpectedESS < warnESS) {
		warn = append(warn, fmt.Sprintf("effective sample size %.0f (%.0f expected under the logger): the weighted estimates rest on few records, expect wide intervals and estimates far from the truth by chance", d.ESS, d.ExpectedESS))
	}
	var floored []string
	for i := range res.Estimates {
		e := &res.Estimates[i]
		var why []string
		verdict := Supported
		worse := func(v Verdict, reason string) {
			if v == Unsupported || verdict == Supported {
				verdict = v
			}
			why = append(why, reason)
		}
		switch {
		case math.IsNaN(e.Value):
			worse(Unsupported, "no support: the target gives no weight to any logged choice")
		case e.Estimator.weighted() && d.ESS < minESS:
			worse(Unsupported, fmt.Sprintf("effective sample size %.1f is below %d", d.ESS, minESS))
		}
		if zero {
			if e.Estimator == IPS {
				worse(BiasedLow, fmt.Sprintf("%.1f%% of the target's mass is on arms of logged probability 0", 100*d.ZeroSupportMass))
			} else {
				worse(Unsupported, fmt.Sprintf("%.1f%% of the target's mass is on arms of logged probability 0, seen only through the reward model", 100*d.ZeroSupportMass))
			}
		}
		if e.Estimator.weighted() {
			switch {
			case low && e.Estimator == IPS:
				worse(BiasedLow, "the importance weights average confidently below their expectation")
			case low, high:
				worse(Unsupported, "the importance weights average confidently off their expectation")
			}
		}
		if math.IsNaN(e.Lo) && !math.IsNaN(e.Value) {
			why = append(why, "no analytic interval from fewer than two records")
		}
		if e.Floored {
			floored = append(floored, string(e.Estimator))
		}
		e.Verdict, e.Reason = verdict, strings.Join(why, "; ")
	}
	if len(floored) > 0 {
		warn = append(warn, fmt.Sprintf("the intervals of %s are set by the variance floor: the weighted records are too few for their own spread to be trusted", strings.Join(floored, ", ")))
	}
	res.Warnings = warn
}
