package bandit

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/dynoml/dyno/costmodel"
)

// Neurosurgeon is the Neurosurgeon-style baseline (Kang et al., "Neurosurgeon:
// Collaborative Intelligence Between the Cloud and Mobile Edge", ASPLOS
// 2017): a latency regression per layer type, fitted once to the device's
// and the cloud's profiles, predicts every block; every request it takes the
// split of least predicted cost under the measured bandwidth, RTT and cloud
// load. It chooses the split only: activations travel at full precision
// (32 bits). It never learns online.
type Neurosurgeon struct {
	common
	dev, cloud []float64 // regressed latency of every block, ms
	arms       []int     // the arm index of (s, 32) for every split s
}

var _ Policy = (*Neurosurgeon)(nil)

// NewNeurosurgeon fits the per-layer-type regressions and builds the
// baseline.
func NewNeurosurgeon(cm *costmodel.Model, cfg Config) (*Neurosurgeon, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	layers := cfg.Layers
	if layers == nil {
		layers = blockLayers(cm)
	}
	p := &Neurosurgeon{common: c}
	if p.dev, err = fitLayerRegression(layers, cm.Device); err != nil {
		return nil, err
	}
	if p.cloud, err = fitLayerRegression(layers, cm.Cloud); err != nil {
		return nil, err
	}
	p.setup()
	return p, nil
}

// blockLayers treats each block as one convolution of its manifest FLOPs.
func blockLayers(cm *costmodel.Model) [][]LayerStats {
	out := make([][]LayerStats, cm.Manifest.K())
	for i, b := range cm.Manifest.Blocks {
		out[i] = []LayerStats{{Kind: "conv", Count: 1, FLOPs: float64(b.FLOPs)}}
	}
	return out
}

// fitLayerRegression fits t_block = sum over layer types k of
// a_k·GFLOPs_k + c_k·count_k (a ridge least-squares fit; a tiny ridge keeps
// collinear types solvable) to a profile and returns the fitted latency of
// every block, clipped at zero.
func fitLayerRegression(layers [][]LayerStats, prof *costmodel.Profile) ([]float64, error) {
	kindSet := map[string]int{}
	for _, l := range layers {
		for _, s := range l {
			kindSet[s.Kind] = 0
		}
	}
	kinds := make([]string, 0, len(kindSet))
	for k := range kindSet {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		kindSet[k] = i
	}
	nb, nf := len(layers), 2*len(kinds)
	if nf == 0 {
		return nil, fmt.Errorf("%w: neurosurgeon: no layers to regress on", ErrInvalid)
	}
	x := mat.NewDense(nb, nf, nil)
	y := mat.NewVecDense(nb, nil)
	for i, l := range layers {
		for _, s := range l {
			j := kindSet[s.Kind]
			x.Set(i, 2*j, x.At(i, 2*j)+s.FLOPs/1e9)
			x.Set(i, 2*j+1, x.At(i, 2*j+1)+float64(s.Count))
		}
		y.SetVec(i, prof.Blocks[i].MedianMs)
	}
	var xtx mat.SymDense
	xtx.SymOuterK(1, x.T())
	var tr float64
	for j := 0; j < nf; j++ {
		tr += xtx.At(j, j)
	}
	ridge := 1e-6 * tr / float64(nf)
	if ridge == 0 {
		ridge = 1e-9
	}
	for j := 0; j < nf; j++ {
		xtx.SetSym(j, j, xtx.At(j, j)+ridge)
	}
	var xty mat.VecDense
	xty.MulVec(x.T(), y)
	var ch mat.Cholesky
	if !ch.Factorize(&xtx) {
		return nil, fmt.Errorf("%w: neurosurgeon: the layer regression of %s is singular", ErrInvalid, prof.DeviceClass)
	}
	var w mat.VecDense
	if err := ch.SolveVecTo(&w, &xty); err != nil {
		return nil, fmt.Errorf("%w: neurosurgeon: layer regression of %s: %v", ErrInvalid, prof.DeviceClass, err)
	}
	var fit mat.VecDense
	fit.MulVec(x, &w)
	out := make([]float64, nb)
	for i := range out {
		out[i] = math.Max(fit.AtVec(i), 0)
	}
	return out, nil
}

// setup finds the full-precision arm of every split.
func (p *Neurosurgeon) setup() {
	k := p.cm.Manifest.K()
	p.arms = make([]int, k+1)
	for s := 0; s <= k; s++ {
		i, ok := p.cm.Index(costmodel.Arm{Split: s, Bits: 32})
		if !ok {
			i = -1
		}
		p.arms[s] = i
	}
}

// Name implements Policy.
func (p *Neurosurgeon) Name() string { return NameNeurosurgeon }

// Choose implements Chooser.
func (p *Neurosurgeon) Choose(cond costmodel.Conditions, d *Decision) error {
	if err := checkConditions(cond); err != nil {
		return err
	}
	p.reset(d)
	if p.pin >= 0 {
		p.certain(d, p.pin)
		return nil
	}
	var devMs, cloudMs float64
	for _, t := range p.cloud {
		cloudMs += t
	}
	bases := p.cm.Bases()
	best, bestCost := -1, 0.0
	for s, i := range p.arms {
		if s > 0 {
			devMs += p.dev[s-1]
			cloudMs -= p.cloud[s-1]
		}
		if i < 0 || !p.tableEligible(i) {
			continue
		}
		// The arm with the regressed block times in place of the profile's.
		b := bases[i]
		b.DeviceMs, b.CloudMs = devMs, 0
		if b.Sends() {
			b.CloudMs = math.Max(cloudMs, 0)
		}
		c := p.obj.PredictCost(&b, &cond)
		if best < 0 || c < bestCost {
			best, bestCost = i, c
		}
	}
	if best < 0 {
		return fmt.Errorf("%w: no full-precision arm is allowed", ErrNoEligibleArm)
	}
	p.certain(d, best)
	return nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *Neurosurgeon) MarshalBinary() ([]byte, error) {
	e := p.header(NameNeurosurgeon)
	e.f64s(p.dev)
	e.f64s(p.cloud)
	return e.b, nil
}

func init() {
	restorers[NameNeurosurgeon] = func(c common, d *decoder) (Policy, error) {
		k := c.cm.Manifest.K()
		p := &Neurosurgeon{common: c}
		p.dev = d.f64s("neurosurgeon.device", k)
		p.cloud = d.f64s("neurosurgeon.cloud", k)
		if d.err != nil {
			return nil, d.err
		}
		for i := 0; i < k; i++ {
			if p.dev[i] < 0 || p.cloud[i] < 0 {
				return nil, fmt.Errorf("%w: neurosurgeon block %d: negative latency", ErrCorrupt, i)
			}
		}
		p.setup()
		return p, nil
	}
}
