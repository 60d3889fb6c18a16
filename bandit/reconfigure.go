package bandit

import (
	"errors"
	"fmt"

	"github.com/dynoml/dyno/costmodel"
)

// ErrRebuild is returned by Reconfigure when the change would invalidate
// what the policy has learned: epsilon-greedy and ANS learn costs under the
// objective, so a new objective needs the policy built afresh and its
// reports replayed. The controller does that when it sees this error.
var ErrRebuild = errors.New("bandit: the change invalidates what the policy learned: rebuild it and replay its reports")

// Reconfigurer is a policy that takes an operator's change in place.
type Reconfigurer interface {
	// Reconfigure applies cfg's Objective, Allowed and Pin to what the
	// policy has learned, keeping its posterior, its random stream and its
	// version. The other fields of cfg (Seed, Layers, Dyno, EGreedy) are
	// the policy's from its construction and are ignored. An invalid cfg
	// is an error and changes nothing.
	Reconfigure(cfg Config) error
}

// Reconfigure implements Reconfigurer for the policies whose learned state
// does not depend on the objective: static, device, cloud, Neurosurgeon.
func (c *common) Reconfigure(cfg Config) error {
	if err := validateConfig(c.cm, &cfg); err != nil {
		return err
	}
	c.configure(&cfg)
	c.initEligibility()
	return nil
}

// Reconfigure implements Reconfigurer: dyno's stage regressions and
// accuracy posteriors do not depend on the objective, so every change is
// applied in place; the objective's gradient is derived again and every
// arm's accuracy eligibility is decided again (afresh, without the
// hysteresis that keeps an arm in, when the floor moved).
func (p *Dyno) Reconfigure(cfg Config) error {
	floor := p.obj.AccuracyFloor
	if err := p.common.Reconfigure(cfg); err != nil {
		return err
	}
	p.grad = newGradient(p.obj)
	if p.obj.AccuracyFloor != floor {
		clear(p.postOK) // under a new floor arms enter afresh: no hysteresis from the old one
	}
	p.refreshEligibility()
	return nil
}

// sameCosts reports whether two objectives give every observation the same
// cost: all but the accuracy floor agree.
func sameCosts(a, b costmodel.Objective) bool {
	a.AccuracyFloor, b.AccuracyFloor = 0, 0
	return a == b
}

// Reconfigure implements Reconfigurer: a mask, pin or floor applies in
// place; an objective that costs observations differently is ErrRebuild,
// since the learned values are costs under the old one.
func (p *EGreedy) Reconfigure(cfg Config) error {
	if !sameCosts(cfg.Objective, p.obj) {
		return fmt.Errorf("%w (epsilon-greedy, objective %s to %s)", ErrRebuild, p.obj.Kind, cfg.Objective.Kind)
	}
	return p.common.Reconfigure(cfg)
}

// Reconfigure implements Reconfigurer: a mask, pin or floor applies in
// place; an objective that costs observations differently is ErrRebuild,
// since the regression is of costs under the old one.
func (p *ANS) Reconfigure(cfg Config) error {
	if !sameCosts(cfg.Objective, p.obj) {
		return fmt.Errorf("%w (ANS, objective %s to %s)", ErrRebuild, p.obj.Kind, cfg.Objective.Kind)
	}
	return p.common.Reconfigure(cfg)
}

var (
	_ Reconfigurer = (*Static)(nil)
	_ Reconfigurer = (*Dyno)(nil)
	_ Reconfigurer = (*EGreedy)(nil)
	_ Reconfigurer = (*ANS)(nil)
	_ Reconfigurer = (*Neurosurgeon)(nil)
	_ Reconfigurer = (*DeviceOnly)(nil)
	_ Reconfigurer = (*CloudOnly)(nil)
)
