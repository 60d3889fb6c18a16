package bandit

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// Dyno is dyno's learner: the cost model is the prior, and five small
// Bayesian linear regressions learn where reality departs from it, one per
// stage, on the stage times the executors report:
//
//	device   D ~ alpha1·predicted compute + alpha2·predicted packing
//	transfer T ~ beta·bytes/bandwidth
//	rtt      R ~ gamma·measured rtt + rho0
//	queue    Q ~ kappa·reported queue + q0
//	cloud    C ~ eta1·predicted compute + eta2·predicted unpacking
//
// each with its prior mean at the cost model (multipliers 1, offsets 0),
// weighted by the inverse square of the prediction (noise is relative),
// updated by rank-one steps, with directional forgetting, a change detector
// and a slow random-walk drift so that it tracks change. A residual per
// split on the device and cloud stages (a Kalman mean shrunk to zero; the
// arms of a split share it, precision does not change compute) catches what
// the shared coefficients miss, such as one block far off its profile.
//
// Accuracy is a constraint: a Beta posterior per arm with the calibration
// table as its prior. An arm enters while its lower credible bound clears
// the floor and stays while its posterior mean does (with a margin); two
// conflict tests, the arm's own signals and those of every arm at its
// precision, drop it when the calibration is confidently wrong.
//
// Exploration is posterior-gap sampling with exact propensities: the arm of
// least posterior-mean cost gets weight 1/2 and every other eligible arm
// Phi(-gap/sd(gap)), to first order the probability that it is in fact the
// better of the two, where sd(gap) comes from the residual variances and
// the coefficients' covariance along the difference of the two arms'
// gradient-weighted regressors, less what the best arm's own reports will
// teach (only knowledge another arm brings is worth exploring for). The
// weights are normalised into the distribution the arm is drawn from.
// Arms that cannot win are pruned exactly: those more than MaxGapZ
// standard deviations behind, those that lose even with every stage
// MaxGapZ bounding standard deviations in their favour, and those a
// sibling of the same split dominates by sending fewer bytes.
//
// docs/bandit.md has the whole design.
type Dyno struct {
	common
	cfg    DynoConfig
	grad   gradient
	models [nStages]*blr
	noise  [nStages]float64 // relative noise variance estimate
	det    [nStages]float64 // change detector state
	// per stage, per split: residual mean, variance, and the version the
	// variance was last set at (it drifts up from there); only the device
	// and cloud stages use them, and the arms of one split share them
	// because precision does not change compute
	res    [nStages][]float64
	resVar [nStages][]float64
	resAt  [nStages][]uint64
	// bytesRatio is the learned ratio of observed to predicted bytes.
	bytesRatio []float64
	// online accuracy counts, discounted per report since accAt, and the
	// cached eligibility
	accS, accF []float64
	accAt      []uint64
	// per precision (index into model.ValidBits order of the manifest's
	// allowed bits): discounted successes, signals and the successes the
	// calibration expected, and when they were last discounted
	grpS, grpN, grpE []float64
	grpAt            []uint64
	group            []int   // arm index -> precision group
	groupArms        [][]int // precision group -> its lossy arms
	logAccForget     float64
	// eligibility by accuracy: the posterior test, the arm's own conflict
	// test and its precision's, each with hysteresis on its own last
	// result; accOK is their conjunction
	postOK, armConflict, grpConflict []bool
	accOK                            []bool
	lossless                         []bool
	// driftQ is the process noise added every driftEvery reports, up to
	// the prior variance driftCap.
	driftQ, driftCap [nStages][]float64

	// arms holds every arm's condition-independent figures compactly;
	// bytesEff is its bytes times the learned bytes ratio.
	arms     []armStatic
	bytesEff []float64

	// scratch, reused by Choose
	pts       []stagePoint
	costs     []float64
	leanest   []int     // per split, the eligible arm that sends the fewest bytes
	floorLo   []float64 // per arm, the exploration floor's minimum (floor.go)
	floorCost []float64 // per arm, its posterior-mean cost, for the floor
}

// armStatic is the part of an arm the hot path reads, at nominal speed.
type armStatic struct {
	dev, pack, cloud, unpack, bytes float64
	split                           int
	sends                           bool
}

var _ Policy = (*Dyno)(nil)

// stageDim is the largest number of regressors of a stage model; dims
// gives each stage's. The transfer has no offset: under relative noise an
// offset is all but unidentified next to bytes/bandwidth, and a wandering
// offset would mispredict every arm whose bytes differ from the one
// observed.
const stageDim = 2

var dims = [nStages]int{stD: 2, stT: 1, stR: 2, stQ: 2, stC: 2}

