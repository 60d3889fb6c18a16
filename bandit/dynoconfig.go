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
	// AccuracyPrior is the pseudo-count weight of an entry of the
	// calibrated accuracy table that does not state its own sample count
	// (entries that do weigh that, capped at AccuracyPriorCap). Default:
	// the table's sample count, else DefaultAccuracyPrior, capped at
	// AccuracyPriorCap.
	AccuracyPrior float64
	// AccuracyPriorCap caps the table's weight: the deployed data may
	// differ from the calibration data, and a table weighing 50,000 samples
	// would hide a shift of a few points for a whole run. Default 20000.
	AccuracyPriorCap float64
	// AccuracyZ is the one-sided z of the lower credible bound an arm's
	// accuracy must keep above the floor. Default 1.645 (95%).
	AccuracyZ float64
	// ConflictZ is how many standard errors the evidence of an arm and its
	// neighbours must be from its calibration, towards the floor, for the
	// table to keep only half its weight (accuracy.go). Default 3.
	ConflictZ float64
	// ConflictMinN is the effective number of signals (own and
	// neighbours') the conflict test needs: with fewer, a streak is too
	// likely a streak. Default 50.
	ConflictMinN float64
	// ConflictPrior is the weight an arm's table entry keeps however far
	// the data are from it. Default 50.
	ConflictPrior float64
	// SafeBudget is the share of reports that may come from arms the
	// accuracy constraint holds out, explored so that a table that is too
	// pessimistic gets corrected (safeexplore.go); reported by
	// Dyno.SafeExploration. Default 0.002; negative turns it off.
	SafeBudget float64
	// SafeRate is the probability such an arm gets on a request while the
	// budget lasts. Default 0.1.
	SafeRate float64
	// SafeMargin is how far under the floor an arm's table may be for the
	// arm to be explored: the calibration shift worth looking for. Default
	// 0.03.
	SafeMargin float64
	// LinkSpread is how far an executor's link posterior may move from the
	// class's at first: its coefficients' prior standard deviation, as a
	// share of PriorSD, added to the class's when it is created
	// (link.go). Default 0.5.
	LinkSpread float64
	// AccuracyForgetting discounts every arm's online accuracy counts per
	// report (of any arm), so that drift is tracked and an arm dropped for
	// conflict is eventually tested again. Default 0.99995 (a half-life of
	// about 14000 reports).
	AccuracyForgetting float64
	// Regrow is how many reports a coefficient that no report excites
	// takes to regain its uncertainty (RegrowSD), so that a stage dyno
	// stopped observing is explored again and an improvement there is
	// found (regrow.go). Default 100.
	Regrow float64
	// RegrowAfter is how many reports a coefficient may go unexcited
	// before its uncertainty starts growing back. Default 32.
	RegrowAfter float64
	// RegrowSD is the standard deviation an unexcited coefficient regrows
	// to, per unit of its distance from the cost model's value (a device
	// learned 3x slower regrows to 2 x RegrowSD). Default 0.5.
	RegrowSD float64
	// ExploreTax bounds the expected cost of exploring, as a share of the
	// best arm's cost: the sum over the other arms of their probability
	// times their cost gap to the best stays below ExploreTax x the best
	// arm's cost, the cheapest looks first (regrow.go). Default 0.03.
	ExploreTax float64
	// ExploreTaxMin is the least best-arm cost, in the objective's units
	// (ms for latency), the exploration tax is a share of. Default 20.
	ExploreTaxMin float64
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
	def(&c.AccuracyPriorCap, 20000)
	if c.AccuracyPrior == 0 {
		c.AccuracyPrior = DefaultAccuracyPrior
		if table != nil && table.Samples > 0 {
			c.AccuracyPrior = float64(table.Samples)
		}
		c.AccuracyPrior = math.Min(c.AccuracyPrior, c.AccuracyPriorCap)
	}
	def(&c.AccuracyZ, 1.645)
	def(&c.ConflictZ, 3)
	def(&c.ConflictMinN, 50)
	def(&c.ConflictPrior, 50)
	def(&c.SafeBudget, 0.002)
	safeBudget := c.SafeBudget // what is range-checked: off (-1) passes
	if c.SafeBudget < 0 && !math.IsInf(c.SafeBudget, 0) {
		c.SafeBudget, safeBudget = -1, 1
	}
	def(&c.SafeRate, 0.1)
	def(&c.SafeMargin, 0.02)
	def(&c.LinkSpread, 0.5)
	def(&c.AccuracyForgetting, 0.99995)
	def(&c.MaxGapZ, 4)
	def(&c.Regrow, 100)
	def(&c.RegrowSD, 0.5)
	def(&c.RegrowAfter, 32)
	def(&c.ExploreTax, 0.03)
	def(&c.ExploreTaxMin, 20)
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
		{"conflict_prior", c.ConflictPrior, 0, inf}, {"accuracy_prior_cap", c.AccuracyPriorCap, 0, inf},
		{"safe_budget", safeBudget, 0, 1}, {"safe_rate", c.SafeRate, 0, 0.5}, {"safe_margin", c.SafeMargin, 0, 1}, {"link_spread", c.LinkSpread, 0, inf},
		{"accuracy_forgetting", c.AccuracyForgetting, 0, 1}, {"max_gap_z", c.MaxGapZ, 0, inf},
		{"regrow", c.Regrow, 0, inf}, {"regrow_after", c.RegrowAfter, 0, inf}, {"regrow_sd", c.RegrowSD, 0, inf}, {"explore_tax", c.ExploreTax, 0, inf}, {"explore_tax_min", c.ExploreTaxMin, 0, inf},
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
		&c.ConflictMinN, &c.ConflictPrior, &c.AccuracyForgetting, &c.MaxGapZ, &c.Regrow, &c.RegrowAfter, &c.RegrowSD, &c.ExploreTax,
		&c.AccuracyPriorCap, &c.SafeBudget, &c.SafeRate, &c.SafeMargin, &c.LinkSpread, &c.ExploreTaxMin}
}

// fieldNames names the fields of fields(), in order, as the validation
// errors and Set name them.
var fieldNames = []string{"forgetting", "change_forgetting", "change_threshold", "prior_sd", "offset_sd",
	"drift", "residual_sd", "residual_drift", "accuracy_prior", "accuracy_z", "conflict_z",
	"conflict_min_n", "conflict_prior", "accuracy_forgetting", "max_gap_z", "regrow", "regrow_after",
	"regrow_sd", "explore_tax", "accuracy_prior_cap", "safe_budget", "safe_rate", "safe_margin", "link_spread", "explore_tax_min"}

// Set sets the field of the given name (as validation errors name it) to v;
// the value is checked when the config is used.
func (c *DynoConfig) Set(name string, v float64) error {
	for i, f := range c.fields() {
		if fieldNames[i] == name {
			*f = v
			return nil
		}
	}
	return fmt.Errorf("%w: dyno config: unknown field %q (known: %v)", ErrInvalid, name, fieldNames)
}
