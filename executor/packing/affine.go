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

// Order-preserving integer keys of float32 values. key maps the bits of a
// float to an int32 that compares like the float (for non-NaN values), so
// min and max become integer CMOVs instead of float branches, which Go
// compiles poorly; ukey is the same order as uint32, for radix selection.
// key is its own inverse.
func key(b int32) int32 { return b ^ (b >> 31 & 0x7fffffff) }

func ukey(x float32) uint32 { return uint32(key(int32(math.Float32bits(x)))) ^ 0x80000000 }

func fromUkey(k uint32) float32 {
	return math.Float32frombits(uint32(key(int32(k ^ 0x80000000))))
}

const (
	keyPosInf  = 0x7f800000      // key(+Inf); larger keys are NaN
	keyNegInf  = -0x7f800000 - 1 // key(-Inf) = int32(0x807fffff); smaller keys are NaN
	ukeyZero   = 0x80000000      // ukey(+0); ukey(-0) is one less
	ukeyPosInf = 0xff800000      // ukey(+Inf); larger keys are NaN
	ukeyNegInf = 0x007fffff      // ukey(-Inf); smaller keys are NaN
	minScale   = 0x1p-126        // smallest normal float32: keeps 1/scale finite
)

// minMax returns the smallest and largest value of g and whether all its
// values are finite (NaN and ±Inf have keys beyond ±Inf's).
func minMax(g group) (mn, mx float32, finite bool) {
	if g.len() == 0 {
		return 0, 0, true
	}
	k0 := key(int32(math.Float32bits(g.data[g.start])))
	kmn, kmx := k0, k0
	for k := range g.count {
		for _, x := range g.run(k) {
			kx := key(int32(math.Float32bits(x)))
			kmn = min(kmn, kx)
			kmx = max(kmx, kx)
		}
	}
	mn = math.Float32frombits(uint32(key(kmn)))
	mx = math.Float32frombits(uint32(key(kmx)))
	return mn, mx, kmn > keyNegInf && kmx < keyPosInf
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
	// Keep both ends of the representable range finite. Only ranges wider
	// than about MaxFloat32 get here, and they lose accuracy at the ends: an
	// exact zero and finite ends cannot both be had at few bits.
	if m := float64(max(zp, qmax-zp)); float64(scale)*m > math.MaxFloat32 {
		scale = float32(math.MaxFloat32 / m)
	}
	for math.IsInf(float64(float32(qmax-zp)*scale), 0) || math.IsInf(float64(float32(-zp)*scale), 0) {
		scale = math.Nextafter32(scale, 0) // at most a step or two after the division
	}
	return Param{Scale: scale, ZeroPoint: zp}
}

// quantizer maps a value to its code, round(x/scale)+zp clamped to
// [0, qmax], computed as int32(x*inv + off) with off = zp+0.5: no division
// and no math.Round in the inner loop. How much clamping that needs depends
// on the inputs, so each group gets one of three modes:
//
//   - modeFast: no clamp at all. Valid when every input lies in [mn, mx] and
//     both ends were checked to land in [0, qmax] (the expression is
//     monotonic in x). This is the min/max path.
//   - modeClampInt: clamp the integer code. Valid while x*inv stays far from
//     int32 overflow at both ends. This is the clip path.
//   - modeClampFloat: clamp x into the representable range first, then as
//     modeClampInt; for clip ranges that outliers would overflow.
type quantizer struct {
	inv, off float32
	lo, hi   float32 // modeClampFloat: the representable range
	qmax     int32
	mode     uint8
}

const (
	modeFast uint8 = iota
	modeClampInt
	modeClampFloat
)

// newQuantizer builds the quantizer of p for inputs in [mn, mx]; clip says
// the inputs may lie outside p's range.
func newQuantizer(p Param, bits int, mn, mx float32, clip bool) quantizer {
	q := quantizer{
		inv:  1 / p.Scale,
		off:  float32(p.ZeroPoint) + 0.5,
		qmax: int32(1)<<bits - 1,
	}
	if clip {
		const limit = 1 << 30
		if vlo, vhi := q.unfused(mn), q.unfused(mx); vlo > -limit && vhi < limit {
			q.mode = modeClampInt
		} else {
			q.mode = modeClampFloat
			q.lo = float32(-p.ZeroPoint) * p.Scale
			q.hi = float32(int(q.qmax)-p.ZeroPoint) * p.Scale
		}
		return q
	}
	// Rounding ties (the zero point rounded up by exactly half a step) and
	// float error can carry mx to qmax+1: lower off by the excess. Zero keeps
	// its code, zp, while off stays in [zp, zp+1). The checks keep one ulp of
	// margin because fused rounds twice (float64, then float32) where a
	// float32 FMA rounds once.
	top := math.Nextafter32(float32(q.qmax+1), 0)
	bottom := math.Nextafter32(-1, 0)
	for range 4 {
		v := max(q.unfused(mx), q.fused(mx))
		if v < top {
			break
		}
		q.off = math.Nextafter32(q.off-(v-top), 0)
	}
	fast := int32(q.off) == int32(p.ZeroPoint) &&
		q.unfused(mx) < top && q.fused(mx) < top &&
		q.unfused(mn) > bottom && q.fused(mn) > bottom
	if !fast {
		q.off = float32(p.ZeroPoint) + 0.5
		q.mode = modeClampInt // inputs within half a step of the range: no overflow
	}
	return q
}

// unfused and fused compute x*inv + off both ways a compiler may evaluate
// the kernels' expression (arm64 fuses it into one FMA).
func (q *quantizer) unfused(x float32) float32 { return float32(x*q.inv) + q.off }

func (q *quantizer) fused(x float32) float32 {
	return float32(math.FMA(float64(x), float64(q.inv), float64(q.off)))
}

// dequantizer maps a code back to float32(q-zp)*scale.
type dequantizer struct {
	scale float32
	zp    int32
}

func (d dequantizer) value(c uint32) float32 {
	return float32(int32(c)-d.zp) * d.scale
}