// features are one arm's regressors under given conditions, unscaled, and
// the scale (the cost model's prediction) of each stage; a stage of scale
// zero does not apply to the arm.
type features struct {
	x     [nStages][stageDim]float64
	scale stagePoint
}

// hasResidual says which stages carry a per-arm residual: the compute
// stages, where one block can be far off its profile. The transfer's only
// per-arm quantity is the bytes (learned as bytesRatio), and the round trip
// and the queue do not depend on the arm; a residual there would only soak
// up context-dependent misfit.
func hasResidual(k int) bool { return k == stD || k == stC }

// NewDyno builds dyno's learner at its prior.
func NewDyno(cm *costmodel.Model, cfg Config) (*Dyno, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	dc := cfg.Dyno
	if err := dc.resolve(cm.Accuracy); err != nil {
		return nil, err
	}
	p := &Dyno{common: c, cfg: dc}
	p.init()
	p.setup()
	p.refreshEligibility()
	return p, nil
}

// priorSD is the prior standard deviation of every stage's coefficients.
func (p *Dyno) priorSD() [nStages][stageDim]float64 {
	ps, os := p.cfg.PriorSD, p.cfg.OffsetSD
	return [nStages][stageDim]float64{{ps, ps}, {ps, 0}, {ps, os}, {ps, os}, {ps, ps}}
}

// init builds the prior state from p.cfg.
func (p *Dyno) init() {
	n := len(p.cm.Arms())
	ns := p.cm.Manifest.K() + 1
	sd := p.priorSD()
	means := [nStages][stageDim]float64{{1, 1}, {1, 0}, {1, 0}, {1, 0}, {1, 1}}
	noise := [nStages]float64{0.1, 0.2, 0.2, 0.5, 0.1}
	for k := range p.models {
		p.models[k] = newBLR(means[k][:dims[k]], sd[k][:dims[k]])
		p.noise[k] = noise[k] * noise[k]
		p.res[k] = make([]float64, ns)
		p.resVar[k] = make([]float64, ns)
		p.resAt[k] = make([]uint64, ns)
		for i := range p.resVar[k] {
			p.resVar[k][i] = p.cfg.ResidualSD * p.cfg.ResidualSD
		}
	}
	p.bytesRatio = make([]float64, n)
	for i := range p.bytesRatio {
		p.bytesRatio[i] = 1
	}
	p.accS, p.accF, p.accAt = make([]float64, n), make([]float64, n), make([]uint64, n)
	p.postOK, p.armConflict, p.grpConflict = make([]bool, n), make([]bool, n), make([]bool, n)
	g := len(p.cm.Manifest.AllowedBits)
	p.grpS, p.grpN, p.grpE, p.grpAt = make([]float64, g), make([]float64, g), make([]float64, g), make([]uint64, g)
}

// driftEvery is how often, in reports, the process noise is applied (in
// one batch, to keep Learn cheap).
const driftEvery = 16

// setup derives what is not serialised: the gradient, the lossless flags,
// the precision groups, the process noise and the scratch space.
func (p *Dyno) setup() {
	n := len(p.cm.Arms())
	p.grad = newGradient(p.obj)
	sd := p.priorSD()
	for k := range p.driftQ {
		p.driftQ[k] = make([]float64, dims[k])
		p.driftCap[k] = make([]float64, dims[k])
		for j, v := range sd[k][:dims[k]] {
			p.driftQ[k][j] = driftEvery * p.cfg.Drift * v * v
			p.driftCap[k][j] = v * v
		}
	}
	k := p.cm.Manifest.K()
	p.lossless = make([]bool, n)
	p.group = make([]int, n)
	p.groupArms = make([][]int, len(p.cm.Manifest.AllowedBits))
	for i, a := range p.cm.Arms() {
		p.lossless[i] = a.Bits == 32 || a.Split == k
		for j, b := range p.cm.Manifest.AllowedBits {
			if b == a.Bits {
				p.group[i] = j
			}
		}
		if !p.lossless[i] {
			p.groupArms[p.group[i]] = append(p.groupArms[p.group[i]], i)
		}
	}
	p.logAccForget = math.Log(p.cfg.AccuracyForgetting)
	p.accOK = make([]bool, n)
	p.arms = make([]armStatic, n)
	p.bytesEff = make([]float64, n)
	for i, b := range p.cm.Bases() {
		p.arms[i] = armStatic{dev: b.DeviceMs, pack: b.PackMs, cloud: b.CloudMs, unpack: b.UnpackMs, bytes: b.Bytes, split: b.Arm.Split, sends: b.Sends()}
		p.bytesEff[i] = b.Bytes * p.bytesRatio[i]
	}
	p.pts = make([]stagePoint, n)
	p.costs = make([]float64, n)
	p.floorCost = make([]float64, n)
	p.leanest = make([]int, k+1)
}

