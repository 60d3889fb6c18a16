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
