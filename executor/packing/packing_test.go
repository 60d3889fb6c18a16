package packing_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/x448/float16"

	"github.com/dynoml/dyno/executor/packing"
)

// seed is the seed of every randomised test; failures print it.
const seed = 20260601

func rng(t testing.TB, salt uint64) *rand.Rand {
	t.Helper()
	return rand.New(rand.NewPCG(seed, salt))
}

// Data generators, each deterministic for a seed.
type gen struct {
	name string
	fill func(r *rand.Rand, x []float32)
}

var gens = []gen{
	{"relu", func(r *rand.Rand, x []float32) {
		for i := range x {
			if r.IntN(2) == 1 {
				x[i] = float32(r.ExpFloat64())
			} else {
				x[i] = 0
			}
		}
	}},
	{"normal", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(r.NormFloat64() * 3)
		}
	}},
	{"negative", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = -1 - float32(r.Float64()*100)
		}
	}},
	{"zeros", func(r *rand.Rand, x []float32) { clear(x) }},
	{"constant", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = 2.5
		}
	}},
	{"constant-negative", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = -0.75
		}
	}},
	// The zero point lands on a rounding tie at 2 bits: range [-0.25, 1.25],
	// scale 0.5, zero point 0.5 rounded up.
	{"tie", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = [...]float32{-0.25, 1.25, 0, 0.5, -0.2, 1.2}[r.IntN(6)]
		}
	}},
	{"wide", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32((r.Float64()*2 - 1) * 1e38)
		}
	}},
	{"tiny", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(r.Float64() * 1e-40) // subnormal
		}
	}},
	{"outliers", func(r *rand.Rand, x []float32) {
		for i := range x {
			x[i] = float32(r.NormFloat64())
			if r.IntN(500) == 0 {
				x[i] = float32(r.NormFloat64() * 1e4)
			}
		}
		if len(x) > 0 {
			x[0] = 1e30 // beyond int32 once scaled by a clipped range
		}
	}},
}