// Name implements Policy.
func (p *Dyno) Name() string { return NameDyno }

// featuresOf fills f for arm i under cond.
func (p *Dyno) featuresOf(i int, cond *costmodel.Conditions, f *features) {
	a := &p.arms[i]
	ds, cs := cond.Slowdowns()
	*f = features{}
	f.x[stD] = [stageDim]float64{a.dev * ds, a.pack * ds}
	f.scale[stD] = f.x[stD][0] + f.x[stD][1]
	if !a.sends {
		return
	}
	t := costmodel.TransferMs(p.bytesEff[i], cond.BandwidthMbps)
	f.x[stT] = [stageDim]float64{t}
	f.scale[stT] = max(t, 1e-9)
	f.x[stR] = [stageDim]float64{cond.RTTMs, 1}
	f.scale[stR] = cond.RTTMs + 1
	f.x[stQ] = [stageDim]float64{cond.CloudQueueMs, 1}
	f.scale[stQ] = cond.CloudQueueMs + 1
	f.x[stC] = [stageDim]float64{a.cloud * cs, a.unpack * cs}
	f.scale[stC] = f.x[stC][0] + f.x[stC][1]
}

// residualVar is split s's residual variance on stage k now, grown back by
// drift since it was last set and capped at the prior.
func (p *Dyno) residualVar(k, s int) float64 {
	v := p.resVar[k][s] + p.cfg.ResidualDrift*float64(p.version-p.resAt[k][s])
	return min(v, p.cfg.ResidualSD*p.cfg.ResidualSD)
}

// predict fills pt with arm i's posterior-mean stages.
func (p *Dyno) predict(i int, f *features, pt *stagePoint) {
	for k := 0; k < nStages; k++ {
		if f.scale[k] <= 0 {
			pt[k] = 0
			continue
		}
		v := p.models[k].predict(f.x[k][:dims[k]])
		if hasResidual(k) {
			v += f.scale[k] * p.res[k][p.arms[i].split]
		}
		pt[k] = max(v, 0)
	}
}

// eligible reports whether arm i may be chosen: mask and accuracy.
func (p *Dyno) eligible(i int) bool { return p.isAllowed(i) && p.accOK[i] }

