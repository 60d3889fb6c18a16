package eval

import (
	"errors"
	"fmt"
	"math"
)

// ErrNoSamples is returned by an estimator given nothing to estimate from.
var ErrNoSamples = errors.New("eval: no samples")

// Sample is one logged decision as the off-policy estimators see it: what
// the logging policy chose and with what probability, what it cost, and what
// the target policy would have done in the same conditions.
type Sample struct {
	// Arm is the index of the logged arm.
	Arm int
	// Propensity is the logging policy's probability of Arm, in (0, 1].
	Propensity float64
	// Cost is the observed cost of Arm (lower is better).
	Cost float64
	// Target is the target policy's probability of every arm in the
	// sample's conditions; it sums to one.
	Target []float64
	// Model is the reward model's predicted cost of every arm in the
	// sample's conditions; nil when no model was fitted (the direct method
	// and doubly robust estimators need it).
	Model []float64
	// Logger is the logging policy's whole distribution over arms in the
	// sample's conditions, when the record carries it (nil otherwise). It
	// lets the diagnostics see the target's mass on arms the logger could
	// not choose in this very record, which no weight can reveal.
	Logger []float64
}

// weight is the importance weight of the logged arm.
func (s *Sample) weight() float64 { return s.Target[s.Arm] / s.Propensity }

// direct is the reward model's expected cost of the target policy.
func (s *Sample) direct() float64 {
	var v float64
	for a, p := range s.Target {
		if p != 0 {
			v += p * s.Model[a]
		}
	}
	return v
}

// Validate names the first inconsistency of a sample.
func (s *Sample) Validate(arms int) error {
	switch {
	case s.Arm < 0 || s.Arm >= arms:
		return fmt.Errorf("eval: sample: arm %d outside 0..%d", s.Arm, arms-1)
	case !(s.Propensity > 0 && s.Propensity <= 1):
		return fmt.Errorf("eval: sample: propensity %g outside (0, 1]", s.Propensity)
	case math.IsNaN(s.Cost) || math.IsInf(s.Cost, 0):
		return fmt.Errorf("eval: sample: cost %g is not finite", s.Cost)
	case len(s.Target) != arms:
		return fmt.Errorf("eval: sample: target distribution has %d arms, want %d", len(s.Target), arms)
	case s.Model != nil && len(s.Model) != arms:
		return fmt.Errorf("eval: sample: reward model has %d arms, want %d", len(s.Model), arms)
	case s.Logger != nil && len(s.Logger) != arms:
		return fmt.Errorf("eval: sample: logged distribution has %d arms, want %d", len(s.Logger), arms)
	case s.Logger != nil && math.Abs(s.Logger[s.Arm]-s.Propensity) > loggerTolerance:
		return fmt.Errorf("eval: sample: propensity %g, but the logged distribution gives arm %d %g", s.Propensity, s.Arm, s.Logger[s.Arm])
	}
	return nil
}

// loggerTolerance is how far a logged distribution's entry for the chosen
// arm may be from the propensity (the trace log writes the distribution at
// float32 precision).
const loggerTolerance = 1e-6

// Estimator names an off-policy estimator of a target policy's mean cost.
type Estimator string

// The estimators.
const (
	// Replay keeps each logged decision with probability w / max w (a
	// rejection sampler over importance weights: Li et al., WSDM 2011,
	// generalised to non-uniform logging) and averages what it kept.
	Replay Estimator = "replay"
	// IPS is inverse propensity scoring, mean of w x cost.
	IPS Estimator = "ips"
	// SNIPS is self-normalised IPS, sum(w x cost) / sum(w).
	SNIPS Estimator = "snips"
	// DM is the direct method: the reward model's cost of the target.
	DM Estimator = "dm"
	// DR is doubly robust: DM plus the IPS-weighted model residual.
	DR Estimator = "dr"
	// SwitchDR is DR where w <= tau and DM where it is larger (Wang et al.,
	// "Optimal and Adaptive Off-policy Evaluation in Contextual Bandits",
	// ICML 2017): it trades a little bias for much less variance.
	SwitchDR Estimator = "switch-dr"
)

// Estimators lists every estimator in a stable order.
var Estimators = []Estimator{Replay, IPS, SNIPS, DM, DR, SwitchDR}

// NeedsModel reports whether the estimator needs a reward model.
func (e Estimator) NeedsModel() bool { return e == DM || e == DR || e == SwitchDR }

// ParseEstimator checks an estimator name.
func ParseEstimator(s string) (Estimator, error) {
	for _, e := range Estimators {
		if string(e) == s {
			return e, nil
		}
	}
	return "", fmt.Errorf("eval: unknown estimator %q (want one of %v)", s, Estimators)
}

// DefaultSwitchTau is the importance weight above which switch-DR trusts
// the reward model instead of the logged cost.
const DefaultSwitchTau = 20