var shapes = [][]int64{
	{1000},
	{7, 13},
	{3, 5, 17},
	{2, 3, 5, 7},
	{1, 16, 9, 9},
	{2, 1, 1, 1},
	{1, 4, 40, 40}, // channels large enough for radix percentiles
	{},             // a scalar
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// paramOf returns the parameter set of flat index i.
func paramOf(scheme packing.Scheme, shape []int64, i int) int {
	if len(shape) < 2 || scheme != packing.SchemeAffineChannel {
		return 0
	}
	inner := numel(shape[2:])
	return (i / inner) % int(shape[1])
}

func encode(t testing.TB, data []float32, shape []int64, opt packing.Options) []byte {
	t.Helper()
	msg, err := packing.Encode(nil, data, shape, opt)
	if err != nil {
		t.Fatalf("Encode(%v, %+v): %v", shape, opt, err)
	}
	return msg
}

func decode(t testing.TB, msg []byte) ([]float32, packing.Header) {
	t.Helper()
	out, h, err := packing.Decode(nil, msg, packing.DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v (seed %d)", err, seed)
	}
	return out, h
}

func checkHeader(t *testing.T, h packing.Header, shape []int64, bits int, scheme packing.Scheme) {
	t.Helper()
	if h.Bits != bits || h.Scheme != scheme || h.Version != packing.Version {
		t.Fatalf("header bits %d scheme %v version %d, want %d %v %d", h.Bits, h.Scheme, h.Version, bits, scheme, packing.Version)
	}
	if fmt.Sprint(h.Shape()) != fmt.Sprint(shape) {
		t.Fatalf("header shape %v, want %v", h.Shape(), shape)
	}
}

// tolerance is the float slack on top of half a step: the encoder computes
// x*(1/scale) in float32 and may nudge the rounding offset by a few ulps.
func tolerance(scale, x float32) float64 {
	return float64(scale)*1e-4 + math.Abs(float64(x))*1e-6
}

func TestRoundTripAffine(t *testing.T) {
	for _, bits := range []int{8, 6, 4, 3, 2} {
		for _, scheme := range []packing.Scheme{packing.SchemeAffineTensor, packing.SchemeAffineChannel} {
			for _, comp := range []packing.Compression{packing.CompressionNone, packing.CompressionZstd} {
				for si, shape := range shapes {
					for gi, g := range gens {
						name := fmt.Sprintf("bits=%d/%v/%v/shape=%v/%s", bits, scheme, comp, shape, g.name)
						t.Run(name, func(t *testing.T) {
							data := make([]float32, numel(shape))
							g.fill(rng(t, uint64(100*si+gi)), data)
							opt := packing.Options{Bits: bits, Scheme: scheme, Compression: comp}
							msg := encode(t, data, shape, opt)
							out, h := decode(t, msg)
							checkHeader(t, h, shape, bits, scheme)
							if len(out) != len(data) {
								t.Fatalf("decoded %d values, want %d", len(out), len(data))
							}
							for i, x := range data {
								p := h.Param(paramOf(scheme, shape, i))
								if x == 0 && out[i] != 0 {
									t.Fatalf("value %d: zero decoded as %g (seed %d)", i, out[i], seed)
								}
								if err := math.Abs(float64(out[i]) - float64(x)); err > float64(p.Scale)/2+tolerance(p.Scale, x) {
									t.Fatalf("value %d: %g decoded as %g, error %g exceeds half a step %g (seed %d)", i, x, out[i], err, p.Scale/2, seed)
								}
							}
						})
					}
				}
			}
		}
	}
}

func TestRoundTripClip(t *testing.T) {
	for _, bits := range []int{8, 6, 4, 3, 2} {
		for _, scheme := range []packing.Scheme{packing.SchemeAffineTensor, packing.SchemeAffineChannel} {
			for _, pct := range []float64{99.9, 99, 75} {
				for si, shape := range shapes {
					for gi, g := range gens {
						name := fmt.Sprintf("bits=%d/%v/p=%g/shape=%v/%s", bits, scheme, pct, shape, g.name)
						t.Run(name, func(t *testing.T) {
							data := make([]float32, numel(shape))
							g.fill(rng(t, uint64(100*si+gi)), data)
							opt := packing.Options{Bits: bits, Scheme: scheme, ClipPercentile: pct}
							out, h := decode(t, encode(t, data, shape, opt))
							checkHeader(t, h, shape, bits, scheme)
							for i, x := range data {
								c := paramOf(scheme, shape, i)
								p := h.Param(c)
								lo, hi := h.Range(c)
								if x == 0 && out[i] != 0 {
									t.Fatalf("value %d: zero decoded as %g", i, out[i])
								}
								tol := tolerance(p.Scale, x)
								if x >= lo && x <= hi {
									if err := math.Abs(float64(out[i]) - float64(x)); err > float64(p.Scale)/2+tol {
										t.Fatalf("value %d: %g in [%g, %g] decoded as %g, error %g exceeds half a step %g", i, x, lo, hi, out[i], err, p.Scale/2)
									}
									continue
								}
								want := min(max(x, lo), hi)
								if err := math.Abs(float64(out[i]) - float64(want)); err > tol {
									t.Fatalf("value %d: %g outside [%g, %g] decoded as %g, want %g", i, x, lo, hi, out[i], want)
								}
							}
						})
					}
				}
			}
		}
	}
}

// TestClipPercentile checks the clip range against the exact percentile.
func TestClipPercentile(t *testing.T) {
	for _, n := range []int{500, 1000, 5000, 1 << 16, 1 << 20} {
		for _, pct := range []float64{99.9, 99, 90} {
			t.Run(fmt.Sprintf("n=%d/p=%g", n, pct), func(t *testing.T) {
				r := rng(t, uint64(n))
				data := make([]float32, n)
				for i := range data {
					data[i] = float32(r.NormFloat64())
				}
				sorted := append([]float32(nil), data...)
				slices.Sort(sorted)
				k := int(math.Ceil(pct/100*float64(n))) - 1
				wantHi, wantLo := sorted[k], sorted[n-1-k]
				_, h := decode(t, encode(t, data, []int64{int64(n)}, packing.Options{Bits: 8, ClipPercentile: pct}))
				lo, hi := h.Range(0)
				step := float64(h.Param(0).Scale)
				// The range is [wantLo, wantHi] give or take the radix
				// overshoot (2^-9 relative) and the zero point's half step.
				slack := step/2 + 1e-6
				if n > 1024 {
					slack += math.Max(math.Abs(float64(wantHi)), math.Abs(float64(wantLo))) / 512
				}
				if math.Abs(float64(hi-wantHi)) > slack || math.Abs(float64(lo-wantLo)) > slack {
					t.Fatalf("range [%g, %g], want about [%g, %g] (slack %g)", lo, hi, wantLo, wantHi, slack)
				}
			})
		}
	}
}

// special holds the values raw32 and half must carry: NaN with a payload,
// infinities, signed zero, subnormals, extremes.
var special = []float32{
	float32(math.NaN()),
	math.Float32frombits(0x7fc00123), // quiet NaN with payload
	math.Float32frombits(0xffa00001), // negative signalling NaN
	float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.Copysign(0, -1)), 0,
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
	math.MaxFloat32, -math.MaxFloat32,
	1, -1, 0.1, 65504, 65520, 1e-8, 6e-8,
}