// Choose implements Chooser. It runs in two passes: the posterior-mean
// cost of every eligible arm, with the coefficients read out once; then,
// for every arm but the best, a cheap optimistic bound (every stage
// MaxGapZ bounding standard deviations in its favour; the objectives only
// grow with stage times) that drops arms which cannot catch the best, and
// the exact gap variance only for those that might.
func (p *Dyno) Choose(cond costmodel.Conditions, d *Decision) error {
	if err := checkConditions(cond); err != nil {
		return err
	}
	p.reset(d)
	if p.pin >= 0 {
		p.certain(d, p.pin)
		return nil
	}
	ds, cs := cond.Slowdowns()
	md, mt, mr, mq, mc := p.models[stD].m, p.models[stT].m, p.models[stR].m, p.models[stQ].m, p.models[stC].m
	// the round trip and the queue are the same for every arm that sends
	rtt := max(mr[0]*cond.RTTMs+mr[1], 0)
	queue := max(mq[0]*cond.CloudQueueMs+mq[1], 0)
	kt := mt[0] * 8 / (cond.BandwidthMbps * 1e3) // transfer ms per byte
	resD, resC := p.res[stD], p.res[stC]
	// Dominance: the arms of one split share every stage but the transfer,
	// which grows with the bytes, and every objective grows with every
	// stage and the bytes; so the split's eligible arm that sends the
	// fewest bytes is at least as good as its siblings whatever the
	// coefficients. Only it can be the best or be explored.
	for s := range p.leanest {
		p.leanest[s] = -1
	}
	for i := range p.arms {
		if !p.eligible(i) {
			continue
		}
		if s, l := p.arms[i].split, p.leanest[p.arms[i].split]; l < 0 || p.bytesEff[i] < p.bytesEff[l] {
			p.leanest[s] = i
		}
	}
	best := -1
	for _, i := range p.leanest {
		if i < 0 {
			continue
		}
		a := &p.arms[i]
		pt := &p.pts[i]
		pt[stD] = max((md[0]*a.dev+md[1]*a.pack+(a.dev+a.pack)*resD[a.split])*ds, 0)
		if a.sends {
			pt[stT] = kt * p.bytesEff[i]
			pt[stR], pt[stQ] = rtt, queue
			pt[stC] = max((mc[0]*a.cloud+mc[1]*a.unpack+(a.cloud+a.unpack)*resC[a.split])*cs, 0)
		} else {
			pt[stT], pt[stR], pt[stQ], pt[stC] = 0, 0, 0, 0
		}
		c := p.grad.cost(pt, p.bytesEff[i])
		p.costs[i] = c
		if best < 0 || c < p.costs[best] {
			best = i
		}
	}
	if best < 0 {
		return fmt.Errorf("%w: every arm is masked or not confidently above the accuracy floor %.3f", ErrNoEligibleArm, p.obj.AccuracyFloor)
	}
	// per-stage bound on the coefficients' standard deviation per ms of
	// prediction
	var u stagePoint
	for k, m := range p.models {
		u[k] = math.Sqrt(m.maxEigen())
	}
	gb := p.grad.at(&p.pts[best])
	ab := &p.arms[best]
	// the best arm's regressors (unscaled) and residual variances in cost
	// units
	xbD := [2]float64{ab.dev * ds, ab.pack * ds}
	xbC := [2]float64{ab.cloud * cs, ab.unpack * cs}
	var xbT float64
	sbD := gb[stD] * (ab.dev + ab.pack) * ds // d cost / d residual
	rvbD := p.residualVar(stD, ab.split)
	var sbC, rvbC float64
	if ab.sends {
		xbT = costmodel.TransferMs(p.bytesEff[best], cond.BandwidthMbps)
		sbC = gb[stC] * (ab.cloud + ab.unpack) * cs
		rvbC = p.residualVar(stC, ab.split)
	} else {
		gb[stT], gb[stR], gb[stQ], gb[stC] = 0, 0, 0, 0
	}
	// the round trip and queue regressors are the same for every sending
	// arm: their variance per unit of gradient difference, once
	xR := [2]float64{cond.RTTMs, 1}
	xQ := [2]float64{cond.CloudQueueMs, 1}
	vR, vQ := p.models[stR].variance(xR[:]), p.models[stQ].variance(xQ[:])
	if ab.sends {
		// the best arm's own reports pin the round trip and the queue
		vR, vQ = 0, 0
	}
	mD, mT, mC := p.models[stD], p.models[stT], p.models[stC]
	// what the best arm's reports will teach anyway: the direction of its
	// own regressors in each stage model
	xbTv := [1]float64{xbT}
	gD := newGreedyView(mD, xbD[:])
	gT := newGreedyView(mT, xbTv[:])
	gC := newGreedyView(mC, xbC[:])
	bestCost := p.costs[best]
	z := p.cfg.MaxGapZ
	total := 0.5
	d.Probs[best] = 0.5
	for _, i := range p.leanest {
		if i < 0 || i == best {
			continue
		}
		a := &p.arms[i]
		// optimistic bound: each stage's scale is its prediction at
		// nominal coefficients, its bound sd the scale times the
		// coefficient bound plus the arm's residual sd
		pt := &p.pts[i]
		sD := (a.dev + a.pack) * ds
		rvD := p.residualVar(stD, a.split)
		var opt stagePoint
		opt[stD] = max(pt[stD]-z*sD*(u[stD]+math.Sqrt(rvD)), 0)
		var sT, sC, rvC float64
		if a.sends {
			sT = costmodel.TransferMs(p.bytesEff[i], cond.BandwidthMbps)
			sC = (a.cloud + a.unpack) * cs
			rvC = p.residualVar(stC, a.split)
			opt[stT] = max(pt[stT]-z*sT*u[stT], 0)
			opt[stR] = max(pt[stR]-z*(cond.RTTMs+1)*u[stR], 0)
			opt[stQ] = max(pt[stQ]-z*(cond.CloudQueueMs+1)*u[stQ], 0)
			opt[stC] = max(pt[stC]-z*sC*(u[stC]+math.Sqrt(rvC)), 0)
		}
		if p.grad.cost(&opt, p.bytesEff[i]) >= bestCost {
			continue
		}
		// the exact first-order variance of the gap, correlations
		// between the two arms included
		gi := p.grad.at(pt)
		if !a.sends {
			gi[stT], gi[stR], gi[stQ], gi[stC] = 0, 0, 0, 0
		}
		zD := [2]float64{gi[stD]*a.dev*ds - gb[stD]*xbD[0], gi[stD]*a.pack*ds - gb[stD]*xbD[1]}
		v := gD.residual(zD[:])
		// residuals: one shared term when both arms have the same split
		if a.split == ab.split {
			v += sq(gi[stD]*sD-sbD)*rvD + sq(gi[stC]*sC-sbC)*rvC
		} else {
			v += sq(gi[stD]*sD)*rvD + sq(sbD)*rvbD + sq(gi[stC]*sC)*rvC + sq(sbC)*rvbC
		}
		zT := [1]float64{gi[stT]*sT - gb[stT]*xbT}
		v += gT.residual(zT[:]) + sq(gi[stR]-gb[stR])*vR + sq(gi[stQ]-gb[stQ])*vQ
		zC := [2]float64{gi[stC]*a.cloud*cs - gb[stC]*xbC[0], gi[stC]*a.unpack*cs - gb[stC]*xbC[1]}
		v += gC.residual(zC[:])
		w := gapWeight(p.costs[i]-bestCost, math.Sqrt(v), z)
		d.Probs[i] = w
		total += w
	}
	d.Probs[best] /= total
	for _, i := range p.leanest {
		if i >= 0 && i != best {
			d.Probs[i] /= total
		}
	}
	p.applyFloor(d, &cond, best, kt)
	p.sample(d)
	return nil
}

