package bandit

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/dynoml/dyno/costmodel"
)

// ANS is the muLinUCB policy of the Autodidactic Neurosurgeon: L. Zhang,
// L. Chen and J. Xu, "Autodidactic Neurosurgeon: Collaborative Deep
// Inference for Mobile Edge Intelligence via Online Learning", The Web
// Conference (WWW) 2021.
//
// One arm per split (activations at full precision). The device-side
// ("front-end") cost of every split is known from the profile; the rest of
// the cost, the offloading part, is learned as one linear model shared by
// the arms, thetaᵀx_s, on a per-split context x_s of the cloud-side MACs and
// layer counts by layer type (convolution, fully connected, other) and the
// data size crossing the split; the bandwidth is not in the context, as in
// the paper. Each request takes
//
//	argmin_s front(s) + thetaᵀx_s - alpha·sqrt((1-L)·x_sᵀ A⁻¹ x_s)
//
// with the exploration weight of the paper,
//
//	alpha = (C_theta + sqrt(d·log((1 + T·C_x²)/delta))·C_noise) / (1 - L_key)
//
// (C_theta 1, delta 0.1, C_noise 0.05, L_key 0.8, horizon T by the doubling
// trick from 200), L = L_nonkey = 0.2 because requests here are not video
// key frames, and forced sampling: every ceil(T^0.25)-th request excludes
// the device-only arm, whose outcome teaches the model nothing. Costs are in
// seconds, as published. It is deterministic.
type ANS struct {
	common
	ctx   [][ansDim]float64 // context of every split
	front []float64         // ms, per split, at nominal device speed
	arms  []int             // arm index of (s, 32)
	cx2   float64           // C_x², the largest squared context norm

	ainv  *mat.SymDense // A⁻¹, by Sherman-Morrison
	b     *mat.VecDense
	theta *mat.VecDense
	work  *mat.VecDense

	horizon float64 // T of the doubling trick
	frame   float64 // requests since the horizon last doubled
}

var _ Policy = (*ANS)(nil)

// ansDim is the context dimension: MACs and counts of three layer types,
// and the data size.
const ansDim = 7

// The constants of muLinUCB as published.
const (
	ansCTheta    = 1.0
	ansDelta     = 0.1
	ansCNoise    = 0.05
	ansLKey      = 0.8
	ansLNonKey   = 0.2
	ansT0        = 200
	ansForceRate = 0.25
)

// NewANS builds muLinUCB at its prior (A = I, b = 0).
func NewANS(cm *costmodel.Model, cfg Config) (*ANS, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	layers := cfg.Layers
	if layers == nil {
		layers = blockLayers(cm)
	}
	p := &ANS{common: c, horizon: ansT0}
	p.alloc()
	for i := 0; i < ansDim; i++ {
		p.ainv.SetSym(i, i, 1)
	}
	p.buildContexts(layers)
	return p, nil
}

func (p *ANS) alloc() {
	p.ainv = mat.NewSymDense(ansDim, nil)
	p.b = mat.NewVecDense(ansDim, nil)
	p.theta = mat.NewVecDense(ansDim, nil)
	p.work = mat.NewVecDense(ansDim, nil)
}

// buildContexts fills the per-split contexts from the layer table.
func (p *ANS) buildContexts(layers [][]LayerStats) {
	k := p.cm.Manifest.K()
	p.ctx = make([][ansDim]float64, k+1)
	for s := 0; s < k; s++ { // device-only (s = k) offloads nothing: zero context
		x := &p.ctx[s]
		for _, l := range layers[s:] {
			for _, st := range l {
				j := 2 // other
				switch st.Kind {
				case "conv", "dwconv":
					j = 0
				case "fc":
					j = 1
				}
				x[2*j] += st.FLOPs / 2 / 1e9 // GMACs
				x[2*j+1] += float64(st.Count) / 10
			}
		}
		x[6] = float64(4*p.cm.Manifest.Elements(s)) / 1e6 // MB at float32
	}
	p.derive()
}

// derive computes what follows from the model and the contexts: the arm of
// every split, the front-end costs and C_x².
func (p *ANS) derive() {
	k := p.cm.Manifest.K()
	p.front = make([]float64, k+1)
	p.arms = make([]int, k+1)
	for s := 0; s <= k; s++ {
		i, ok := p.cm.Index(costmodel.Arm{Split: s, Bits: 32})
		if !ok {
			i = -1
		}
		p.arms[s] = i
		if i >= 0 {
			b := p.cm.Bases()[i]
			p.front[s] = b.DeviceMs + b.PackMs
		}
	}
	p.cx2 = 0
	for s := range p.ctx {
		var n2 float64
		for _, v := range p.ctx[s] {
			n2 += v * v
		}
		p.cx2 = math.Max(p.cx2, n2)
	}
}

// alpha is the published exploration weight at the current horizon.
func (p *ANS) alpha() float64 {
	return (ansCTheta + math.Sqrt(ansDim*math.Log((1+p.horizon*p.cx2)/ansDelta))*ansCNoise) / (1 - ansLKey)
}

// Name implements Policy.
func (p *ANS) Name() string { return NameANS }

