package bandit

import (
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// Safe exploration of arms the accuracy constraint holds out.
//
// An arm whose calibrated lower bound is under the floor is never chosen by
// the gap sampling, so a table that is too low for it would never be
// corrected. Dyno therefore spends a bounded budget of requests on such
// arms: on a share DynoConfig.SafeRate of requests, while the reports of
// arms that were not eligible stay below DynoConfig.SafeBudget of all
// reports (plus an allowance of SafeBudget x safeAllowance to start
// with), the cheapest plausible held-out arm is chosen, if it would beat
// the best eligible one. An arm is plausible when its table is within
// DynoConfig.SafeMargin of the floor (the size of a calibration shift worth
// looking for) and what it and its neighbours have shown does not rule it
// out: fewer than safeProbe signals, or an upper bound over the floor and,
// for an arm the table puts under it, an offset from the table upwards (by
// a standard error, past 3 x safeProbe signals). An arm the table puts
// over the floor that its data dropped is so looked at again now and
// then, so that an unlucky streak does not keep it out for good. The budget is the most the floor can
// be broken for it, and SafeExploration reports what was spent.

// safeProbe is how many (weighted) signals a plausible arm gets before its
// own evidence must point upwards.
const safeProbe = 30

// safeAllowance is the number of reports the budget is granted for at the
// start, so that a pessimistic table can be probed before thousands of
// reports have earned it.
const safeAllowance = 1000

// plausibleArm says whether held-out lossy arm i may be explored.
func (p *Dyno) plausibleArm(i int) bool {
	t := p.cm.Bases()[i].Accuracy
	floor := p.obj.AccuracyFloor
	if t < floor-p.cfg.SafeMargin {
		return false
	}
	o, n, po, pn := p.evidence(i)
	o, n = o+po, n+pn
	if n < safeProbe {
		return true
	}
	// past the probe, an arm the table puts under the floor only while the
	// evidence points upwards (by a standard error, past three probes);
	// any arm only while the evidence does not rule the floor out
	tt := min(max(t, 0.01), 0.99)
	if t < floor && (o <= 0 || n >= 3*safeProbe && o < math.Sqrt(tt*(1-tt)*n)) {
		return false
	}
	m := min(max(t+o/n, 0), 1)
	return m+p.cfg.AccuracyZ*math.Sqrt(m*(1-m)/n) >= floor
}

// safeExplore moves a share SafeRate of d's probability to the cheapest
// plausible held-out arm when the budget allows and that arm would beat
// the best eligible one (of cost bestCost).
func (p *Dyno) safeExplore(cond *costmodel.Conditions, d *Decision, bestCost float64) {
	q := p.cfg.SafeRate
	if q <= 0 || p.cfg.SafeBudget <= 0 || p.unsafeUsed >= p.cfg.SafeBudget*float64(p.version+safeAllowance) {
		return
	}
	c, cc := -1, bestCost
	var f features
	var pt stagePoint
	for i := range p.arms {
		if !p.plausible[i] || p.accOK[i] || !p.isAllowed(i) {
			continue
		}
		p.featuresOf(i, cond, &f)
		p.predict(i, &f, &pt)
		if cost := p.grad.cost(&pt, p.bytesEff[i]); cost < cc {
			c, cc = i, cost
		}
	}
	if c < 0 {
		return
	}
	for i := range d.Probs {
		d.Probs[i] *= 1 - q
	}
	d.Probs[c] = q
}

// SafeExploration returns how many reports came from arms the accuracy
// constraint held out, and the budget for them now.
func (p *Dyno) SafeExploration() (used, budget float64) {
	return p.unsafeUsed, p.cfg.SafeBudget * float64(p.version+safeAllowance)
}