func sq(x float64) float64 { return x * x }

// greedyView is a stage model seen from the best arm: the posterior
// covariance S, the best arm's regressors x_b, S x_b and x_bᵀ S x_b.
type greedyView struct {
	m   *blr
	sxb [stageDim]float64
	q   float64
}

func newGreedyView(m *blr, xb []float64) greedyView {
	g := greedyView{m: m}
	if m.d <= smallDim {
		m.symv(m.s, xb, g.sxb[:])
		g.q = dot(xb, g.sxb[:], m.d)
	}
	return g
}

// residual is the variance of zᵀtheta that reports of the best arm alone
// would leave, however many: zᵀ S z - (zᵀ S x_b)² / (x_bᵀ S x_b). Dyno
// explores for that, the knowledge only another arm can bring; what the
// greedy arm's own reports will teach needs no exploration.
func (g *greedyView) residual(z []float64) float64 {
	v := g.m.variance(z)
	if g.q > 1e-300 {
		c := dot(z, g.sxb[:], g.m.d)
		v -= c * c / g.q
	}
	return max(v, 0)
}

// gapWeight is Phi(-gap/sd), zero beyond maxZ standard deviations. Phi is
// read from a table with linear interpolation: the propensity is that of
// this weight, exactly, and the table is within 1e-5 of the normal
// distribution.
func gapWeight(gap, sd, maxZ float64) float64 {
	if !(sd > 0) {
		if gap <= 0 {
			return 0.5
		}
		return 0
	}
	z := gap / sd
	if z > maxZ {
		return 0
	}
	return normalTail(z)
}

// The normal tail table: spacing and range.
const (
	phiStep  = 1.0 / 64
	phiRange = 8.0
)

var phiTable = func() []float64 {
	t := make([]float64, int(phiRange/phiStep)+2)
	for i := range t {
		t[i] = 0.5 * math.Erfc(float64(i)*phiStep/math.Sqrt2)
	}
	return t
}()

// normalTail is Phi(-z) for z >= 0, from phiTable.
func normalTail(z float64) float64 {
	if z <= 0 {
		return 0.5
	}
	if z >= phiRange {
		return 0
	}
	f := z / phiStep
	i := int(f)
	frac := f - float64(i)
	return phiTable[i] + frac*(phiTable[i+1]-phiTable[i])
}

// Learn implements Learner.
func (p *Dyno) Learn(r *Report) error {
	i, err := p.learnCommon(r)
	if err != nil {
		return err
	}
	var f features
	p.featuresOf(i, &r.Conditions, &f)
	o := &r.Observed
	y := stagePoint{o.DeviceMs + o.PackMs, o.NetworkMs, o.RTTMs, o.CloudQueueMs, o.CloudMs + o.UnpackMs}
	var xs [stageDim]float64
	for k := 0; k < nStages; k++ {
		s := f.scale[k]
		if s <= 0 {
			continue
		}
		for j := range xs {
			xs[j] = f.x[k][j] / s
		}
		p.learnStage(k, i, xs[:dims[k]], y[k]/s)
	}
	if p.version%driftEvery == 0 {
		for k, m := range p.models {
			m.drift(p.driftQ[k], p.driftCap[k])
		}
	}
	// Evidence fades between signals (an arm dropped on a bad streak comes
	// back when the streak is forgotten): every report re-checks a share
	// of the arms, all of them every driftEvery reports.
	n := len(p.accOK)
	step := (n + driftEvery - 1) / driftEvery
	for j := 0; j < step; j++ {
		a := (int(p.version%driftEvery)*step + j) % n
		p.accOK[a] = p.accuracyOK(a, p.groupUpper(p.group[a]))
	}
	if f.scale[stT] > 0 && o.Bytes > 0 {
		pred := p.cm.Bases()[i].Bytes
		p.bytesRatio[i] += 0.1 * (o.Bytes/pred - p.bytesRatio[i])
		p.bytesEff[i] = pred * p.bytesRatio[i]
	}
	if r.HasAccuracy && !p.lossless[i] {
		s, f := p.accCounts(i)
		p.accS[i], p.accF[i], p.accAt[i] = s+r.Accuracy, f+1-r.Accuracy, p.version
		g := p.group[i]
		gs, gn, ge := p.groupCounts(g)
		p.grpS[g], p.grpN[g], p.grpE[g], p.grpAt[g] = gs+r.Accuracy, gn+1, ge+p.cm.Bases()[i].Accuracy, p.version
		// the arm's own tests moved; its precision's test moved for every
		// arm of the precision
		gu := p.groupUpper(g)
		p.accOK[i] = p.accuracyOK(i, gu)
		for _, j := range p.groupArms[g] {
			if j != i {
				p.grpConflict[j] = p.groupConflict(j, gu)
				p.accOK[j] = p.postOK[j] && !p.armConflict[j] && !p.grpConflict[j]
			}
		}
	}
	return nil
}

