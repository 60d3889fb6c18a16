package bandit

import (
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// The accuracy constraint.
//
// Every lossy arm has a Beta posterior on its accuracy. Its prior is the
// calibration table, weighted by the samples the table's entry rests on
// (its own count, else the table's, else DefaultAccuracyPrior), capped at
// AccuracyPriorCap so that a calibration shift can show within a run. The
// evidence of the other arms of the same precision enters as a prior, not
// as a veto: each of their signals counts for arm i as a pseudo-signal of
// weight 2^(-d/8) (d the distance between the splits), carrying that arm's
// offset from its own calibration over to arm i's, up to what the spread
// between the arms' offsets allows (pool). The posterior mean is
// then
//
//	t_i + (o_i + O_i) / (w_i + n_i + N_i)
//
// with t_i the table's value, o_i and n_i the arm's own offset sum (signals
// less what the table expected) and signal count, O_i and N_i its
// neighbours' weighted ones, and w_i the table's weight, which falls from
// the table's own to ConflictPrior as the probability that the table holds
// for this arm given that evidence (tableTrust, two-sided) falls from one
// to zero: as the evidence departs from
// the table the data decide, in either direction: an optimistic table stops
// holding up an arm that is broken, and a pessimistic one stops holding down
// an arm that is fine.
//
// An arm enters while its lower credible bound (AccuracyZ) clears the
// floor, and stays while its mean does by accuracyStayZ standard deviations;
// an arm whose table is in conflict (trust below one half) enters on the
// stay bound (the table's say is mostly gone; what remains is the data's).
//
// A pessimistic table is only corrected if the arms it holds down are
// chosen now and then: safeexplore.go spends a bounded budget of requests
// on them.
//
// Every count is discounted per report by AccuracyForgetting. All arms of
// one precision are discounted together to the version of the precision's
// last signal (grpAt), so that the neighbours' sums can be kept per arm and
// every test reads them with one factor.

// accuracyStayZ is the z of the lower bound an eligible arm must keep.
const accuracyStayZ = 0.5

// neighbourHalf is the split distance at which a neighbour's signals
// count half.
const neighbourHalf = 8

// setupAccuracy derives the table weights, the precision groups and the
// neighbour weights.
func (p *Dyno) setupAccuracy() {
	n := len(p.cm.Arms())
	bits := p.cm.Manifest.AllowedBits
	p.group = make([]int, n)
	p.groupArms = make([][]int, len(bits))
	p.lossless = make([]bool, n)
	k := p.cm.Manifest.K()
	for i, a := range p.cm.Arms() {
		p.lossless[i] = a.Bits == 32 || a.Split == k
		for j, b := range bits {
			if b == a.Bits {
				p.group[i] = j
			}
		}
		if !p.lossless[i] {
			p.groupArms[p.group[i]] = append(p.groupArms[p.group[i]], i)
		}
	}
	p.tableWeight = make([]float64, n)
	for i := range p.tableWeight {
		p.tableWeight[i] = p.cfg.AccuracyPrior
	}
	if t := p.cm.Accuracy; t != nil {
		for _, e := range t.Entries {
			if e.N <= 0 {
				continue
			}
			if i, ok := p.cm.Index(costmodel.Arm{Split: e.Split, Bits: e.Bits}); ok {
				p.tableWeight[i] = min(float64(e.N), p.cfg.AccuracyPriorCap)
			}
		}
	}
	p.neighbour = make([]float64, k+1)
	for d := range p.neighbour {
		p.neighbour[d] = math.Pow(2, -float64(d)/neighbourHalf)
	}
	p.logAccForget = math.Log(p.cfg.AccuracyForgetting)
	p.poolO, p.poolN = make([]float64, n), make([]float64, n)
	p.accOK = make([]bool, n)
	for g := range p.groupArms {
		p.pool(g)
	}
}

// groupDecay is the discount of precision g's counts from its last signal
// to now.
func (p *Dyno) groupDecay(g int) float64 {
	return math.Exp(p.logAccForget * float64(p.version-p.grpAt[g]))
}

// signal adds one accuracy signal of lossy arm i.
func (p *Dyno) signal(i int, acc float64) {
	g := p.group[i]
	if d := p.groupDecay(g); d != 1 {
		for _, j := range p.groupArms[g] {
			p.accS[j] *= d
			p.accF[j] *= d
		}
	}
	p.grpAt[g] = p.version
	p.accS[i] += acc
	p.accF[i] += 1 - acc
	p.pool(g)
	for _, j := range p.groupArms[g] {
		p.accOK[j] = p.accuracyOK(j)
	}
}

// pool recomputes every arm of precision g's neighbour sums, at grpAt[g].
// The arms' offsets from their calibration are taken as draws around the
// precision's common offset with a spread tau² estimated from the arms
// with signals (DerSimonian-Laird); the neighbours' evidence is worth at
// most t(1-t)/tau² signals to an arm, so that where the arms disagree
// (one split broken, the others fine) each is judged mostly by its own
// signals, and where they agree (a shift of the whole precision) one arm's
// signals count for all.
func (p *Dyno) pool(g int) {
	bases := p.cm.Bases()
	arms := p.groupArms[g]
	var sw, sw2, swd, swdd, spq float64
	k := 0
	for _, j := range arms {
		nj := p.accS[j] + p.accF[j]
		if nj < poolMinN {
			continue
		}
		t := min(max(p.accS[j]/nj, 0.01), 0.99) // the variance at the observed rate
		w := nj / (t * (1 - t))
		d := (p.accS[j] - bases[j].Accuracy*nj) / nj
		sw, sw2, swd, swdd, spq = sw+w, sw2+w*w, swd+w*d, swdd+w*d*d, spq+t*(1-t)
		k++
	}
	capN := math.Inf(1)
	if k >= 2 {
		q := swdd - swd*swd/sw
		if tau2 := (q - float64(k-1)) / (sw - sw2/sw); tau2 > 0 {
			capN = max(spq/float64(k)/tau2, poolCapMin)
		}
	}
	for _, i := range arms {
		var o, n float64
		si := p.arms[i].split
		for _, j := range arms {
			nj := p.accS[j] + p.accF[j]
			if j == i || nj == 0 {
				continue
			}
			d := p.arms[j].split - si
			if d < 0 {
				d = -d
			}
			w := p.neighbour[d]
			o += w * (p.accS[j] - bases[j].Accuracy*nj)
			n += w * nj
		}
		if n > capN {
			o, n = o*capN/n, capN
		}
		p.poolO[i], p.poolN[i] = o, n
	}
}

// poolCapMin is the least the neighbours' evidence is worth however much
// the arms seem to disagree: with few signals each, the spread is mostly
// noise.
const poolCapMin = 100

// poolMinN is how many signals an arm needs to count in the estimate of
// its precision's spread.
const poolMinN = 10

// evidence returns lossy arm i's evidence now: its own offset sum and
// signals and its neighbours' weighted ones.
func (p *Dyno) evidence(i int) (o, n, po, pn float64) {
	d := p.groupDecay(p.group[i])
	s, f := p.accS[i]*d, p.accF[i]*d
	n = s + f
	return s - p.cm.Bases()[i].Accuracy*n, n, p.poolO[i] * d, p.poolN[i] * d
}

// accuracyPosterior returns arm i's posterior mean and the weight it rests
// on (table, own and neighbours' signals).
func (p *Dyno) accuracyPosterior(i int) (mean, weight float64) {
	t := p.cm.Bases()[i].Accuracy
	o, n, po, pn := p.evidence(i)
	// the table's weight, between its own (trust 1) and ConflictPrior
	// (trust 0): linearly down to their geometric mean at trust one half,
	// geometrically below, so that doubt costs the table little and a
	// verdict against it almost everything
	w0, wc := p.tableWeight[i], min(p.tableWeight[i], p.cfg.ConflictPrior)
	wh := math.Sqrt(w0 * wc)
	var w float64
	if tr := p.tableTrust(i, o+po, n+pn); tr >= 0.5 {
		w = wh + (w0-wh)*(2*tr-1)
	} else {
		w = wc * math.Pow(wh/wc, 2*tr)
	}
	weight = w + n + pn
	return min(max(t+(o+po)/weight, 0), 1), weight
}

// accuracyOK decides arm i's eligibility by accuracy and updates its
// conflict and hysteresis state.
func (p *Dyno) accuracyOK(i int) bool {
	b := p.cm.Bases()[i]
	floor := p.obj.AccuracyFloor
	if p.lossless[i] || !b.Calibrated {
		// nothing lossy crosses the link: full-precision accuracy; or no
		// calibration, acceptable only without a floor
		p.postOK[i] = p.lossless[i] && b.Accuracy >= floor || !p.lossless[i] && floor == 0
		p.conflict[i], p.plausible[i] = false, false
		return p.postOK[i]
	}
	o, n, po, pn := p.evidence(i)
	p.conflict[i] = p.tableTrust(i, o+po, n+pn) < 0.5
	mean, weight := p.accuracyPosterior(i)
	sd := math.Sqrt(mean * (1 - mean) / (weight + 1))
	z := p.cfg.AccuracyZ
	if p.postOK[i] || p.conflict[i] {
		z = min(z, accuracyStayZ)
	}
	p.postOK[i] = mean-z*sd >= floor
	p.plausible[i] = !p.postOK[i] && p.plausibleArm(i)
	return p.postOK[i]
}

// tableTrust is the probability that arm i's calibration holds, given the
// evidence: offset sum o over n (weighted) signals, z = |o| / sqrt(t(1-t)n)
// standard errors from the table, in the direction that matters (towards
// the floor). Against the alternative that the table
// is shifted, the odds are taken as exp(2(z² - ConflictZ²)): the table's
// trust is one half at z = ConflictZ, a tenth 0.2 standard errors beyond
// and nine tenths 0.2 below: close to a sequential test at ConflictZ, whose
// verdict the weight follows smoothly. A smooth discount rather than a
// switch, so that an unlucky streak near the bar moves an arm's posterior a
// little and not all the way to its data.
func (p *Dyno) tableTrust(i int, o, n float64) float64 {
	if n < p.cfg.ConflictMinN {
		return 1
	}
	t := min(max(p.cm.Bases()[i].Accuracy, 0.01), 0.99)
	// only the direction that would change the arm's eligibility counts:
	// down for an arm the table puts over the floor, up for one under it
	if above := p.cm.Bases()[i].Accuracy >= p.obj.AccuracyFloor; above && o >= 0 || !above && o <= 0 {
		return 1
	}
	z2 := o * o / (t * (1 - t) * n)
	x := 2 * (z2 - p.cfg.ConflictZ*p.cfg.ConflictZ)
	if x > 50 {
		return 0
	}
	return 1 / (1 + math.Exp(x))
}

// refreshEligibility recomputes every arm's accuracy eligibility.
func (p *Dyno) refreshEligibility() {
	for i := range p.accOK {
		p.accOK[i] = p.accuracyOK(i)
	}
}

// Accuracy returns arm i's posterior mean accuracy and whether it is
// eligible now.
func (p *Dyno) Accuracy(i int) (mean float64, eligible bool) {
	if p.lossless[i] || !p.cm.Bases()[i].Calibrated {
		return p.cm.Bases()[i].Accuracy, p.accOK[i]
	}
	m, _ := p.accuracyPosterior(i)
	return m, p.accOK[i]
}