func TestRoundTripRaw32(t *testing.T) {
	for _, comp := range []packing.Compression{packing.CompressionNone, packing.CompressionZstd} {
		for si, shape := range shapes {
			t.Run(fmt.Sprintf("%v/shape=%v", comp, shape), func(t *testing.T) {
				data := make([]float32, numel(shape))
				r := rng(t, uint64(si))
				for i := range data {
					if r.IntN(3) == 0 {
						data[i] = special[r.IntN(len(special))]
					} else {
						data[i] = math.Float32frombits(r.Uint32())
					}
				}
				out, h := decode(t, encode(t, data, shape, packing.Options{Compression: comp}))
				checkHeader(t, h, shape, 32, packing.SchemeRaw32)
				for i := range data {
					if math.Float32bits(out[i]) != math.Float32bits(data[i]) {
						t.Fatalf("value %d: bits %08x decoded as %08x", i, math.Float32bits(data[i]), math.Float32bits(out[i]))
					}
				}
			})
		}
	}
}

func TestRoundTripHalf(t *testing.T) {
	for _, comp := range []packing.Compression{packing.CompressionNone, packing.CompressionZstd} {
		for si, shape := range shapes {
			t.Run(fmt.Sprintf("%v/shape=%v", comp, shape), func(t *testing.T) {
				data := make([]float32, numel(shape))
				r := rng(t, uint64(si))
				for i := range data {
					if r.IntN(4) == 0 {
						data[i] = special[r.IntN(len(special))]
					} else {
						data[i] = float32(r.NormFloat64() * 100)
					}
				}
				out, h := decode(t, encode(t, data, shape, packing.Options{Bits: 16, Compression: comp}))
				checkHeader(t, h, shape, 16, packing.SchemeHalf)
				for i, x := range data {
					y := out[i]
					switch {
					case x != x:
						if y == y {
							t.Fatalf("value %d: NaN decoded as %g", i, y)
						}
					case math.Abs(float64(x)) >= 65520: // rounds to infinity
						if !math.IsInf(float64(y), int(math.Copysign(1, float64(x)))) {
							t.Fatalf("value %d: %g decoded as %g, want Inf", i, x, y)
						}
					default:
						// Round to nearest: half an ulp of float16, which has
						// 10 mantissa bits, or 2^-25 below the normal range.
						ulp := math.Max(math.Abs(float64(x))*0x1p-10, 0x1p-24)
						if err := math.Abs(float64(y) - float64(x)); err > ulp/2 || y != float16.Fromfloat32(x).Float32() {
							t.Fatalf("value %d: %g decoded as %g, error %g beyond half an ulp %g", i, x, y, err, ulp/2)
						}
					}
				}
			})
		}
	}
}