// learnStage updates stage k's regression and arm i's residual from one
// standardised observation y at standardised regressors x.
func (p *Dyno) learnStage(k, i int, x []float64, y float64) {
	m := p.models[k]
	sig2 := p.noise[k]
	var r, vr float64
	sp := p.arms[i].split
	if hasResidual(k) {
		r, vr = p.res[k][sp], p.residualVar(k, sp)
	}
	pred := m.predict(x) + r
	e := y - pred
	sd := math.Sqrt(sig2 + m.variance(x) + vr)
	// Robustness: an innovation beyond clipZ predictive standard
	// deviations (a tunnel the bandwidth estimate has not caught up with)
	// counts as one at clipZ, so that a lone outlier cannot drag the
	// coefficients; a real change keeps arriving and moves them anyway.
	// The clip is wide because the mean, tails included, is what the cost
	// needs.
	const clipZ, detClipZ = 5, 3
	ec := max(-clipZ*sd, min(clipZ*sd, e))
	// Change detection: an exponentially weighted mean of the standardised
	// innovations, each clipped at detClipZ so that it takes a run of them
	// and not one outlier; a run the posterior cannot explain forgets hard
	// along the observed direction.
	const detRate = 0.15
	p.det[k] += detRate * (max(-detClipZ, min(detClipZ, e/sd)) - p.det[k])
	lambda := p.cfg.Forgetting
	if math.Abs(p.det[k]) > p.cfg.ChangeThreshold {
		lambda = p.cfg.ChangeForgetting
		p.det[k] = 0
	}
	m.forget(x, lambda)
	m.update(x, pred+ec-r, 1/sig2)
	if hasResidual(k) {
		// the residual learns what the shared coefficients still miss
		e2 := pred + ec - m.predict(x) - r
		gain := vr / (vr + sig2)
		p.res[k][sp] = r + gain*e2
		p.resVar[k][sp] = vr * sig2 / (vr + sig2)
		p.resAt[k][sp] = p.version
	}
	// The noise estimate, from what the updated posterior still cannot
	// explain (a surprise that moves the coefficients is not noise),
	// outliers clipped at three standard deviations.
	post := y - m.predict(x)
	if hasResidual(k) {
		post -= p.res[k][sp]
	}
	const noiseRate = 0.02
	p.noise[k] = max(sig2+noiseRate*(min(post*post, 9*sig2)-sig2), 1e-4)
}

// accCounts returns arm i's online successes and failures, discounted to
// now.
func (p *Dyno) accCounts(i int) (s, f float64) {
	g := math.Exp(p.logAccForget * float64(p.version-p.accAt[i]))
	return p.accS[i] * g, p.accF[i] * g
}

// groupCounts returns precision group g's successes, signals and expected
// successes, discounted to now.
func (p *Dyno) groupCounts(g int) (s, n, e float64) {
	d := math.Exp(p.logAccForget * float64(p.version-p.grpAt[g]))
	return p.grpS[g] * d, p.grpN[g] * d, p.grpE[g] * d
}

// groupUpper is the upper bound of precision group g's accuracy offset from
// its calibration, or +Inf while it has too few signals to judge.
func (p *Dyno) groupUpper(g int) float64 {
	gs, gn, ge := p.groupCounts(g)
	if gn < p.cfg.ConflictMinN {
		return math.Inf(1)
	}
	ph := min(max(gs/gn, 0.01), 0.99)
	return (gs-ge)/gn + p.cfg.GroupConflictZ*math.Sqrt(ph*(1-ph)/gn)
}

// refreshEligibility recomputes every arm's accuracy eligibility.
func (p *Dyno) refreshEligibility() {
	for i := range p.accOK {
		p.accOK[i] = p.accuracyOK(i, p.groupUpper(p.group[i]))
	}
}

