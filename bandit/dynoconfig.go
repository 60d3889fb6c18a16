package bandit

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// DynoConfig tunes dyno's learner. Every zero value takes the default named
// beside it; the defaults are what the simulator's benchmark ran with.
type DynoConfig struct {
	// Forgetting is lambda of the directional forgetting of every stage
	// model: the information along each observed direction decays by this
	// factor per report, a memory of about 1/(1-lambda) reports. Default
	// 0.99.
	Forgetting float64
	// ChangeForgetting is the lambda applied instead when the change
	// detector fires (a run of innovations the posterior cannot explain).
	// Default 0.1.
	ChangeForgetting float64
	// ChangeThreshold is the detector's threshold on the exponentially
	// weighted mean of standardised innovations. Default 1.2 (about four
	// standard deviations of that mean under no change).
	ChangeThreshold float64
	// PriorSD is the prior standard deviation of every multiplicative
	// coefficient (prior mean 1). Default 0.5.
	PriorSD float64
	// OffsetSD is the prior standard deviation, in ms, of the transfer,
	// round-trip and queue offsets (prior mean 0). Default 20.
	OffsetSD float64
	// Drift is the share of each coefficient's prior variance it regains
	// per report (random-walk process noise), so that a stage no longer
	// observed, or confidently wrong, is explored again. Default 1e-6.
	Drift float64
	// ResidualSD is the prior standard deviation of an arm's relative
	// residual on the device and cloud stages (what the shared
	// coefficients miss for that arm). Default 0.1.
	ResidualSD float64
	// ResidualDrift is how much an arm's residual variance grows back per
	// report, so arms not chosen for long are explored again. Default 1e-7.
	ResidualDrift float64
	// AccuracyPrior is the pseudo-count weight of the calibrated accuracy
	// table. Default: the table's sample count capped at 20000, or 5000
	// when the table does not state one.
	AccuracyPrior float64
	// AccuracyZ is the one-sided z of the lower credible bound an arm's
	// accuracy must keep above the floor. Default 1.645 (95%).
	AccuracyZ float64
	// ConflictZ is the z of the prior-data conflict test: an arm whose
	// online accuracy alone (a Wilson upper bound over at least
	// ConflictMinN signals) is this confidently below the floor is dropped
	// whatever its calibration says. Default 3.5.
	ConflictZ float64
	// ConflictMinN is the effective number of signals the conflict tests
	// need before they may drop an arm. Default 30.
	ConflictMinN float64
	// GroupConflictZ is the z of the shared conflict test per precision:
	// quantisation errors are shared by every split at a precision (a
	// packing bug, a shifted input distribution), so the signals of all
	// arms at one precision estimate one offset from the calibration; an
	// arm whose calibrated accuracy plus that offset's upper bound falls
	// below the floor is dropped. Default 3.
	GroupConflictZ float64
	// AccuracyForgetting discounts every arm's online accuracy counts per
	// report (of any arm), so that drift is tracked and an arm dropped for
	// conflict is eventually tested again. Default 0.99995 (a half-life of
	// about 14000 reports).
	AccuracyForgetting float64
	// MaxGapZ: an arm whose cost gap to the best is more than this many
	// standard deviations of the gap gets no probability (before the
	// exploration floor). Default 4.
	MaxGapZ float64
	// ExploreFloor is the share of probability that keeps every eligible
	// arm choosable: each of the m eligible arms gets at least
	// ExploreFloor/m (floor.go), so that the trace log supports evaluating
	// any policy offline and no stage goes unobserved for ever. Default
	// DefaultExploreFloor; negative turns the floor off; at most 0.5.
	ExploreFloor float64
	// BaselineFloor is the probability each arm a shipped baseline would
	// choose in the request's conditions (static DynO, device-only,
	// cloud-only) keeps at least, lowered where needed so that each costs
	// at most a tenth of the best arm's cost (floor.go): the trace log
	// then supports evaluating the baselines offline. Default
	// DefaultBaselineFloor; negative turns it off; at most 0.05.
	BaselineFloor float64
}

// DefaultAccuracyPrior is the pseudo-count weight of an accuracy table that
// does not state its sample count.
const DefaultAccuracyPrior = 5000

func (c *DynoConfig) resolve(table *costmodel.AccuracyTable) error {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Forgetting, 0.99)
	def(&c.ChangeForgetting, 0.1)
	def(&c.ChangeThreshold, 1.2)
	def(&c.PriorSD, 0.5)
	def(&c.OffsetSD, 20)
	def(&c.Drift, 1e-6)
	def(&c.ResidualSD, 0.1)
	def(&c.ResidualDrift, 1e-7)
	if c.AccuracyPrior == 0 {
		c.AccuracyPrior = DefaultAccuracyPrior
		if table != nil && table.Samples > 0 {
			c.AccuracyPrior = math.Min(float64(table.Samples), 20000)
		}
	}
	def(&c.AccuracyZ, 1.645)
	def(&c.ConflictZ, 3.5)
	def(&c.ConflictMinN, 30)
	def(&c.GroupConflictZ, 3)
	def(&c.AccuracyForgetting, 0.99995)
	def(&c.MaxGapZ, 4)
	if err := c.resolveFloor(); err != nil {
		return err
	}
	inf := math.Inf(1)
	for _, f := range []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"forgetting", c.Forgetting, 0, 1}, {"change_forgetting", c.ChangeForgetting, 0, 1},
		{"change_threshold", c.ChangeThreshold, 0, inf}, {"prior_sd", c.PriorSD, 0, inf},
		{"offset_sd", c.OffsetSD, 0, inf}, {"drift", c.Drift, 0, 1},
		{"residual_sd", c.ResidualSD, 0, inf}, {"residual_drift", c.ResidualDrift, 0, inf},
		{"accuracy_prior", c.AccuracyPrior, 0, inf}, {"accuracy_z", c.AccuracyZ, 0, inf},
		{"conflict_z", c.ConflictZ, 0, inf}, {"conflict_min_n", c.ConflictMinN, 0, inf},
		{"group_conflict_z", c.GroupConflictZ, 0, inf},
		{"accuracy_forgetting", c.AccuracyForgetting, 0, 1}, {"max_gap_z", c.MaxGapZ, 0, inf},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v <= f.lo || f.v > f.hi {
			return fmt.Errorf("%w: dyno config: %s: %g is outside (%g, %g]", ErrInvalid, f.name, f.v, f.lo, f.hi)
		}
	}
	return nil
}

// fields lists the config in its serialised order.
func (c *DynoConfig) fields() []*float64 {
	return []*float64{&c.Forgetting, &c.ChangeForgetting, &c.ChangeThreshold, &c.PriorSD, &c.OffsetSD,
		&c.Drift, &c.ResidualSD, &c.ResidualDrift, &c.AccuracyPrior, &c.AccuracyZ, &c.ConflictZ,
		&c.ConflictMinN, &c.GroupConflictZ, &c.AccuracyForgetting, &c.MaxGapZ}
}
