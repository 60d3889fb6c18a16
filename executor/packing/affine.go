package packing

import (
	"fmt"
	"math"
)

// group is the elements one parameter set covers: count runs of inner
// contiguous values, run k starting at start+k*stride. The whole tensor is
// one run; a channel of an NCHW tensor is one run per batch item.
type group struct {
	data                        []float32
	start, inner, stride, count int
}

func (g group) run(k int) []float32 {
	o := g.start + k*g.stride
	return g.data[o : o+g.inner]
}

func (g group) len() int { return g.inner * g.count }

// minScale keeps 1/scale finite: the smallest normal float32.
const minScale = 0x1p-126

// minMax returns the smallest and largest value of g and whether every value
// is finite. NaN fails every comparison, so it is caught separately; the
// check costs one predictable branch an element.
func minMax(g group) (mn, mx float32, finite bool) {
	if g.len() == 0 {
		return 0, 0, true
	}
	mn, mx = g.data[g.start], g.data[g.start]
	nan := false
	for k := range g.count {
		r := g.run(k)
		// Two lanes halve the dependency chains of the compares.
		mn1, mx1 := mn, mx
		i := 0
		for ; i+1 < len(r); i += 2 {
			a, b := r[i], r[i+1]
			if a != a || b != b {
				nan = true
			}
			if a < mn {
				mn = a
			}
			if a > mx {
				mx = a
			}
			if b < mn1 {
				mn1 = b
			}
			if b > mx1 {
				mx1 = b
			}
		}
		for ; i < len(r); i++ {
			a := r[i]
			if a != a {
				nan = true
			}
			if a < mn {
				mn = a
			}
			if a > mx {
				mx = a
			}
		}
		mn, mx = min(mn, mn1), max(mx, mx1)
	}
	finite = !nan && !math.IsInf(float64(mn), 0) && !math.IsInf(float64(mx), 0)
	return mn, mx, finite
}

// nonFinite returns an error naming the first NaN or Inf in data.
func nonFinite(data []float32) error {
	for i, x := range data {
		if x != x || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: value %d is %g; quantised widths need finite values", ErrInvalid, i, x)
		}
	}
	return fmt.Errorf("%w: non-finite value", ErrInvalid) // not reached
}

const maxBins = 2048

// histogram is scratch for percentileRange; it lives on the caller's stack.
type histogram struct {
	coarse, lo, hi [maxBins]uint32
}

// percentileRange approximates the [100-p, p] percentiles of g (nearest rank)
// with a two-level histogram: a coarse histogram over [mn, mx] finds the bin
// holding each rank, a second pass histograms just those two bins. The
// result brackets the exact percentiles from outside by at most
// (mx-mn)/bins^2, so the clip never cuts more than asked. mn and mx are
// g's extremes; the counts fit uint32 because Encode caps elements at 2^32-1.
func percentileRange(g group, mn, mx float32, p float64, h *histogram) (lo, hi float32) {
	n := g.len()
	khi := int(math.Ceil(p/100*float64(n))) - 1
	khi = min(max(khi, 0), n-1)
	klo := n - 1 - khi
	if mn == mx || khi == n-1 {
		return mn, mx
	}
	bins := maxBins
	for bins > 16 && bins*8 > n {
		bins /= 2
	}
	base := float64(mn)
	width := (float64(mx) - base) / float64(bins)
	inv := 1 / width
	last := bins - 1
	coarse := h.coarse[:bins]
	clear(coarse)
	for k := range g.count {
		for _, x := range g.run(k) {
			i := min(int((float64(x)-base)*inv), last)
			coarse[i]++
		}
	}
	blo, restLo := findRank(coarse, klo)
	bhi, restHi := findRank(coarse, khi)

	loBase := base + float64(blo)*width
	hiBase := base + float64(bhi)*width
	sub := width / float64(bins)
	subInv := 1 / sub
	fineLo, fineHi := h.lo[:bins], h.hi[:bins]
	clear(fineLo)
	clear(fineHi)
	for k := range g.count {
		for _, x := range g.run(k) {
			xf := float64(x)
			i := min(int((xf-base)*inv), last)
			if i == blo {
				fineLo[min(max(int((xf-loBase)*subInv), 0), last)]++
			}
			if i == bhi {
				fineHi[min(max(int((xf-hiBase)*subInv), 0), last)]++
			}
		}
	}
	jlo, _ := findRank(fineLo, restLo)
	jhi, _ := findRank(fineHi, restHi)
	lo = max(float32(loBase+float64(jlo)*sub), mn)
	hi = min(float32(hiBase+float64(jhi+1)*sub), mx)
	return lo, max(hi, lo)
}

// findRank returns the bin holding the value of 0-based rank k and k's rank
// within that bin.
func findRank(h []uint32, k int) (bin, rest int) {
	for i, c := range h {
		if k < int(c) {
			return i, k
		}
		k -= int(c)
	}
	return len(h) - 1, 0 // not reached when the counts add up
}

// affineParams chooses scale and an integer zero point for [lo, hi]. The
// range is first widened to include 0, so that 0 has an exact code (the zero
// point): ReLU zeros decode to exactly 0 and stay one repeated code for the
// compressor. Rounding the zero point shifts the range by at most half a
// step, so every value in [lo, hi] is still within half a step of a code.
func affineParams(lo, hi float32, bits int) Param {
	lo, hi = min(lo, 0), max(hi, 0)
	qmax := 1<<bits - 1
	r := float64(hi) - float64(lo) // float64: hi-lo may overflow float32
	if r == 0 {
		return Param{Scale: 1, ZeroPoint: 0}
	}
	scale := max(float32(r/float64(qmax)), minScale)
	zp := int(math.Round(-float64(lo) / float64(scale)))
	zp = min(max(zp, 0), qmax)
	// Keep both ends finite after the float32 rounding of scale.
	for math.IsInf(float64(float32(qmax-zp)*scale), 0) || math.IsInf(float64(float32(-zp)*scale), 0) {
		scale = math.Nextafter32(scale, 0)
	}
	return Param{Scale: scale, ZeroPoint: zp}
}

// quantizer maps a value to its code: round(x/scale)+zp clamped to
// [0, qmax], computed as trunc(clamp(x*inv + zp + 0.5)) so the inner loop has
// no math.Round and no division.
type quantizer struct {
	inv, off, qmax float32
}

func newQuantizer(p Param, bits int) quantizer {
	return quantizer{
		inv:  1 / p.Scale,
		off:  float32(p.ZeroPoint) + 0.5,
		qmax: float32(int(1)<<bits - 1),
	}
}

func (q quantizer) code(x float32) uint32 {
	v := x*q.inv + q.off
	if v < 0 {
		v = 0
	}
	if v > q.qmax {
		v = q.qmax
	}
	return uint32(int32(v))
}

// dequantizer maps a code back to float32(q-zp)*scale.
type dequantizer struct {
	scale float32
	zp    int32
}

func (d dequantizer) value(c uint32) float32 {
	return float32(int32(c)-d.zp) * d.scale
}
