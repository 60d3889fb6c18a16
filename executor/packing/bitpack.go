package packing

// Bit packing of affine codes, least significant bit first. A bitWriter
// quantises runs of values into the payload; a bitReader reads them back.
// Both carry their partial byte across runs, so per-channel runs need not
// start on a byte boundary. Each run goes through three stages: single codes
// until the stream is byte-aligned, then a specialised loop over whole groups
// (1 value a byte at 8 bits, 2 at 4, 4 at 2, 8 values in 3 bytes at 3, 4
// values in 3 bytes at 6), then single codes for the tail.

// groupOf returns how many values fill how many whole bytes at a width.
func groupOf(bits uint) (values, bytes int) {
	switch bits {
	case 3:
		return 8, 3
	case 6:
		return 4, 3
	}
	return 8 / int(bits), 1
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

// quantize appends the codes of src.
func (w *bitWriter) quantize(src []float32, q quantizer) {
	i := 0
	for w.n != 0 && i < len(src) {
		w.put(q.code(src[i]))
		i++
	}
	g, gb := groupOf(w.bits)
	m := (len(src) - i) / g
	if m > 0 {
		out := w.out[w.pos : w.pos+m*gb]
		in := src[i : i+m*g]
		switch w.bits {
		case 8:
			quant8(out, in, q)
		case 6:
			quant6(out, in, q)
		case 4:
			quant4(out, in, q)
		case 3:
			quant3(out, in, q)
		case 2:
			quant2(out, in, q)
		}
		w.pos += m * gb
		i += m * g
	}
	for ; i < len(src); i++ {
		w.put(q.code(src[i]))
	}
}

func quant8(out []byte, in []float32, q quantizer) {
	out = out[:len(in)]
	i := 0
	for ; i+4 <= len(in); i += 4 {
		s := in[i : i+4 : i+4]
		o := out[i : i+4 : i+4]
		o[0] = byte(q.code(s[0]))
		o[1] = byte(q.code(s[1]))
		o[2] = byte(q.code(s[2]))
		o[3] = byte(q.code(s[3]))
	}
	for ; i < len(in); i++ {
		out[i] = byte(q.code(in[i]))
	}
}

func quant4(out []byte, in []float32, q quantizer) {
	for j := range out {
		s := in[2*j : 2*j+2 : 2*j+2]
		out[j] = byte(q.code(s[0]) | q.code(s[1])<<4)
	}
}

func quant2(out []byte, in []float32, q quantizer) {
	for j := range out {
		s := in[4*j : 4*j+4 : 4*j+4]
		out[j] = byte(q.code(s[0]) | q.code(s[1])<<2 | q.code(s[2])<<4 | q.code(s[3])<<6)
	}
}

func quant3(out []byte, in []float32, q quantizer) {
	for j := 0; j+3 <= len(out); j += 3 {
		s := in[j/3*8 : j/3*8+8 : j/3*8+8]
		v := q.code(s[0]) | q.code(s[1])<<3 | q.code(s[2])<<6 | q.code(s[3])<<9 |
			q.code(s[4])<<12 | q.code(s[5])<<15 | q.code(s[6])<<18 | q.code(s[7])<<21
		o := out[j : j+3 : j+3]
		o[0], o[1], o[2] = byte(v), byte(v>>8), byte(v>>16)
	}
}

func quant6(out []byte, in []float32, q quantizer) {
	for j := 0; j+3 <= len(out); j += 3 {
		s := in[j/3*4 : j/3*4+4 : j/3*4+4]
		v := q.code(s[0]) | q.code(s[1])<<6 | q.code(s[2])<<12 | q.code(s[3])<<18
		o := out[j : j+3 : j+3]
		o[0], o[1], o[2] = byte(v), byte(v>>8), byte(v>>16)
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
	for j := 0; j+3 <= len(in); j += 3 {
		b := in[j : j+3 : j+3]
		v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		o := out[j/3*8 : j/3*8+8 : j/3*8+8]
		o[0] = d.value(v & 7)
		o[1] = d.value(v >> 3 & 7)
		o[2] = d.value(v >> 6 & 7)
		o[3] = d.value(v >> 9 & 7)
		o[4] = d.value(v >> 12 & 7)
		o[5] = d.value(v >> 15 & 7)
		o[6] = d.value(v >> 18 & 7)
		o[7] = d.value(v >> 21)
	}
}

func dequant6(out []float32, in []byte, d dequantizer) {
	for j := 0; j+3 <= len(in); j += 3 {
		b := in[j : j+3 : j+3]
		v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		o := out[j/3*4 : j/3*4+4 : j/3*4+4]
		o[0] = d.value(v & 63)
		o[1] = d.value(v >> 6 & 63)
		o[2] = d.value(v >> 12 & 63)
		o[3] = d.value(v >> 18)
	}
}
