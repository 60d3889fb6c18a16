package packing

import "encoding/binary"

// Bit packing of affine codes, least significant bit first. A bitWriter
// quantises runs of values into the payload; a bitReader reads them back.
// Both carry their partial byte across runs, so per-channel runs need not
// start on a byte boundary. Each run goes through three stages: single codes
// until the stream is byte-aligned, then a specialised loop over whole groups
// (4 values to 4 bytes at 8 bits, 8 to 4 at 4, 8 to 2 at 2, 8 to 3 at 3, 4
// to 3 at 6), then single codes for the tail.

// groupOf returns how many values fill how many whole bytes in one
// iteration of a width's kernel.
func groupOf(bits uint) (values, bytes int) {
	switch bits {
	case 8:
		return 4, 4
	case 6:
		return 4, 3
	case 4:
		return 8, 4
	case 3:
		return 8, 3
	}
	return 8, 2 // 2 bits
}

type bitWriter struct {
	out  []byte
	pos  int
	acc  uint32
	n    uint // bits pending in acc, < 8 between calls
	bits uint
}

func (w *bitWriter) put(c uint32) {
	w.acc |= c << w.n
	w.n += w.bits
	if w.n >= 8 {
		w.out[w.pos] = byte(w.acc)
		w.pos++
		w.acc >>= 8
		w.n -= 8
	}
}

// flush writes the last partial byte, padded with zero bits.
func (w *bitWriter) flush() {
	if w.n > 0 {
		w.out[w.pos] = byte(w.acc)
		w.pos++
		w.acc, w.n = 0, 0
	}
}

// chunk is how many values the clamping modes stage on the stack.
const chunk = 512

// quantize appends the codes of src. modeFast runs the fused
// quantise-and-pack kernels; the clamping modes quantise a chunk into byte
// codes, then pack those.
func (w *bitWriter) quantize(src []float32, q *quantizer) {
	if q.mode == modeFast {
		w.quantizeFast(src, q)
		return
	}
	var fbuf [chunk]float32
	var cbuf [chunk]byte
	for len(src) > 0 {
		in := src[:min(len(src), chunk)]
		src = src[len(in):]
		if q.mode == modeClampFloat {
			f := fbuf[:len(in)]
			for i, x := range in {
				if x < q.lo {
					x = q.lo
				}
				if x > q.hi {
					x = q.hi
				}
				f[i] = x
			}
			in = f
		}
		codes := cbuf[:len(in)]
		if w.bits == 8 {
			codes = w.out[w.pos : w.pos+len(in)]
			w.pos += len(in)
		}
		quantClamp(codes, in, q.inv, q.off, q.qmax)
		if w.bits != 8 {
			w.pack(codes)
		}
	}
}

// quantClamp writes one byte code per value, clamped to [0, qmax].
func quantClamp(out []byte, in []float32, inv, off float32, qmax int32) {
	out = out[:len(in)]
	i := 0
	for ; i+4 <= len(in); i += 4 {
		s := in[i : i+4 : i+4]
		o := out[i : i+4 : i+4]
		o[0] = byte(min(max(int32(s[0]*inv+off), 0), qmax))
		o[1] = byte(min(max(int32(s[1]*inv+off), 0), qmax))
		o[2] = byte(min(max(int32(s[2]*inv+off), 0), qmax))
		o[3] = byte(min(max(int32(s[3]*inv+off), 0), qmax))
	}
	for ; i < len(in); i++ {
		out[i] = byte(min(max(int32(in[i]*inv+off), 0), qmax))
	}
}

