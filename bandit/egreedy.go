package bandit

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// EGreedyConfig tunes the epsilon-greedy baseline.
type EGreedyConfig struct {
	// Epsilon is the share of requests spread uniformly over the eligible
	// arms. Default 0.05.
	Epsilon float64
	// StepSize, when positive, makes each arm's value an exponentially
	// weighted mean with this step (it tracks change); zero is the sample
	// mean.
	StepSize float64
}

// EGreedy is epsilon-greedy with one value per arm: the mean observed cost,
// ignoring the conditions. Arms never tried are greedy first, so it starts
// by trying every eligible arm once. It is the "value per arm" bandit that
// dyno's shared structure is meant to outlearn.
type EGreedy struct {
	common
	cfg   EGreedyConfig
	value []float64
	count []float64
}

var _ Policy = (*EGreedy)(nil)

// NewEGreedy builds the epsilon-greedy baseline.
func NewEGreedy(cm *costmodel.Model, cfg Config) (*EGreedy, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	ec := cfg.EGreedy
	if ec.Epsilon == 0 {
		ec.Epsilon = 0.05
	}
	if err := ec.validate(); err != nil {
		return nil, err
	}
	n := len(cm.Arms())
	return &EGreedy{common: c, cfg: ec, value: make([]float64, n), count: make([]float64, n)}, nil
}

func (c EGreedyConfig) validate() error {
	if !(c.Epsilon > 0 && c.Epsilon <= 1) {
		return fmt.Errorf("%w: egreedy config: epsilon: %g is outside (0, 1]", ErrInvalid, c.Epsilon)
	}
	if !(c.StepSize >= 0 && c.StepSize <= 1) {
		return fmt.Errorf("%w: egreedy config: step_size: %g is outside [0, 1]", ErrInvalid, c.StepSize)
	}
	return nil
}

// Name implements Policy.
func (p *EGreedy) Name() string { return NameEGreedy }

// Choose implements Chooser.
func (p *EGreedy) Choose(cond costmodel.Conditions, d *Decision) error {
	if err := checkConditions(cond); err != nil {
		return err
	}
	p.reset(d)
	if p.pin >= 0 {
		p.certain(d, p.pin)
		return nil
	}
	// Greedy set: the untried eligible arms if any, else the arms of least
	// value (ties share).
	eligible, greedy := 0, 0
	untried := false
	best := math.Inf(1)
	for i := range p.value {
		if !p.tableEligible(i) {
			continue
		}
		eligible++
		if p.count[i] == 0 {
			untried = true
		}
	}
	if eligible == 0 {
		return fmt.Errorf("%w: every arm is masked or below the accuracy floor %.3f", ErrNoEligibleArm, p.obj.AccuracyFloor)
	}
	isGreedy := func(i int) bool {
		if untried {
			return p.count[i] == 0
		}
		return p.value[i] == best
	}
	if !untried {
		for i, v := range p.value {
			if p.tableEligible(i) && v < best {
				best = v
			}
		}
	}
	for i := range p.value {
		if p.tableEligible(i) && isGreedy(i) {
			greedy++
		}
	}
	eps := p.cfg.Epsilon
	for i := range p.value {
		if !p.tableEligible(i) {
			continue
		}
		pr := eps / float64(eligible)
		if isGreedy(i) {
			pr += (1 - eps) / float64(greedy)
		}
		d.Probs[i] = pr
	}
	p.sample(d)
	return nil
}

// Learn implements Learner: the arm's value moves toward the observed cost.
func (p *EGreedy) Learn(r *Report) error {
	i, err := p.learnCommon(r)
	if err != nil {
		return err
	}
	cost := p.obj.Cost(r.Observed)
	p.count[i]++
	step := p.cfg.StepSize
	if step == 0 || p.count[i] == 1 {
		step = 1 / p.count[i]
	}
	p.value[i] += step * (cost - p.value[i])
	return nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *EGreedy) MarshalBinary() ([]byte, error) {
	e := p.header(NameEGreedy)
	e.f64(p.cfg.Epsilon)
	e.f64(p.cfg.StepSize)
	e.f64s(p.value)
	e.f64s(p.count)
	return e.b, nil
}

func init() {
	restorers[NameEGreedy] = func(c common, d *decoder) (Policy, error) {
		n := len(c.cm.Arms())
		p := &EGreedy{common: c}
		p.cfg.Epsilon = d.finite("egreedy.epsilon")
		p.cfg.StepSize = d.finite("egreedy.step_size")
		p.value = d.f64s("egreedy.value", n)
		p.count = d.f64s("egreedy.count", n)
		if d.err != nil {
			return nil, d.err
		}
		if err := p.cfg.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return p, nil
	}
}