// accuracyPosterior returns arm i's Beta posterior parameters.
func (p *Dyno) accuracyPosterior(i int) (a, b float64) {
	base := p.cm.Bases()[i]
	s, f := p.accCounts(i)
	n0 := p.cfg.AccuracyPrior
	return n0*base.Accuracy + s, n0*(1-base.Accuracy) + f
}

// accuracyOK decides arm i's eligibility by accuracy, given its precision
// group's offset bound gu (groupUpper).
func (p *Dyno) accuracyOK(i int, gu float64) bool {
	b := p.cm.Bases()[i]
	floor := p.obj.AccuracyFloor
	if p.lossless[i] || !b.Calibrated {
		// nothing lossy crosses the link: full-precision accuracy; or no
		// calibration, acceptable only without a floor
		p.postOK[i] = p.lossless[i] && b.Accuracy >= floor || !p.lossless[i] && floor == 0
		p.armConflict[i], p.grpConflict[i] = false, false
		return p.postOK[i]
	}
	// An arm enters when its lower credible bound clears the floor, and
	// stays while its posterior mean is more than accuracyStayZ standard
	// deviations above it: without this hysteresis an arm a point or two
	// above the floor would drop out on every unlucky streak and, chosen
	// no more, stay out until the streak faded.
	s, f := p.accCounts(i)
	n0 := p.cfg.AccuracyPrior
	a, bb := n0*b.Accuracy+s, n0*(1-b.Accuracy)+f
	mean := a / (a + bb)
	sd := math.Sqrt(mean * (1 - mean) / (a + bb + 1))
	z := p.cfg.AccuracyZ
	if p.postOK[i] {
		z = min(z, accuracyStayZ)
	}
	p.postOK[i] = mean-z*sd >= floor
	// Prior-data conflict: the online signals of the arm alone,
	// confidently below the floor.
	bar := floor
	if p.armConflict[i] {
		bar += conflictHysteresis
	}
	p.armConflict[i] = s+f >= p.cfg.ConflictMinN && wilsonUpper(s/(s+f), s+f, p.cfg.ConflictZ) < bar
	p.grpConflict[i] = p.groupConflict(i, gu)
	return p.postOK[i] && !p.armConflict[i] && !p.grpConflict[i]
}

// groupConflict is the shared conflict test of arm i: its precision,
// across splits, confidently below its calibration by more than the arm's
// margin (gu is the group's offset bound). An arm found in conflict stays
// out until its upper bound clears the floor by conflictHysteresis: fading
// evidence alone must not let a broken arm back in at once (each return
// costs requests below the floor).
func (p *Dyno) groupConflict(i int, gu float64) bool {
	bar := p.obj.AccuracyFloor
	if p.grpConflict[i] {
		bar += conflictHysteresis
	}
	return p.cm.Bases()[i].Accuracy+gu < bar
}

// accuracyStayZ is the z of the lower bound an eligible arm must keep.
const accuracyStayZ = 0.5

// conflictHysteresis is how far above the floor the upper bounds of an arm
// in conflict must come back before it is eligible again.
const conflictHysteresis = 0.05

// wilsonUpper is the Wilson score upper bound of a proportion.
func wilsonUpper(phat, n, z float64) float64 {
	z2 := z * z
	centre := phat + z2/(2*n)
	half := z * math.Sqrt(phat*(1-phat)/n+z2/(4*n*n))
	return (centre + half) / (1 + z2/n)
}

// Posterior is a summary of dyno's learned state, for inspection and tests.
type Posterior struct {
	// Coefficients per stage: device [compute, pack], transfer [beta, 0],
	// rtt [gamma, offset ms], queue [kappa, offset ms], cloud [compute,
	// unpack].
	Device, Transfer, RTT, Queue, Cloud [2]float64
	// NoiseSD is the estimated relative noise per stage, in that order.
	NoiseSD [5]float64
}

// Posterior returns the posterior means of the stage coefficients.
func (p *Dyno) Posterior() Posterior {
	get := func(k int) (out [2]float64) {
		for j := 0; j < dims[k]; j++ {
			out[j] = p.models[k].meanAt(j)
		}
		return out
	}
	var ns [5]float64
	for k := range ns {
		ns[k] = math.Sqrt(p.noise[k])
	}
	return Posterior{Device: get(stD), Transfer: get(stT), RTT: get(stR), Queue: get(stQ), Cloud: get(stC), NoiseSD: ns}
}

