package packing

import (
	"math/rand/v2"
	"testing"
)

func kernelData(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n)
	for i := range x {
		if r.IntN(2) == 1 {
			x[i] = float32(r.ExpFloat64())
		}
	}
	return x
}

// The kernel benchmarks time one pass over 1M ReLU-like values.

func BenchmarkKernelMinMax(b *testing.B) {
	x := kernelData(1 << 20)
	g := group{data: x, inner: len(x), stride: len(x), count: 1}
	b.SetBytes(4 << 20)
	for b.Loop() {
		minMax(g)
	}
}

func BenchmarkKernelQuant8(b *testing.B) {
	x := kernelData(1 << 20)
	out := make([]byte, len(x))
	b.SetBytes(4 << 20)
	for b.Loop() {
		quant8(out, x, 255/14.0, 0.5)
	}
}

func BenchmarkKernelQuant4(b *testing.B) {
	x := kernelData(1 << 20)
	out := make([]byte, len(x)/2)
	b.SetBytes(4 << 20)
	for b.Loop() {
		quant4(out, x, 15/14.0, 0.5)
	}
}

// TestPackMatchesPut checks the SWAR packer and the fused kernels against
// the one-code-at-a-time writer, at every width and starting alignment.
func TestPackMatchesPut(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, bits := range []uint{2, 3, 4, 6, 8} {
		for head := range 9 {
			for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
				codes := make([]byte, n)
				vals := make([]float32, n)
				for i := range codes {
					codes[i] = byte(r.IntN(1 << bits))
					vals[i] = float32(codes[i]) // scale 1, zero point 0
				}
				size := (head*int(bits) + n*int(bits) + 7) / 8
				want := bitWriter{out: make([]byte, size), bits: bits}
				for range head {
					want.put(1)
				}
				for _, c := range codes {
					want.put(uint32(c))
				}
				want.flush()

				got := bitWriter{out: make([]byte, size), bits: bits}
				for range head {
					got.put(1)
				}
				if bits == 8 {
					copy(got.out[got.pos:], codes)
					got.pos += n
				} else {
					got.pack(codes)
				}
				got.flush()
				if string(got.out) != string(want.out) {
					t.Fatalf("pack bits=%d head=%d n=%d: %x, want %x", bits, head, n, got.out, want.out)
				}

				fast := bitWriter{out: make([]byte, size), bits: bits}
				for range head {
					fast.put(1)
				}
				q := quantizer{inv: 1, off: 0.5, qmax: int32(1)<<bits - 1}
				fast.quantizeFast(vals, &q)
				fast.flush()
				if string(fast.out) != string(want.out) {
					t.Fatalf("quantizeFast bits=%d head=%d n=%d: %x, want %x", bits, head, n, fast.out, want.out)
				}

				rd := newBitReader(want.out, int(bits))
				skip := make([]float32, head)
				rd.dequantize(skip, dequantizer{scale: 1})
				back := make([]float32, n)
				rd.dequantize(back, dequantizer{scale: 1})
				for i := range back {
					if back[i] != vals[i] {
						t.Fatalf("dequantize bits=%d head=%d n=%d: value %d is %g, want %g", bits, head, n, i, back[i], vals[i])
					}
				}
			}
		}
	}
}

// TestRaw32Portable runs the byte-order-independent raw32 loops that
// big-endian machines use, against the one-copy path.
func TestRaw32Portable(t *testing.T) {
	data := kernelData(1001)
	data[3] = -data[5]
	fast := make([]byte, 4*len(data))
	putRaw32(fast, data)
	saved := nativeLittleEndian
	nativeLittleEndian = false
	defer func() { nativeLittleEndian = saved }()
	slow := make([]byte, 4*len(data))
	putRaw32(slow, data)
	if string(fast) != string(slow) {
		t.Fatal("portable raw32 encoding differs")
	}
	back := make([]float32, len(data))
	getRaw32(back, slow)
	for i := range data {
		if back[i] != data[i] {
			t.Fatalf("value %d: %g decoded as %g", i, data[i], back[i])
		}
	}
}