// frontCost is the objective's cost of split s's device part, in seconds.
func (p *ANS) frontCost(s int, ds float64) float64 {
	return p.obj.Cost(costmodel.Stages{DeviceMs: p.front[s] * ds}) / 1000
}

// Choose implements Chooser.
func (p *ANS) Choose(cond costmodel.Conditions, d *Decision) error {
	if err := checkConditions(cond); err != nil {
		return err
	}
	p.reset(d)
	if p.pin >= 0 {
		p.certain(d, p.pin)
		return nil
	}
	// the doubling trick and the forced-sampling clock
	p.frame++
	if p.frame > p.horizon {
		p.horizon *= 2
		p.frame = 0
	}
	force := math.Ceil(math.Pow(p.horizon, ansForceRate))
	forced := math.Mod(p.frame, force) == 0
	k := p.cm.Manifest.K()
	alpha := p.alpha()
	ds, _ := cond.Slowdowns()
	best, bestEst := -1, 0.0
	for s, i := range p.arms {
		if i < 0 || !p.tableEligible(i) || (forced && s == k) {
			continue
		}
		x := p.ctx[s][:]
		var mean float64
		for j, v := range x {
			mean += p.theta.AtVec(j) * v
		}
		bonus := alpha * math.Sqrt((1-ansLNonKey)*quad(p.ainv.RawSymmetric(), x))
		est := p.frontCost(s, ds) + mean - bonus
		if best < 0 || est < bestEst {
			best, bestEst = i, est
		}
	}
	if best < 0 {
		// forced sampling found nothing to offload to: fall back to all
		for _, i := range p.arms {
			if i >= 0 && p.tableEligible(i) {
				best = i
				break
			}
		}
	}
	if best < 0 {
		return fmt.Errorf("%w: no full-precision arm is allowed", ErrNoEligibleArm)
	}
	p.certain(d, best)
	return nil
}

// Learn implements Learner: an offloaded request adds its context to A and
// its offloading cost (the observed cost less the front-end cost) to b.
func (p *ANS) Learn(r *Report) error {
	i, err := p.learnCommon(r)
	if err != nil {
		return err
	}
	a := p.cm.Arms()[i]
	k := p.cm.Manifest.K()
	if a.Bits != 32 || a.Split == k {
		return nil // not one of its arms, or device-only: nothing offloaded
	}
	y := p.obj.Cost(r.Observed)/1000 - p.frontCost(a.Split, deviceSlowdown(r.Conditions))
	xv := blas64.Vector{N: ansDim, Inc: 1, Data: p.ctx[a.Split][:]}
	w := p.work.RawVector()
	blas64.Symv(1, p.ainv.RawSymmetric(), xv, 0, w)
	den := 1 + blas64.Dot(xv, w)
	p.ainv.SymRankOne(p.ainv, -1/den, p.work)
	blas64.Axpy(y, xv, p.b.RawVector())
	p.theta.MulVec(p.ainv, p.b)
	return nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *ANS) MarshalBinary() ([]byte, error) {
	e := p.header(NameANS)
	e.f64(p.horizon)
	e.f64(p.frame)
	for i := 0; i < ansDim; i++ {
		for j := i; j < ansDim; j++ {
			e.f64(p.ainv.At(i, j))
		}
	}
	for i := 0; i < ansDim; i++ {
		e.f64(p.b.AtVec(i))
	}
	e.u32(uint32(len(p.ctx)))
	for _, x := range p.ctx {
		for _, v := range x {
			e.f64(v)
		}
	}
	return e.b, nil
}

func init() {
	restorers[NameANS] = func(c common, d *decoder) (Policy, error) {
		p := &ANS{common: c}
		p.alloc()
		p.horizon = d.finite("ans.horizon")
		p.frame = d.finite("ans.frame")
		for i := 0; i < ansDim; i++ {
			for j := i; j < ansDim; j++ {
				p.ainv.SetSym(i, j, d.finite("ans.ainv"))
			}
			if d.err == nil && !(p.ainv.At(i, i) > 0) {
				d.fail("ans.ainv: diagonal %d is not positive", i)
			}
		}
		for i := 0; i < ansDim; i++ {
			p.b.SetVec(i, d.finite("ans.b"))
		}
		n := d.length("ans.contexts", 8*ansDim)
		if d.err == nil && n != c.cm.Manifest.K()+1 {
			d.fail("ans.contexts: %d, want %d", n, c.cm.Manifest.K()+1)
		}
		p.ctx = make([][ansDim]float64, n)
		for s := range p.ctx {
			for j := range p.ctx[s] {
				p.ctx[s][j] = d.finite("ans.context")
			}
		}
		if d.err != nil {
			return nil, d.err
		}
		if !(p.horizon >= ansT0) || p.frame < 0 || p.frame > p.horizon {
			return nil, fmt.Errorf("%w: ans clock %g/%g out of range", ErrCorrupt, p.frame, p.horizon)
		}
		p.theta.MulVec(p.ainv, p.b)
		p.derive()
		return p, nil
	}
}

// deviceSlowdown is the conditions' device slowdown, nominal when unset.
func deviceSlowdown(c costmodel.Conditions) float64 {
	ds, _ := c.Slowdowns()
	return ds
}