func TestEmptyAndScalar(t *testing.T) {
	for _, shape := range [][]int64{{0}, {0, 4}, {2, 0, 3}, {3, 4, 0}, {}} {
		for _, bits := range []int{32, 16, 8, 6, 4, 3, 2} {
			for _, scheme := range []packing.Scheme{packing.SchemeAuto, packing.SchemeAffineChannel} {
				if scheme == packing.SchemeAffineChannel && bits > 8 {
					continue
				}
				for _, comp := range []packing.Compression{packing.CompressionNone, packing.CompressionZstd} {
					t.Run(fmt.Sprintf("shape=%v/bits=%d/%v/%v", shape, bits, scheme, comp), func(t *testing.T) {
						data := make([]float32, numel(shape))
						for i := range data {
							data[i] = -3.5
						}
						msg := encode(t, data, shape, packing.Options{Bits: bits, Scheme: scheme, Compression: comp})
						out, h := decode(t, msg)
						if fmt.Sprint(h.Shape()) != fmt.Sprint(shape) || len(out) != len(data) {
							t.Fatalf("decoded shape %v, %d values; want %v, %d", h.Shape(), len(out), shape, len(data))
						}
						if len(data) == 1 && math.Abs(float64(out[0])+3.5) > 0.01 {
							t.Fatalf("scalar -3.5 decoded as %g", out[0])
						}
					})
				}
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := []float32{1, 2, 3, 4, 5, 6}
	nan := []float32{1, 2, 3, 4, float32(math.NaN()), 6}
	inf := []float32{1, 2, float32(math.Inf(-1)), 4, 5, 6}
	cases := []struct {
		name    string
		data    []float32
		shape   []int64
		opt     packing.Options
		want    error
		message string
	}{
		{"shape and data disagree", ok, []int64{2, 2}, packing.Options{}, packing.ErrInvalid, "data has 6"},
		{"negative dim", nil, []int64{-1}, packing.Options{}, packing.ErrInvalid, "negative"},
		{"rank too large", ok, []int64{1, 1, 1, 1, 1, 1, 1, 1, 6}, packing.Options{}, packing.ErrUnsupported, "rank 9"},
		{"dim too large", nil, []int64{1 << 33, 0}, packing.Options{}, packing.ErrTooLarge, "dim 0"},
		{"bits 5", ok, []int64{6}, packing.Options{Bits: 5}, packing.ErrUnsupported, "bits 5"},
		{"bits 1", ok, []int64{6}, packing.Options{Bits: 1}, packing.ErrUnsupported, "bits 1"},
		{"bits 64", ok, []int64{6}, packing.Options{Bits: 64}, packing.ErrUnsupported, "bits 64"},
		{"half at 8 bits", ok, []int64{6}, packing.Options{Bits: 8, Scheme: packing.SchemeHalf}, packing.ErrUnsupported, "half"},
		{"affine at 32 bits", ok, []int64{6}, packing.Options{Bits: 32, Scheme: packing.SchemeAffineTensor}, packing.ErrUnsupported, "affine-tensor"},
		{"unknown scheme", ok, []int64{6}, packing.Options{Bits: 8, Scheme: 9}, packing.ErrUnsupported, "scheme(9)"},
		{"unknown compression", ok, []int64{6}, packing.Options{Compression: 7}, packing.ErrUnsupported, "compression(7)"},
		{"percentile 50", ok, []int64{6}, packing.Options{Bits: 8, ClipPercentile: 50}, packing.ErrInvalid, "percentile"},
		{"percentile 101", ok, []int64{6}, packing.Options{Bits: 8, ClipPercentile: 101}, packing.ErrInvalid, "percentile"},
		{"percentile NaN", ok, []int64{6}, packing.Options{Bits: 8, ClipPercentile: math.NaN()}, packing.ErrInvalid, "percentile"},
		{"NaN at 8 bits", nan, []int64{6}, packing.Options{Bits: 8}, packing.ErrInvalid, "value 4 is NaN"},
		{"NaN at 2 bits per channel", nan, []int64{1, 2, 3}, packing.Options{Bits: 2, Scheme: packing.SchemeAffineChannel}, packing.ErrInvalid, "value 4 is NaN"},
		{"NaN with clip", nan, []int64{6}, packing.Options{Bits: 4, ClipPercentile: 99}, packing.ErrInvalid, "value 4 is NaN"},
		{"Inf at 4 bits", inf, []int64{6}, packing.Options{Bits: 4}, packing.ErrInvalid, "value 2 is -Inf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("keep")
			out, err := packing.Encode(prefix, c.data, c.shape, c.opt)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "packing: ") || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("error %q does not say %q", err, c.message)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q on error", out)
			}
		})
	}
	// Large clip-range outliers and NaN at 32 and 16 bits are fine.
	for _, bits := range []int{32, 16} {
		if _, err := packing.Encode(nil, nan, []int64{6}, packing.Options{Bits: bits}); err != nil {
			t.Fatalf("NaN at %d bits: %v", bits, err)
		}
	}
}

