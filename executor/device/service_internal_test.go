package device

import (
	"encoding/binary"
	"math"
	"testing"
	"unsafe"
)

// TestFloats checks raw_data's decoding on both of its paths: the view of
// an aligned buffer and the copy of an unaligned one give the same values,
// in wire order.
func TestFloats(t *testing.T) {
	want := []float32{0, 1, -2.5, float32(math.Inf(1)), 3e-39, float32(math.NaN())}
	buf := make([]byte, 4*len(want)+1)
	for _, off := range []int{0, 1} {
		raw := buf[off : off+4*len(want)]
		for i, v := range want {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		got := floats(raw)
		if len(got) != len(want) {
			t.Fatalf("offset %d: %d values, want %d", off, len(got), len(want))
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("offset %d: value %d is %v, want %v", off, i, got[i], want[i])
			}
		}
		view := unsafe.Pointer(&got[0]) == unsafe.Pointer(&raw[0])
		aligned := uintptr(unsafe.Pointer(&raw[0]))%4 == 0
		if view != (littleEndian && aligned) {
			t.Errorf("offset %d: view of raw_data is %v; little-endian %v, aligned %v", off, view, littleEndian, aligned)
		}
	}
	if got := floats(nil); got != nil {
		t.Errorf("floats(nil) = %v, want nil", got)
	}
}

// TestNonFinite checks the finiteness test on every kind
// of value, at every place in and across its blocks.
func TestNonFinite(t *testing.T) {
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7f800001), math.Float32frombits(0xffffffff)}
	fine := []float32{0, -0.0, 1, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, math.Float32frombits(0x7f7fffff), math.Float32frombits(0x80000001)}
	x := make([]float32, 1000)
	for i := range x {
		x[i] = fine[i%len(fine)]
	}
	if i := nonFinite(x); i != -1 {
		t.Fatalf("finite values: nonFinite = %d (%v), want -1", i, x[i])
	}
	if i := nonFinite(nil); i != -1 {
		t.Fatalf("no values: nonFinite = %d, want -1", i)
	}
	for _, at := range []int{0, 1, 255, 256, 257, 511, 999} {
		for _, v := range bad {
			y := append([]float32(nil), x...)
			y[at] = v
			if at+300 < len(y) {
				y[at+300] = v // a later one does not hide the first
			}
			if i := nonFinite(y); i != at {
				t.Errorf("%v at %d: nonFinite = %d", v, at, i)
			}
		}
	}
}
