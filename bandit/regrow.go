package bandit

// Uncertainty grows back where nothing is observed.
//
// Directional forgetting only forgets along the direction a report
// excites, so a coefficient no report excites any more (the device's
// compute once dyno runs cloud-only, the transfer once it runs device-only)
// keeps the confidence it had when it was last observed, and the slow
// drift regains it over tens of thousands of reports. When conditions
// improve in that unobserved stage, nothing would ever tell dyno. So every
// coefficient remembers when a report last excited it; once it has not been
// excited for regrowAfter reports its variance grows, linearly, back to a
// cap in DynoConfig.Regrow reports (regrowVar: in proportion to how far the
// coefficient has moved from the cost model). DynoConfig.ExploreTax bounds what exploring an arm far
// behind may cost, so that the regrown uncertainty of an expensive arm
// buys few requests of it. The arms
// that would observe it then get probability again, and one of their
// reports, far from its prediction, moves the coefficient at once.

import "math"

// excited is the share of a standardised regressor above which a report
// counts as observing the coefficient.
const excited = 0.05

// markSeen records that the report at p.version excited stage k's
// coefficients where the standardised regressors x are large enough.
func (p *Dyno) markSeen(k int, x []float64) {
	for j, v := range x {
		if math.Abs(v) > excited {
			p.seen[k][j] = p.version
		}
	}
}

// regrow applies driftEvery reports of process noise to every stage: the
// slow drift everywhere, and the regrowth of coefficients unexcited for
// more than regrowAfter reports.
func (p *Dyno) regrow() {
	for k, m := range p.models {
		m.drift(p.driftQ[k], p.driftCap[k])
		var q, cp [stageDim]float64
		for j := 0; j < dims[k]; j++ {
			if float64(p.version-p.seen[k][j]) <= p.cfg.RegrowAfter {
				continue
			}
			cp[j] = p.regrowVar(k, j, m.meanAt(j))
			q[j] = driftEvery * cp[j] / p.cfg.Regrow
		}
		m.drift(q[:dims[k]], cp[:dims[k]])
	}
}

// capTax bounds the expected cost of exploring, sum of probability x gap
// over every arm but the best, to DynoConfig.ExploreTax of the best arm's
// cost, and returns the new total of the weights w (the best holds 1/2).
// The budget goes to the cheapest looks first: arms in order of their cost
// gap keep their weight while the budget lasts, the next gets what is
// left, the rest nothing. Arms far behind then get rare looks however
// uncertain they are, the tax stays bounded however many arms are
// uncertain, and when several arms would teach the same thing (every arm
// that sends teaches the transfer) the cheapest teaches it.
func (p *Dyno) capTax(w []float64, best int, total float64) float64 {
	bc := p.costs[best]
	if !(bc > 0) || total <= 0.5 {
		return total
	}
	order := p.order[:0]
	var g float64
	for _, i := range p.leanest {
		if i >= 0 && i != best && w[i] > 0 {
			order = append(order, i)
			g += w[i] * (p.costs[i] - bc)
		}
	}
	// the cost of the looks relative to the weights' total is at most
	// the budget when g <= tax x bc x total; the fill below spends
	// tax x bc x 1/2, what the best arm's weight alone stands for
	// a share of the best arm's cost, and at least ExploreTaxMin cost
	// units: where the best arm costs next to nothing (a tiny model run on
	// the device), a look at the others costs nothing anyone would notice
	// either, and without it they would never be seen
	bt := p.cfg.ExploreTax * max(bc, p.cfg.ExploreTaxMin)
	budget := bt * total
	if g <= budget {
		return total
	}
	budget = bt * 0.5
	// insertion sort by gap: a handful of arms, no allocation
	for a := 1; a < len(order); a++ {
		for b := a; b > 0 && p.costs[order[b]] < p.costs[order[b-1]]; b-- {
			order[b], order[b-1] = order[b-1], order[b]
		}
	}
	total = 0.5
	for _, i := range order {
		gap := p.costs[i] - bc
		if c := w[i] * gap; c > budget {
			w[i] = max(budget, 0) / gap
		}
		budget -= w[i] * gap
		total += w[i]
	}
	p.order = order
	return total
}

// regrowVar is the variance an unexcited coefficient of stage k regrows
// to: DynoConfig.RegrowSD times its distance from the prior mean, plus a
// little. Only a stage that has moved from its profile can move back: a
// device learned three times slower than profiled may have recovered, one
// running as profiled can hardly have become faster, and a link cannot
// deliver more than the executor measures. So where the posterior sits at
// the cost model there is nothing to regrow and nothing to explore for.
func (p *Dyno) regrowVar(k, j int, m float64) float64 {
	if isMultiplier(k, j) {
		return sq(p.cfg.RegrowSD*math.Abs(m-1) + regrowMinSD)
	}
	return sq(p.cfg.RegrowSD*math.Abs(m) + regrowMinOffsetMs)
}

// regrowMinSD and regrowMinOffsetMs are the least regrown standard
// deviations of a multiplier and of an offset.
const (
	regrowMinSD       = 0.05
	regrowMinOffsetMs = 2
)

// isMultiplier says whether coefficient j of stage k multiplies a
// prediction (prior mean 1) rather than being an offset in ms.
func isMultiplier(k, j int) bool {
	switch k {
	case stR, stQ:
		return j == 0
	}
	return true
}
