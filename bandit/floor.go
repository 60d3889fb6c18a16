package bandit

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// DefaultExploreFloor is dyno's default exploration floor: 2% of the
// probability keeps every eligible arm choosable. docs/eval.md gives what
// it costs in regret and what it buys offline.
const DefaultExploreFloor = 0.02

// maxExploreFloor bounds the floor: above it the policy is mostly uniform.
const maxExploreFloor = 0.5

// DefaultBaselineFloor is the default of DynoConfig.BaselineFloor: about 5
// records in 5,000 for each baseline's arm, enough for a 95% interval of
// its cost to hold the truth nine times in ten (docs/eval.md).
const DefaultBaselineFloor = 0.001

// maxBaselineFloor bounds the baseline floor (three arms at most).
const maxBaselineFloor = 0.05

// baselineCostCap is what one baseline arm's floor may cost, as a share of
// the best arm's cost.
const baselineCostCap = 0.1

// resolveFloor defaults and checks ExploreFloor and BaselineFloor;
// negative (off) is kept as -1.
func (c *DynoConfig) resolveFloor() error {
	for _, f := range []struct {
		name     string
		v        *float64
		def, max float64
	}{{"explore_floor", &c.ExploreFloor, DefaultExploreFloor, maxExploreFloor}, {"baseline_floor", &c.BaselineFloor, DefaultBaselineFloor, maxBaselineFloor}} {
		switch v := *f.v; {
		case v == 0:
			*f.v = f.def
		case v < 0 && !math.IsInf(v, 0):
			*f.v = -1
		case math.IsNaN(v) || math.IsInf(v, 0) || v > f.max:
			return fmt.Errorf("%w: dyno config: %s: %g is outside (0, %g] (negative turns it off)", ErrInvalid, f.name, v, f.max)
		}
	}
	return nil
}

// applyFloor gives every eligible arm i a minimum probability
//
//	lo_i = ExploreFloor/m * min(1, c_best/c_i)
//
// (m eligible arms, c the posterior-mean costs, best the least), and each
// arm a baseline would choose (static DynO's, device-only's, cloud-only's,
// by the table) at least
//
//	min(BaselineFloor, 0.1 c_best/(c_i - c_best)),
//
// so that each of those costs at most a tenth of the best cost; raising
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
func (p *Dyno) applyFloor(d *Decision, cond *costmodel.Conditions, best int, kt float64) {
	f, g := p.cfg.ExploreFloor, p.cfg.BaselineFloor
	if f <= 0 && g <= 0 {
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
		var li float64
		if f > 0 {
			li = f / float64(m)
			if c > cBest && cBest > 0 {
				li *= cBest / c
			}
		}
		lo = append(lo, li)
		p.floorCost[i] = c
	}
	if g > 0 {
		// the baselines' arms: static DynO's and the leanest of the
		// device-only and cloud-only splits, by the table
		for _, b := range [...]int{p.staticBest(*cond, -1), p.staticBest(*cond, 0), p.staticBest(*cond, p.cm.Manifest.K())} {
			if b < 0 || !p.eligible(b) {
				continue
			}
			gb := g
			if gap := p.floorCost[b] - cBest; gap > 0 {
				gb = math.Min(g, baselineCostCap*cBest/gap)
			}
			lo[b] = math.Max(lo[b], gb)
		}
	}
	for i, li := range lo {
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
	// excess > need: the minima sum to at most f + 3g < 1.
	keep := 1 - need/excess
	for i, q := range d.Probs {
		switch li := lo[i]; {
		case !p.eligible(i), li == 0 && q == 0:
		case q < li:
			d.Probs[i] = li
		default:
			d.Probs[i] = li + (q-li)*keep
		}
	}
}

// encodeFloor appends the floor to dyno's serialised state: it travels in
// the published policy, so every executor of the key explores alike.
func (p *Dyno) encodeFloor(e *encoder) {
	e.f64(p.cfg.ExploreFloor)
	e.f64(p.cfg.BaselineFloor)
}

// decodeFloor reads the floor; state written before the floor existed ends
// without it and gets the default.
func (p *Dyno) decodeFloor(d *decoder) {
	if d.err != nil {
		return
	}
	if len(d.b) == 0 {
		p.cfg.ExploreFloor, p.cfg.BaselineFloor = DefaultExploreFloor, DefaultBaselineFloor
		return
	}
	p.cfg.ExploreFloor = d.finite("dyno.explore_floor")
	p.cfg.BaselineFloor = d.finite("dyno.baseline_floor")
	if d.err == nil {
		if err := p.cfg.resolveFloor(); err != nil || p.cfg.ExploreFloor == 0 || p.cfg.BaselineFloor == 0 {
			d.fail("dyno floors: %g and %g", p.cfg.ExploreFloor, p.cfg.BaselineFloor)
		}
	}
}

// CheckFloors checks an exploration floor and a baseline floor as
// DynoConfig takes them (zero: the default; negative: off), naming the
// field that is out of bounds.
func CheckFloors(explore, baseline float64) error {
	c := DynoConfig{ExploreFloor: explore, BaselineFloor: baseline}
	return c.resolveFloor()
}

// SetFloors changes dyno's exploration and baseline floors in place (zero:
// the default; negative: off), keeping everything learned; the next
// serialised state carries them. Out-of-bounds floors are an error and
// change nothing.
func (p *Dyno) SetFloors(explore, baseline float64) error {
	c := DynoConfig{ExploreFloor: explore, BaselineFloor: baseline}
	if err := c.resolveFloor(); err != nil {
		return err
	}
	p.cfg.ExploreFloor, p.cfg.BaselineFloor = c.ExploreFloor, c.BaselineFloor
	return nil
}

// Floors returns the exploration and baseline floors in force; -1 is off.
func (p *Dyno) Floors() (explore, baseline float64) {
	return p.cfg.ExploreFloor, p.cfg.BaselineFloor
}