func TestNaNAcrossLargeTensor(t *testing.T) {
	// A NaN deep inside a tensor large enough for the radix path.
	data := make([]float32, 5000)
	for i := range data {
		data[i] = float32(i)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), -float32(math.NaN())} {
		data[4321] = bad
		for _, opt := range []packing.Options{{Bits: 8}, {Bits: 4, ClipPercentile: 99.9}, {Bits: 3, Scheme: packing.SchemeAffineChannel, ClipPercentile: 90}} {
			_, err := packing.Encode(nil, data, []int64{5000}, opt)
			if !errors.Is(err, packing.ErrInvalid) || !strings.Contains(err.Error(), "value 4321") {
				t.Fatalf("%g with %+v: error %v, want ErrInvalid naming value 4321", bad, opt, err)
			}
		}
	}
}

func TestEncodeAppendsAndDecodeReuses(t *testing.T) {
	data := make([]float32, 4096)
	gens[0].fill(rng(t, 1), data)
	shape := []int64{1, 4, 32, 32}
	for _, opt := range []packing.Options{{}, {Bits: 16}, {Bits: 4}, {Bits: 3, Scheme: packing.SchemeAffineChannel, Compression: packing.CompressionZstd}} {
		prefix := []byte("prefix")
		msg, err := packing.Encode(prefix, data, shape, opt)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg[:6]) != "prefix" {
			t.Fatalf("prefix overwritten: %q", msg[:6])
		}
		size, err := packing.EncodedSize(shape, opt)
		if err != nil {
			t.Fatal(err)
		}
		n := len(msg) - 6
		if opt.Compression == packing.CompressionNone && n != size || n > size {
			t.Fatalf("%+v: message of %d bytes, EncodedSize %d", opt, n, size)
		}
		dst := make([]float32, 10, 5000)
		out, h, err := packing.Decode(dst, msg[6:], packing.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if &out[0] != &dst[0] || len(out) != 4096 {
			t.Fatalf("Decode did not reuse dst (len %d)", len(out))
		}
		if h.Size() != n {
			t.Fatalf("Header.Size %d, message %d", h.Size(), n)
		}
		ph, err := packing.ParseHeader(msg[6 : 6+packing.HeaderSize(len(shape), h.NumParams())-4])
		if err != nil {
			t.Fatalf("ParseHeader of the header alone: %v", err)
		}
		if fmt.Sprint(ph.Shape(), ph.Bits, ph.Scheme, ph.Compression, ph.PayloadLen) != fmt.Sprint(h.Shape(), h.Bits, h.Scheme, h.Compression, h.PayloadLen) {
			t.Fatalf("ParseHeader %+v, Decode %+v", ph, h)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	data := make([]float32, 1<<14)
	gens[0].fill(rng(t, 2), data)
	shape := []int64{1, 16, 32, 32}
	for _, opt := range []packing.Options{
		{}, {Bits: 16}, {Bits: 8}, {Bits: 4}, {Bits: 3}, {Bits: 2},
		{Bits: 6, Scheme: packing.SchemeAffineChannel},
		{Bits: 4, ClipPercentile: 99.9},
		{Bits: 8, Scheme: packing.SchemeAffineChannel, ClipPercentile: 99},
		{Bits: 4, Compression: packing.CompressionZstd},
	} {
		msg := encode(t, data, shape, opt)
		buf := make([]byte, 0, 2*len(msg)+1024)
		out := make([]float32, len(data))
		var err error
		enc := testing.AllocsPerRun(20, func() { _, err = packing.Encode(buf[:0], data, shape, opt) })
		dec := testing.AllocsPerRun(20, func() { out, _, err = packing.Decode(out, msg, packing.DecodeOptions{}) })
		if err != nil {
			t.Fatal(err)
		}
		if enc != 0 || dec != 0 {
			t.Errorf("%+v: %v allocations to encode, %v to decode; want 0", opt, enc, dec)
		}
	}
}

// TestReLUCompression is the wire-size target: 4-bit ReLU-like activations
// (half zeros, the rest exponential) at least 10x smaller than float32.
func TestReLUCompression(t *testing.T) {
	const n = 1 << 20
	data := make([]float32, n)
	gens[0].fill(rng(t, 3), data)
	msg := encode(t, data, []int64{1, 256, 64, 64}, packing.Options{Bits: 4, Compression: packing.CompressionZstd})
	if ratio := float64(4*n) / float64(len(msg)); ratio < 10 {
		t.Fatalf("4-bit ReLU-like tensor is %.2fx smaller than float32, want >= 10x", ratio)
	} else {
		t.Logf("4-bit + zstd: %d bytes, %.2fx smaller than float32", len(msg), ratio)
	}
	out, _ := decode(t, msg)
	for i, x := range data {
		if x == 0 && out[i] != 0 {
			t.Fatalf("value %d: ReLU zero decoded as %g", i, out[i])
		}
	}
}

func TestConcurrent(t *testing.T) {
	data := make([]float32, 1<<12)
	gens[1].fill(rng(t, 4), data)
	shape := []int64{2, 8, 16, 16}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opt := packing.Options{Bits: []int{8, 4, 2, 16}[g%4], Compression: packing.Compression(g % 2)}
			var buf []byte
			var out []float32
			for range 20 {
				var err error
				if buf, err = packing.Encode(buf[:0], data, shape, opt); err == nil {
					out, _, err = packing.Decode(out, buf, packing.DecodeOptions{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// validMessages are encodings of every width, scheme and compression, the
// seeds of the rejection tests and the fuzzers.
func validMessages(t testing.TB) map[string][]byte {
	msgs := map[string][]byte{}
	data := make([]float32, 2*3*5*7)
	gens[0].fill(rng(t, 5), data)
	shape := []int64{2, 3, 5, 7}
	for _, bits := range []int{32, 16, 8, 6, 4, 3, 2} {
		for _, comp := range []packing.Compression{packing.CompressionNone, packing.CompressionZstd} {
			schemes := []packing.Scheme{packing.SchemeAuto}
			if bits <= 8 {
				schemes = append(schemes, packing.SchemeAffineChannel)
			}
			for _, s := range schemes {
				opt := packing.Options{Bits: bits, Scheme: s, Compression: comp}
				msgs[fmt.Sprintf("bits=%d/%v/%v", bits, s, comp)] = encode(t, data, shape, opt)
			}
		}
	}
	msgs["empty"] = encode(t, nil, []int64{0, 3}, packing.Options{Bits: 4, Scheme: packing.SchemeAffineChannel})
	msgs["scalar"] = encode(t, []float32{1.5}, nil, packing.Options{Bits: 2})
	return msgs
}

func TestDecodeTruncated(t *testing.T) {
	for name, msg := range validMessages(t) {
		t.Run(name, func(t *testing.T) {
			for n := range len(msg) {
				_, _, err := packing.Decode(nil, msg[:n], packing.DecodeOptions{})
				if !errors.Is(err, packing.ErrTruncated) {
					t.Fatalf("cut at %d of %d: error %v, want ErrTruncated", n, len(msg), err)
				}
			}
			if _, _, err := packing.Decode(nil, append(bytes.Clone(msg), 0), packing.DecodeOptions{}); !errors.Is(err, packing.ErrCorrupt) {
				t.Fatalf("one trailing byte: error %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestDecodeFlippedBytes(t *testing.T) {
	for name, msg := range validMessages(t) {
		t.Run(name, func(t *testing.T) {
			h, err := packing.ParseHeader(msg)
			if err != nil {
				t.Fatal(err)
			}
			// Past the fixed 16 bytes only per-channel dim 1 moves anything.
			dim1 := -1
			if h.Scheme == packing.SchemeAffineChannel {
				dim1 = 16 + 4
			}
			for i := range msg {
				for _, flip := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(msg)
					bad[i] ^= flip
					_, _, err := packing.Decode(nil, bad, packing.DecodeOptions{})
					if err == nil {
						t.Fatalf("byte %d ^ %#x: no error", i, flip)
					}
					if i >= 16 && (i < dim1 || i >= dim1+4) && !errors.Is(err, packing.ErrChecksum) {
						t.Fatalf("byte %d ^ %#x: error %v, want ErrChecksum", i, flip, err)
					}
				}
			}
		})
	}
}

// forge rewrites a message's header fields and fixes its checksum, to test
// what the checksum cannot catch: a sender that writes nonsense.
func forge(msg []byte, edit func(b []byte) []byte) []byte {
	b := edit(bytes.Clone(msg[:len(msg)-4]))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestDecodeMalformed(t *testing.T) {
	msgs := validMessages(t)
	u8 := msgs["bits=8/auto/none"]            // header 16 + 4*4 + 5 = 37 bytes, payload 210
	u8c := msgs["bits=8/affine-channel/none"] // 3 parameter sets
	z4 := msgs["bits=4/auto/zstd"]
	r32 := msgs["bits=32/auto/none"]
	setU32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	setByte := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	cases := []struct {
		name string
		msg  []byte
		opt  packing.DecodeOptions
		want error
		says string
	}{
		{"empty", nil, packing.DecodeOptions{}, packing.ErrTruncated, "header"},
		{"bad magic", forge(u8, setByte(0, 'X')), packing.DecodeOptions{}, packing.ErrCorrupt, "magic"},
		{"version 2", forge(u8, setByte(4, 2)), packing.DecodeOptions{}, packing.ErrUnsupported, "version 2"},
		{"version 0", forge(u8, setByte(4, 0)), packing.DecodeOptions{}, packing.ErrUnsupported, "version 0"},
		{"bits 5", forge(u8, setByte(5, 5)), packing.DecodeOptions{}, packing.ErrUnsupported, "bits 5"},
		{"bits 16 with affine", forge(u8, setByte(5, 16)), packing.DecodeOptions{}, packing.ErrUnsupported, "cannot carry 16 bits"},
		{"scheme 7", forge(u8, setByte(6, 7)), packing.DecodeOptions{}, packing.ErrUnsupported, "scheme(7)"},
		{"scheme 0", forge(r32, setByte(6, 0)), packing.DecodeOptions{}, packing.ErrUnsupported, "scheme"},
		{"compression 9", forge(u8, setByte(7, 9)), packing.DecodeOptions{}, packing.ErrUnsupported, "compression(9)"},
		{"rank 9", forge(u8, setByte(8, 9)), packing.DecodeOptions{}, packing.ErrCorrupt, "rank 9"},
		{"reserved byte", forge(u8, setByte(10, 1)), packing.DecodeOptions{}, packing.ErrCorrupt, "reserved"},
		{"payload length short", forge(u8, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 209)
			return b[:len(b)-1]
		}), packing.DecodeOptions{}, packing.ErrCorrupt, "payload length 209, want 210"},
		{"payload length long", forge(u8, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 211)
			return append(b, 0)
		}), packing.DecodeOptions{}, packing.ErrCorrupt, "payload length 211, want 210"},
		{"payload length beyond message", forge(u8, setU32(12, 1000)), packing.DecodeOptions{}, packing.ErrTruncated, "message needs"},
		{"shape disagrees with payload", forge(u8, setU32(16, 3)), packing.DecodeOptions{}, packing.ErrCorrupt, "payload length 210, want 315"},
		{"scale NaN", forge(u8, setU32(32, 0x7fc00000)), packing.DecodeOptions{}, packing.ErrCorrupt, "scale NaN"},
		{"scale zero", forge(u8, setU32(32, 0)), packing.DecodeOptions{}, packing.ErrCorrupt, "scale 0"},
		{"scale negative", forge(u8, setU32(32, math.Float32bits(-1))), packing.DecodeOptions{}, packing.ErrCorrupt, "scale -1"},
		{"scale Inf", forge(u8, setU32(32, 0x7f800000)), packing.DecodeOptions{}, packing.ErrCorrupt, "scale +Inf"},
		{"range overflows", forge(u8, setU32(32, math.Float32bits(math.MaxFloat32/2))), packing.DecodeOptions{}, packing.ErrCorrupt, "overflows"},
		{"zero point beyond 2 bits", forge(msgs["bits=2/auto/none"], setByte(36, 4)), packing.DecodeOptions{}, packing.ErrCorrupt, "zero point 4 exceeds 3"},
		{"channel parameters missing", forge(u8c, setU32(20, 50)), packing.DecodeOptions{}, packing.ErrTruncated, "quantisation parameters"},
		{"compressed payload not smaller", forge(z4, func(b []byte) []byte {
			packed := 105 // 210 values at 4 bits
			pad := packed - int(binary.LittleEndian.Uint32(b[12:]))
			binary.LittleEndian.PutUint32(b[12:], uint32(packed))
			return append(b, make([]byte, pad)...)
		}), packing.DecodeOptions{}, packing.ErrCorrupt, "compressed payload length 105, want 1..104"},
		{"compression flag on a raw payload", forge(u8, setByte(7, byte(packing.CompressionZstd))), packing.DecodeOptions{}, packing.ErrCorrupt, "compressed payload length 210"},
		{"zstd frame damaged", forge(z4, func(b []byte) []byte { b[len(b)-3] ^= 0x55; return b }), packing.DecodeOptions{}, packing.ErrCorrupt, "zstd"},
		{"zstd magic damaged", forge(z4, func(b []byte) []byte { b[37] ^= 0xff; return b }), packing.DecodeOptions{}, packing.ErrCorrupt, "zstd frame header"},
		{"element limit", u8, packing.DecodeOptions{MaxElements: 209}, packing.ErrTooLarge, "limit 209"},
		{"element limit just fits", u8, packing.DecodeOptions{MaxElements: 210}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := packing.Decode(nil, c.msg, c.opt)
			if c.want == nil {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "packing: ") || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q does not say %q", err, c.says)
			}
			if len(out) != 0 {
				t.Fatalf("%d values returned with an error", len(out))
			}
		})
	}
}

// TestDecodeHugeShape: a header claiming 2^40 elements with a tiny
// compressed payload is refused before anything is allocated.
func TestDecodeHugeShape(t *testing.T) {
	msg := encode(t, make([]float32, 4096), []int64{1, 1, 64, 64}, packing.Options{Bits: 2, Compression: packing.CompressionZstd})
	for _, dims := range [][4]uint32{{1 << 20, 1 << 20, 1, 1}, {1, 1, 9000, 9000}, {1, 1, 1 << 31, 7}} {
		huge := forge(msg, func(b []byte) []byte {
			for i, d := range dims {
				binary.LittleEndian.PutUint32(b[16+4*i:], d)
			}
			return b
		})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := packing.Decode(nil, huge, packing.DecodeOptions{})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, packing.ErrTooLarge) {
			t.Fatalf("dims %v: error %v, want ErrTooLarge", dims, err)
		}
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
			t.Fatalf("dims %v: allocated %d bytes before refusing", dims, grown)
		}
	}
	// A header whose raw payload could not exist at all.
	raw := forge(msgs(t, "bits=8/auto/none"), func(b []byte) []byte {
		for i, d := range []uint32{1 << 16, 1 << 16, 1, 1} {
			binary.LittleEndian.PutUint32(b[16+4*i:], d)
		}
		return b
	})
	if _, _, err := packing.Decode(nil, raw, packing.DecodeOptions{MaxElements: 1 << 40}); !errors.Is(err, packing.ErrTooLarge) {
		t.Fatalf("4 GiB raw payload: error %v, want ErrTooLarge", err)
	}
}

func msgs(t testing.TB, name string) []byte { return validMessages(t)[name] }

func TestSizes(t *testing.T) {
	cases := []struct {
		shape []int64
		opt   packing.Options
		want  int
	}{
		{[]int64{1, 64, 56, 56}, packing.Options{Bits: 4}, 16 + 16 + 5 + 4 + 1*64*56*56/2},
		{[]int64{1, 64, 56, 56}, packing.Options{Bits: 4, Scheme: packing.SchemeAffineChannel}, 16 + 16 + 5*64 + 4 + 1*64*56*56/2},
		{[]int64{1, 3, 224, 224}, packing.Options{}, 16 + 16 + 4 + 4*3*224*224},
		{[]int64{1, 3, 224, 224}, packing.Options{Bits: 16}, 16 + 16 + 4 + 2*3*224*224},
		{[]int64{1001}, packing.Options{Bits: 3}, 16 + 4 + 5 + 4 + (1001*3+7)/8},
		{[]int64{1001}, packing.Options{Bits: 6, Compression: packing.CompressionZstd}, 16 + 4 + 5 + 4 + (1001*6+7)/8},
	}
	for _, c := range cases {
		got, err := packing.EncodedSize(c.shape, c.opt)
		if err != nil || got != c.want {
			t.Errorf("EncodedSize(%v, %+v) = %d, %v; want %d", c.shape, c.opt, got, err, c.want)
		}
		data := make([]float32, numel(c.shape))
		gens[1].fill(rng(t, 6), data)
		if n := len(encode(t, data, c.shape, c.opt)); n > got || c.opt.Compression == packing.CompressionNone && n != got {
			t.Errorf("Encode(%v, %+v) is %d bytes, EncodedSize %d", c.shape, c.opt, n, got)
		}
	}
	if got := packing.PackedSize(1001, 3); got != 376 {
		t.Errorf("PackedSize(1001, 3) = %d, want 376", got)
	}
	if _, err := packing.EncodedSize([]int64{-1}, packing.Options{}); !errors.Is(err, packing.ErrInvalid) {
		t.Errorf("EncodedSize of a negative dim: %v", err)
	}
}
