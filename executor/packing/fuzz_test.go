package packing_test

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/x448/float16"

	"github.com/dynoml/dyno/executor/packing"
)

var sentinels = []error{packing.ErrTruncated, packing.ErrCorrupt, packing.ErrChecksum, packing.ErrUnsupported, packing.ErrTooLarge, packing.ErrInvalid}

func checkErr(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			if !strings.HasPrefix(err.Error(), "packing: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

// FuzzDecode feeds Decode arbitrary bytes: it must never panic, every error
// must wrap a sentinel, and whatever it accepts must be self-consistent.
func FuzzDecode(f *testing.F) {
	for _, msg := range validMessages(f) {
		f.Add(msg)
		// Also seed with checksum-valid headers carrying odd fields.
		f.Add(forge(msg, func(b []byte) []byte { b[5] ^= 0x0c; return b }))
		f.Add(forge(msg, func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 1<<20); return b }))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, h, err := packing.Decode(nil, msg, packing.DecodeOptions{MaxElements: 1 << 20})
		ph, perr := packing.ParseHeader(msg)
		if err != nil {
			checkErr(t, err)
			if perr != nil {
				checkErr(t, perr)
			}
			return
		}
		if perr != nil {
			t.Fatalf("Decode accepted what ParseHeader rejects: %v", perr)
		}
		if int64(len(out)) != h.Elements() || h.Size() != len(msg) || ph.Size() != h.Size() {
			t.Fatalf("decoded %d values for %v, header size %d of %d bytes", len(out), h.Shape(), h.Size(), len(msg))
		}
		if h.Scheme == packing.SchemeAffineTensor || h.Scheme == packing.SchemeAffineChannel {
			for i, v := range out {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("value %d decoded as %g from an affine payload", i, v)
				}
			}
		}
	})
}

// FuzzRoundTrip encodes arbitrary float data at every width and checks the
// decoded values against the error bound.
func FuzzRoundTrip(f *testing.F) {
	seed := func(xs ...float32) []byte {
		b := make([]byte, 4*len(xs))
		for i, x := range xs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	f.Add(seed(0, 1, 2, 3, 0, 0, 5.5, -1), uint8(2), uint8(1), uint8(0))
	f.Add(seed(0, 0, 0, 0), uint8(4), uint8(3), uint8(9))
	f.Add(seed(-0.25, 1.25, 0.5, 0), uint8(6), uint8(0), uint8(0))
	f.Add(seed(1e30, 1, 2, 3, 4, 5, 6, 7, 8), uint8(3), uint8(2), uint8(1))
	f.Add(seed(float32(math.NaN()), 1), uint8(0), uint8(0), uint8(0))
	f.Add(seed(float32(math.Inf(1)), 1), uint8(1), uint8(0), uint8(0))
	widths := []int{32, 16, 8, 6, 4, 3, 2}
	f.Fuzz(func(t *testing.T, raw []byte, width, rows, mode uint8) {
		n := len(raw) / 4
		data := make([]float32, n)
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		// Shape: rows x cols, channels along dim 1.
		r := 1 + int(rows)%4
		data = data[:n/r*r]
		shape := []int64{int64(r), int64(n / r)}
		opt := packing.Options{
			Bits:        widths[int(width)%len(widths)],
			Compression: packing.Compression(mode & 1),
		}
		if opt.Bits <= 8 {
			if mode&2 != 0 {
				opt.Scheme = packing.SchemeAffineChannel
			}
			if mode&4 != 0 {
				opt.ClipPercentile = []float64{99.9, 99, 90, 51}[mode>>3&3]
			}
		}
		msg, err := packing.Encode(nil, data, shape, opt)
		finite := true
		wide := false
		for _, x := range data {
			finite = finite && !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
			wide = wide || math.Abs(float64(x)) > 1e38
		}
		if err != nil {
			if opt.Bits <= 8 && !finite && errors.Is(err, packing.ErrInvalid) {
				return
			}
			t.Fatalf("Encode(%v, %+v): %v", shape, opt, err)
		}
		if opt.Bits <= 8 && !finite {
			t.Fatalf("Encode accepted NaN or Inf at %d bits", opt.Bits)
		}
		out, h, err := packing.Decode(nil, msg, packing.DecodeOptions{})
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if len(out) != len(data) {
			t.Fatalf("decoded %d values, want %d", len(out), len(data))
		}
		for i, x := range data {
			y := out[i]
			switch opt.Bits {
			case 32:
				if math.Float32bits(x) != math.Float32bits(y) {
					t.Fatalf("value %d: %08x decoded as %08x", i, math.Float32bits(x), math.Float32bits(y))
				}
				continue
			case 16:
				want := float16.Fromfloat32(x).Float32()
				if math.Float32bits(want) != math.Float32bits(y) && !(x != x && y != y) {
					t.Fatalf("value %d: %g decoded as %g, want %g", i, x, y, want)
				}
				continue
			}
			c := 0
			if opt.Scheme == packing.SchemeAffineChannel {
				c = i % int(shape[1])
			}
			p := h.Param(c)
			lo, hi := h.Range(c)
			if x == 0 && y != 0 {
				t.Fatalf("value %d: zero decoded as %g", i, y)
			}
			if math.IsInf(float64(y), 0) || y != y {
				t.Fatalf("value %d: %g decoded as %g", i, x, y)
			}
			if wide {
				continue // ranges near MaxFloat32 lose accuracy at the ends (doc.go)
			}
			want := min(max(x, lo), hi)
			bound := float64(p.Scale)*0.5001 + math.Abs(float64(x))*1e-6
			if opt.ClipPercentile != 0 && x != want {
				bound = float64(p.Scale)*1e-4 + math.Abs(float64(x))*1e-6
			}
			if err := math.Abs(float64(y) - float64(want)); err > bound {
				t.Fatalf("value %d: %g decoded as %g (range [%g, %g], scale %g)", i, x, y, lo, hi, p.Scale)
			}
		}
	})
}