// pack appends byte codes of fewer than 8 bits. Whole groups of 8 codes are
// squeezed into bits bytes with three steps on a uint64, each joining
// neighbouring fields (codes, then pairs, then quads): keep the low field,
// shift the high one down next to it.
func (w *bitWriter) pack(codes []byte) {
	i := 0
	for w.n != 0 && i < len(codes) {
		w.put(uint32(codes[i]))
		i++
	}
	b := w.bits
	const rep16, rep32 = 0x0001000100010001, 0x0000000100000001
	lo1, hi1 := rep16*(uint64(1)<<b-1), rep16*((uint64(1)<<b-1)<<b)
	lo2, hi2 := rep32*(uint64(1)<<(2*b)-1), rep32*((uint64(1)<<(2*b)-1)<<(2*b))
	lo3, hi3 := uint64(1)<<(4*b)-1, (uint64(1)<<(4*b)-1)<<(4*b)
	out := w.out
	pos := w.pos
	for ; i+8 <= len(codes); i += 8 {
		x := binary.LittleEndian.Uint64(codes[i:])
		x = x&lo1 | x>>(8-b)&hi1
		x = x&lo2 | x>>(16-2*b)&hi2
		x = x&lo3 | x>>(32-4*b)&hi3
		if pos+8 <= len(out) {
			binary.LittleEndian.PutUint64(out[pos:], x) // the bytes past pos+b are rewritten later
		} else {
			for k := range int(b) {
				out[pos+k] = byte(x >> (8 * k))
			}
		}
		pos += int(b)
	}
	w.pos = pos
	for ; i < len(codes); i++ {
		w.put(uint32(codes[i]))
	}
}

// quantizeFast quantises and packs in one pass, with no clamp (modeFast).
func (w *bitWriter) quantizeFast(src []float32, q *quantizer) {
	inv, off := q.inv, q.off
	i := 0
	for w.n != 0 && i < len(src) {
		w.put(uint32(int32(src[i]*inv + off)))
		i++
	}
	g, gb := groupOf(w.bits)
	m := (len(src) - i) / g
	if m > 0 {
		out := w.out[w.pos : w.pos+m*gb]
		in := src[i : i+m*g]
		switch w.bits {
		case 8:
			quant8(out, in, inv, off)
		case 6:
			quant6(out, in, inv, off)
		case 4:
			quant4(out, in, inv, off)
		case 3:
			quant3(out, in, inv, off)
		case 2:
			quant2(out, in, inv, off)
		}
		w.pos += m * gb
		i += m * g
	}
	for ; i < len(src); i++ {
		w.put(uint32(int32(src[i]*inv + off)))
	}
}

// The kernels: in holds whole groups, out exactly their bytes.

func quant8(out []byte, in []float32, inv, off float32) {
	out = out[:len(in)]
	for i := 0; i+4 <= len(in); i += 4 {
		s := in[i : i+4 : i+4]
		o := out[i : i+4 : i+4]
		o[0] = byte(int32(s[0]*inv + off))
		o[1] = byte(int32(s[1]*inv + off))
		o[2] = byte(int32(s[2]*inv + off))
		o[3] = byte(int32(s[3]*inv + off))
	}
}

func quant4(out []byte, in []float32, inv, off float32) {
	out = out[:len(in)/2]
	for i := 0; i+8 <= len(in); i += 8 {
		s := in[i : i+8 : i+8]
		c0 := int32(s[0]*inv + off)
		c1 := int32(s[1]*inv + off)
		c2 := int32(s[2]*inv + off)
		c3 := int32(s[3]*inv + off)
		c4 := int32(s[4]*inv + off)
		c5 := int32(s[5]*inv + off)
		c6 := int32(s[6]*inv + off)
		c7 := int32(s[7]*inv + off)
		o := out[i/2 : i/2+4 : i/2+4]
		o[0] = byte(c0 | c1<<4)
		o[1] = byte(c2 | c3<<4)
		o[2] = byte(c4 | c5<<4)
		o[3] = byte(c6 | c7<<4)
	}
}

func quant2(out []byte, in []float32, inv, off float32) {
	for len(in) >= 8 && len(out) >= 2 {
		c0 := int32(in[0]*inv + off)
		c1 := int32(in[1]*inv + off)
		c2 := int32(in[2]*inv + off)
		c3 := int32(in[3]*inv + off)
		c4 := int32(in[4]*inv + off)
		c5 := int32(in[5]*inv + off)
		c6 := int32(in[6]*inv + off)
		c7 := int32(in[7]*inv + off)
		out[0] = byte(c0 | c1<<2 | c2<<4 | c3<<6)
		out[1] = byte(c4 | c5<<2 | c6<<4 | c7<<6)
		in, out = in[8:], out[2:]
	}
}

