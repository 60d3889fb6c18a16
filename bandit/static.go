package bandit

import (
	"fmt"

	"github.com/dynoml/dyno/costmodel"
)

// Static is DynO's static scheduler as a policy: every request, evaluate
// every allowed arm with the profiles and the measured conditions and take
// the one of least predicted cost whose calibrated accuracy meets the floor.
// It never learns; it is the baseline dyno must beat where the profiles are
// wrong and match where they are right.
type Static struct{ common }

var _ Policy = (*Static)(nil)

// NewStatic builds the static DynO scheduler.
func NewStatic(cm *costmodel.Model, cfg Config) (*Static, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	return &Static{common: c}, nil
}

// Name implements Policy.
func (p *Static) Name() string { return NameStatic }

// Choose implements Chooser.
func (p *Static) Choose(cond costmodel.Conditions, d *Decision) error {
	return p.chooseBest(cond, d, -1)
}

// chooseBest is the static rule over the arms of one split (split < 0: all).
func (p *common) chooseBest(cond costmodel.Conditions, d *Decision, split int) error {
	if err := checkConditions(cond); err != nil {
		return err
	}
	p.reset(d)
	if p.pin >= 0 {
		p.certain(d, p.pin)
		return nil
	}
	best := p.staticBest(cond, split)
	if best < 0 {
		return fmt.Errorf("%w: every arm is masked or below the accuracy floor %.3f", ErrNoEligibleArm, p.obj.AccuracyFloor)
	}
	p.certain(d, best)
	return nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *Static) MarshalBinary() ([]byte, error) { return p.header(NameStatic).b, nil }

func init() {
	restorers[NameStatic] = func(c common, _ *decoder) (Policy, error) { return &Static{common: c}, nil }
}
