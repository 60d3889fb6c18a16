package bandit

import (
	"fmt"
	"math"
)

// DefaultExploreFloor is dyno's default exploration floor: 5% of the
// probability keeps every eligible arm choosable. docs/eval.md gives what
// it costs in regret and what it buys offline.
const DefaultExploreFloor = 0.05

// maxExploreFloor bounds the floor: above it the policy is mostly uniform.
const maxExploreFloor = 0.5

// resolveFloor defaults and checks ExploreFloor; negative (off) is kept as
// -1.
func (c *DynoConfig) resolveFloor() error {
	switch f := c.ExploreFloor; {
	case f == 0:
		c.ExploreFloor = DefaultExploreFloor
	case f < 0 && !math.IsInf(f, 0):
		c.ExploreFloor = -1
	case math.IsNaN(f) || math.IsInf(f, 0) || f > maxExploreFloor:
		return fmt.Errorf("%w: dyno config: explore_floor: %g is outside (0, %g] (negative turns it off)", ErrInvalid, f, maxExploreFloor)
	}
	return nil
}

// applyFloor gives every eligible arm i a minimum probability
//
//	lo_i = ExploreFloor/m * min(1, c_best/c_i)
//
// (m eligible arms, c the posterior-mean costs, best the least), raising
// the arms below it and taking the mass from the arms above their minimum
// in proportion to their excess, so the distribution still sums to one.
// Scaling by c_best/c_i bounds what the floor costs: the expected cost it
// adds is at most sum_i lo_i (c_i - c_best) <= ExploreFloor * c_best, a
// share ExploreFloor of the best arm's cost whatever the arms, where a
// uniform floor would pay ExploreFloor times the mean gap of all arms (on
// a slow link, several times the best cost). The price is in offline
// evaluation: a target that chooses an arm k times as costly as the best
// is seen through weights up to k*m/ExploreFloor.
//
// Arms the mask or the accuracy constraint exclude stay at zero: the floor
// keeps the log evaluable for what may be chosen, it does not undo a mask.
// A pin is not floored (Choose returns before). Without the floor an arm
// dyno prunes gets probability exactly 0, and no record where that
// happens can say what a policy choosing it would have cost.
//
// Choose has the posterior-mean stages of the leanest arm of every split
// in p.pts; a sibling shares all its stages but the transfer, which is kt
// ms per byte.
func (p *Dyno) applyFloor(d *Decision, best int, kt float64) {
	f := p.cfg.ExploreFloor
	if f <= 0 {
		return
	}
	m := 0
	for i := range p.arms {
		if p.eligible(i) {
			m++
		}
	}
	if m < 2 {
		return
	}
	cBest := p.costs[best]
	lo := p.floorLo[:0]
	var need, excess float64 // mass to add below the floor, mass above it
	for i := range p.arms {
		if !p.eligible(i) {
			lo = append(lo, 0)
			continue
		}
		a := &p.arms[i]
		c := p.costs[i]
		if l := p.leanest[a.split]; l != i {
			pt := p.pts[l]
			if a.sends {
				pt[stT] = kt * p.bytesEff[i]
			}
			c = p.grad.cost(&pt, p.bytesEff[i])
		}
		li := f / float64(m)
		if c > cBest && cBest > 0 {
			li *= cBest / c
		}
		lo = append(lo, li)
		if q := d.Probs[i]; q < li {
			need += li - q
		} else {
			excess += q - li
		}
	}
	p.floorLo = lo
	if need == 0 {
		return
	}
	// excess > need: the minima sum to at most f <= 1/2.
	keep := 1 - need/excess
	for i, q := range d.Probs {
		switch li := lo[i]; {
		case !p.eligible(i):
		case q < li:
			d.Probs[i] = li
		default:
			d.Probs[i] = li + (q-li)*keep
		}
	}
}

// encodeFloor appends the floor to dyno's serialised state: it travels in
// the published policy, so every executor of the key explores alike.
func (p *Dyno) encodeFloor(e *encoder) { e.f64(p.cfg.ExploreFloor) }

// decodeFloor reads the floor; state written before the floor existed ends
// without it and gets the default.
func (p *Dyno) decodeFloor(d *decoder) {
	if d.err != nil {
		return
	}
	if len(d.b) == 0 {
		p.cfg.ExploreFloor = DefaultExploreFloor
		return
	}
	p.cfg.ExploreFloor = d.finite("dyno.explore_floor")
	if d.err == nil {
		if err := p.cfg.resolveFloor(); err != nil || p.cfg.ExploreFloor == 0 {
			d.fail("dyno.explore_floor: %g", p.cfg.ExploreFloor)
		}
	}
}