// Accuracy returns arm i's posterior mean accuracy and whether it is
// eligible now.
func (p *Dyno) Accuracy(i int) (mean float64, eligible bool) {
	if p.lossless[i] {
		return p.cm.Bases()[i].Accuracy, p.accOK[i]
	}
	a, b := p.accuracyPosterior(i)
	return a / (a + b), p.accOK[i]
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *Dyno) MarshalBinary() ([]byte, error) {
	e := p.header(NameDyno)
	for _, v := range p.cfg.fields() {
		e.f64(*v)
	}
	for k := 0; k < nStages; k++ {
		p.models[k].encode(e)
		e.f64(p.noise[k])
		e.f64(p.det[k])
		e.f64s(p.res[k])
		e.f64s(p.resVar[k])
		for _, t := range p.resAt[k] {
			e.u64(t)
		}
	}
	e.f64s(p.bytesRatio)
	e.f64s(p.accS)
	e.f64s(p.accF)
	for _, t := range p.accAt {
		e.u64(t)
	}
	e.f64s(p.grpS)
	e.f64s(p.grpN)
	e.f64s(p.grpE)
	for _, t := range p.grpAt {
		e.u64(t)
	}
	e.bools(p.postOK)
	e.bools(p.armConflict)
	e.bools(p.grpConflict)
	p.encodeFloor(e)
	return e.b, nil
}

func init() {
	restorers[NameDyno] = func(c common, d *decoder) (Policy, error) {
		p := &Dyno{common: c}
		for _, v := range p.cfg.fields() {
			*v = d.finite("dyno.config")
		}
		if d.err != nil {
			return nil, d.err
		}
		if err := p.cfg.resolve(c.cm.Accuracy); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		p.init()
		n, ns := len(c.cm.Arms()), c.cm.Manifest.K()+1
		for k := 0; k < nStages; k++ {
			what := "dyno." + stageNames[k]
			p.models[k].decode(d, what)
			p.noise[k] = d.finite(what + ".noise")
			p.det[k] = d.finite(what + ".detector")
			p.res[k] = d.f64s(what+".residual", ns)
			p.resVar[k] = d.f64s(what+".residual_var", ns)
			for j := range p.resAt[k] {
				p.resAt[k][j] = d.u64(what + ".residual_at")
			}
			if d.err == nil && !(p.noise[k] > 0) {
				d.fail("%s.noise: %g is not positive", what, p.noise[k])
			}
		}
		p.bytesRatio = d.f64s("dyno.bytes_ratio", n)
		p.accS = d.f64s("dyno.accuracy_successes", n)
		p.accF = d.f64s("dyno.accuracy_failures", n)
		for j := range p.accAt {
			p.accAt[j] = d.u64("dyno.accuracy_at")
		}
		g := len(p.grpAt)
		p.grpS = d.f64s("dyno.group_successes", g)
		p.grpN = d.f64s("dyno.group_signals", g)
		p.grpE = d.f64s("dyno.group_expected", g)
		for j := range p.grpAt {
			p.grpAt[j] = d.u64("dyno.group_at")
		}
		p.postOK = d.bools("dyno.posterior_ok", n)
		p.armConflict = d.bools("dyno.arm_conflict", n)
		p.grpConflict = d.bools("dyno.group_conflict", n)
		p.decodeFloor(d)
		if d.err != nil {
			return nil, d.err
		}
		for k := 0; k < nStages; k++ {
			for j := 0; j < ns; j++ {
				if p.resVar[k][j] < 0 || p.resAt[k][j] > p.version {
					return nil, fmt.Errorf("%w: dyno %s residual of split %d out of range", ErrCorrupt, stageNames[k], j)
				}
			}
		}
		for j := 0; j < n; j++ {
			if p.bytesRatio[j] <= 0 || p.accS[j] < 0 || p.accF[j] < 0 || p.accAt[j] > p.version {
				return nil, fmt.Errorf("%w: dyno arm %d state out of range", ErrCorrupt, j)
			}
		}
		for j := 0; j < g; j++ {
			if p.grpS[j] < 0 || p.grpN[j] < p.grpS[j] || p.grpE[j] < 0 || p.grpAt[j] > p.version {
				return nil, fmt.Errorf("%w: dyno precision group %d state out of range", ErrCorrupt, j)
			}
		}
		p.setup()
		for j := range p.accOK {
			p.accOK[j] = p.postOK[j] && !p.armConflict[j] && !p.grpConflict[j]
		}
		return p, nil
	}
}

// Predict returns arm i's posterior-mean stages and cost under cond, and
// whether the arm may be chosen now (mask and accuracy), for inspection.
func (p *Dyno) Predict(cond costmodel.Conditions, i int) (costmodel.Stages, float64, bool) {
	var f features
	p.featuresOf(i, &cond, &f)
	var pt stagePoint
	p.predict(i, &f, &pt)
	a := p.cm.Arms()[i]
	return pt.stages(a, p.bytesEff[i]), p.grad.cost(&pt, p.bytesEff[i]), p.eligible(i)
}