func quant3(out []byte, in []float32, inv, off float32) {
	for len(in) >= 8 && len(out) >= 3 {
		v := int32(in[0]*inv+off) | int32(in[1]*inv+off)<<3 | int32(in[2]*inv+off)<<6 |
			int32(in[3]*inv+off)<<9 | int32(in[4]*inv+off)<<12 | int32(in[5]*inv+off)<<15 |
			int32(in[6]*inv+off)<<18 | int32(in[7]*inv+off)<<21
		out[0], out[1], out[2] = byte(v), byte(v>>8), byte(v>>16)
		in, out = in[8:], out[3:]
	}
}

func quant6(out []byte, in []float32, inv, off float32) {
	for len(in) >= 4 && len(out) >= 3 {
		v := int32(in[0]*inv+off) | int32(in[1]*inv+off)<<6 | int32(in[2]*inv+off)<<12 | int32(in[3]*inv+off)<<18
		out[0], out[1], out[2] = byte(v), byte(v>>8), byte(v>>16)
		in, out = in[4:], out[3:]
	}
}

type bitReader struct {
	in   []byte
	pos  int
	acc  uint32
	n    uint // bits buffered in acc
	bits uint
	mask uint32
}

func newBitReader(in []byte, bits int) bitReader {
	return bitReader{in: in, bits: uint(bits), mask: 1<<bits - 1}
}

func (r *bitReader) get() uint32 {
	if r.n < r.bits {
		r.acc |= uint32(r.in[r.pos]) << r.n
		r.pos++
		r.n += 8
	}
	c := r.acc & r.mask
	r.acc >>= r.bits
	r.n -= r.bits
	return c
}

// dequantize fills dst with the next len(dst) values.
func (r *bitReader) dequantize(dst []float32, d dequantizer) {
	i := 0
	for r.n != 0 && i < len(dst) {
		dst[i] = d.value(r.get())
		i++
	}
	g, gb := groupOf(r.bits)
	m := (len(dst) - i) / g
	if m > 0 {
		in := r.in[r.pos : r.pos+m*gb]
		out := dst[i : i+m*g]
		switch r.bits {
		case 8:
			dequant8(out, in, d)
		case 6:
			dequant6(out, in, d)
		case 4:
			dequant4(out, in, d)
		case 3:
			dequant3(out, in, d)
		case 2:
			dequant2(out, in, d)
		}
		r.pos += m * gb
		i += m * g
	}
	for ; i < len(dst); i++ {
		dst[i] = d.value(r.get())
	}
}

func dequant8(out []float32, in []byte, d dequantizer) {
	out = out[:len(in)]
	for i, c := range in {
		out[i] = d.value(uint32(c))
	}
}

func dequant4(out []float32, in []byte, d dequantizer) {
	out = out[:2*len(in)]
	for j, c := range in {
		o := out[2*j : 2*j+2 : 2*j+2]
		o[0] = d.value(uint32(c & 15))
		o[1] = d.value(uint32(c >> 4))
	}
}

func dequant2(out []float32, in []byte, d dequantizer) {
	out = out[:4*len(in)]
	for j, c := range in {
		o := out[4*j : 4*j+4 : 4*j+4]
		o[0] = d.value(uint32(c & 3))
		o[1] = d.value(uint32(c >> 2 & 3))
		o[2] = d.value(uint32(c >> 4 & 3))
		o[3] = d.value(uint32(c >> 6))
	}
}

func dequant3(out []float32, in []byte, d dequantizer) {
	for len(in) >= 3 && len(out) >= 8 {
		v := uint32(in[0]) | uint32(in[1])<<8 | uint32(in[2])<<16
		out[0] = d.value(v & 7)
		out[1] = d.value(v >> 3 & 7)
		out[2] = d.value(v >> 6 & 7)
		out[3] = d.value(v >> 9 & 7)
		out[4] = d.value(v >> 12 & 7)
		out[5] = d.value(v >> 15 & 7)
		out[6] = d.value(v >> 18 & 7)
		out[7] = d.value(v >> 21)
		in, out = in[3:], out[8:]
	}
}

func dequant6(out []float32, in []byte, d dequantizer) {
	for len(in) >= 3 && len(out) >= 4 {
		v := uint32(in[0]) | uint32(in[1])<<8 | uint32(in[2])<<16
		out[0] = d.value(v & 63)
		out[1] = d.value(v >> 6 & 63)
		out[2] = d.value(v >> 12 & 63)
		out[3] = d.value(v >> 18)
		in, out = in[3:], out[4:]
	}
}
