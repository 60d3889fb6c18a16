package packing_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dynoml/dyno/executor/packing"
)

const benchN = 1 << 20

// benchShape is 1M elements as one NCHW activation.
var benchShape = []int64{1, 256, 64, 64}

// reluLike is the benchmark tensor: half exact zeros, the rest exponential
// with mean 1, as after a ReLU.
func reluLike(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	x := make([]float32, n)
	for i := range x {
		if r.IntN(2) == 1 {
			x[i] = float32(r.ExpFloat64())
		}
	}
	return x
}

var benchWidths = []int{32, 16, 8, 6, 4, 3, 2}

type benchCase struct {
	name string
	opt  packing.Options
}

func benchCases() []benchCase {
	var cs []benchCase
	for _, b := range benchWidths {
		cs = append(cs, benchCase{fmt.Sprintf("bits=%d", b), packing.Options{Bits: b}})
	}
	for _, b := range []int{8, 4} {
		cs = append(cs,
			benchCase{fmt.Sprintf("bits=%d/channel", b), packing.Options{Bits: b, Scheme: packing.SchemeAffineChannel}},
			benchCase{fmt.Sprintf("bits=%d/clip=99.9", b), packing.Options{Bits: b, ClipPercentile: 99.9}},
			benchCase{fmt.Sprintf("bits=%d/channel/clip=99.9", b), packing.Options{Bits: b, Scheme: packing.SchemeAffineChannel, ClipPercentile: 99.9}},
		)
	}
	for _, b := range []int{8, 4, 2} {
		cs = append(cs, benchCase{fmt.Sprintf("bits=%d/zstd", b), packing.Options{Bits: b, Compression: packing.CompressionZstd}})
	}
	return cs
}

func BenchmarkEncode(b *testing.B) {
	data := reluLike(benchN, 1)
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			buf, err := packing.Encode(nil, data, benchShape, c.opt)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(4 * benchN)
			b.ResetTimer()
			for b.Loop() {
				buf, err = packing.Encode(buf[:0], data, benchShape, c.opt)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(4*benchN)/float64(len(buf)), "x-smaller")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	data := reluLike(benchN, 1)
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			msg, err := packing.Encode(nil, data, benchShape, c.opt)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]float32, benchN)
			b.ReportAllocs()
			b.SetBytes(4 * benchN)
			b.ResetTimer()
			for b.Loop() {
				out, _, err = packing.Decode(out, msg, packing.DecodeOptions{})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopy is the baseline: copying the same 4 MB of float32.
func BenchmarkCopy(b *testing.B) {
	data := reluLike(benchN, 1)
	out := make([]float32, benchN)
	b.ReportAllocs()
	b.SetBytes(4 * benchN)
	for b.Loop() {
		copy(out, data)
	}
	if math.IsNaN(float64(out[0])) {
		b.Fatal("unreachable")
	}
}
