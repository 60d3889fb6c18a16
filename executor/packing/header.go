package packing

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Wire layout, all integers little-endian:
//
//	off  size  field
//	0    4     magic "DYPK"
//	4    1     format version (1)
//	5    1     bits: 32, 16, 8, 6, 4, 3, 2
//	6    1     scheme (Scheme)
//	7    1     compression (Compression)
//	8    1     rank, 0..MaxRank
//	9    3     reserved, zero
//	12   4     payload length in bytes, as sent (compressed or not)
//	16   4*r   dims, uint32 each
//	..   5*p   quantisation parameters: float32 scale, uint8 zero point;
//	           p = 0 (raw32, half), 1 (affine-tensor), dim 1 (affine-channel)
//	..   len   payload
//	..   4     CRC32C (Castagnoli) of every byte before it
//
// The packed payload holds the values in row-major order: float32 or float16
// words, or affine codes bit-packed least significant bit first (value i
// occupies bits [i*b, i*b+b) of the little-endian bit stream; its last byte
// is padded with zero bits).
const (
	magic      = "DYPK"
	fixedLen   = 16
	dimLen     = 4
	paramLen   = 5
	trailerLen = 4

	// Version is the format version Encode writes and Decode accepts.
	Version = 1
	// MaxRank is the largest rank the format carries.
	MaxRank = 8
	// maxPayload is the largest payload the 32-bit length field describes.
	maxPayload = math.MaxUint32
)

// HeaderSize is the number of bytes a message adds to its payload: the header
// with rank dims and params quantisation parameter sets, plus the 4-byte
// checksum trailer. params is 0 for SchemeRaw32 and SchemeHalf, 1 for
// SchemeAffineTensor and the channel count for SchemeAffineChannel.
func HeaderSize(rank, params int) int {
	return fixedLen + dimLen*rank + paramLen*params + trailerLen
}

// PackedSize is the payload size without compression: ceil(elements*bits/8).
func PackedSize(elements int64, bits int) int64 {
	hi, lo := bits64(elements, bits)
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64 // saturate; callers compare against a limit
	}
	return int64(lo)
}

// bits64 returns elements*bits+7 as a 128-bit number, divided by 8.
func bits64(elements int64, b int) (hi, lo uint64) {
	hi, lo = bits.Mul64(uint64(elements), uint64(b))
	var c uint64
	lo, c = bits.Add64(lo, 7, 0)
	hi += c
	return hi >> 3, lo>>3 | hi<<61
}

// Header is the decoded header of a message.
type Header struct {
	Version     int         // format version, Version
	Bits        int         // 32, 16, 8, 6, 4, 3 or 2
	Scheme      Scheme      // never SchemeAuto
	Compression Compression // of the payload as sent
	// Rank and Dims are the shape; Shape returns it as a slice.
	Rank int
	Dims [MaxRank]int64
	// PayloadLen is the payload as sent, in bytes.
	PayloadLen int

	params   []byte // aliases the message; see the package caveats
	reserved [3]byte
}

// Shape returns the dims as a slice aliasing h.
func (h *Header) Shape() []int64 { return h.Dims[:h.Rank] }

// shapeCopy is Shape for error messages, copied so h does not escape.
func (h *Header) shapeCopy() []int64 { return append([]int64(nil), h.Dims[:h.Rank]...) }

// Elements is the product of the dims (1 for rank 0).
func (h *Header) Elements() int64 {
	n := int64(1)
	for _, d := range h.Dims[:h.Rank] {
		n *= d // checked against overflow when the header was parsed
	}
	return n
}

// Channels is dim 1 for rank 2 and above, else 1.
func (h *Header) Channels() int64 { return channelsOf(h.Dims[:h.Rank]) }

// NumParams is the number of quantisation parameter sets: 0 for SchemeRaw32
// and SchemeHalf, 1 for SchemeAffineTensor, Channels for
// SchemeAffineChannel.
func (h *Header) NumParams() int { return len(h.params) / paramLen }

// Param is one set of affine quantisation parameters: code q stands for
// float32(q-ZeroPoint)*Scale. Code ZeroPoint stands for exactly 0.
type Param struct {
	Scale     float32
	ZeroPoint int
}

// Param returns parameter set i (the channel for SchemeAffineChannel, 0 for
// SchemeAffineTensor). It panics if i is out of [0, NumParams()).
func (h *Header) Param(i int) Param {
	p := h.params[i*paramLen : i*paramLen+paramLen]
	return Param{
		Scale:     math.Float32frombits(binary.LittleEndian.Uint32(p)),
		ZeroPoint: int(p[4]),
	}
}

// Range returns the smallest and largest value parameter set i can represent:
// the clipping range, rounded to whole steps. It panics like Param.
func (h *Header) Range(i int) (lo, hi float32) { return h.rangeOf(h.Param(i)) }

func (h *Header) rangeOf(p Param) (lo, hi float32) {
	return float32(-p.ZeroPoint) * p.Scale, float32(h.qmax()-p.ZeroPoint) * p.Scale
}

// Size is the whole message length: HeaderSize plus PayloadLen.
func (h *Header) Size() int {
	return HeaderSize(h.Rank, h.NumParams()) + h.PayloadLen
}

func (h *Header) qmax() int { return 1<<h.Bits - 1 }

// channelsOf is the channel count of a shape: dim 1 from rank 2, else 1.
func channelsOf(shape []int64) int64 {
	if len(shape) >= 2 {
		return shape[1]
	}
	return 1
}

// numParams is the parameter count for a scheme and a channel count.
func numParams(s Scheme, channels int64) int64 {
	switch s {
	case SchemeAffineTensor:
		return 1
	case SchemeAffineChannel:
		return channels
	}
	return 0
}

// ParseHeader parses and checks the header at the start of src, which may be
// a whole message or only its header. It checks every field that can be
// checked without the payload; it does not verify the checksum, apply an
// element limit or look at the payload: Decode does. The returned Header
// aliases src.
func ParseHeader(src []byte) (Header, error) {
	h, _, err := parseLayout(src)
	if err != nil {
		return Header{}, err
	}
	if err := h.check(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// parseLayout reads the fields that decide where things are (version, rank,
// scheme, dims, payload length) and returns the header length without the
// trailer. It does not trust anything else yet: Decode verifies the checksum
// before check looks at the rest, so a flipped bit is reported as a checksum
// error wherever it can be.
func parseLayout(src []byte) (Header, int, error) {
	var h Header
	if len(src) < fixedLen {
		return h, 0, fmt.Errorf("%w: header: need %d bytes, have %d", ErrTruncated, fixedLen, len(src))
	}
	if string(src[:4]) != magic {
		return h, 0, fmt.Errorf("%w: magic %q, want %q", ErrCorrupt, src[:4], magic)
	}
	h.Version = int(src[4])
	if h.Version != Version {
		return h, 0, fmt.Errorf("%w: format version %d, want %d", ErrUnsupported, h.Version, Version)
	}
	h.Bits = int(src[5])
	h.Scheme = Scheme(src[6])
	h.Compression = Compression(src[7])
	h.Rank = int(src[8])
	copy(h.reserved[:], src[9:12])
	if h.Rank > MaxRank {
		return h, 0, fmt.Errorf("%w: rank %d exceeds %d", ErrCorrupt, h.Rank, MaxRank)
	}
	if h.Scheme < SchemeRaw32 || h.Scheme > SchemeAffineChannel {
		return h, 0, fmt.Errorf("%w: scheme %v", ErrUnsupported, h.Scheme)
	}
	pl := binary.LittleEndian.Uint32(src[12:16])
	if uint64(pl) > math.MaxInt-(1<<16) { // only on 32-bit platforms
		return h, 0, fmt.Errorf("%w: payload length %d", ErrTooLarge, pl)
	}
	h.PayloadLen = int(pl)
	off := fixedLen + dimLen*h.Rank
	if len(src) < off {
		return h, 0, fmt.Errorf("%w: dims: need %d bytes, have %d", ErrTruncated, off, len(src))
	}
	for i := range h.Rank {
		h.Dims[i] = int64(binary.LittleEndian.Uint32(src[fixedLen+dimLen*i:]))
	}
	np := numParams(h.Scheme, channelsOf(h.Dims[:h.Rank]))
	// np <= MaxUint32, so this cannot overflow an int64.
	end := int64(off) + paramLen*np
	if int64(len(src)) < end {
		return h, 0, fmt.Errorf("%w: quantisation parameters: need %d bytes, have %d", ErrTruncated, end, len(src))
	}
	h.params = src[off:end:end]
	return h, int(end), nil
}

// check validates the fields parseLayout left alone and the consistency of
// the whole header.
func (h *Header) check() error {
	if h.reserved != [3]byte{} {
		return fmt.Errorf("%w: reserved header bytes %x are not zero", ErrCorrupt, h.reserved)
	}
	if h.Compression != CompressionNone && h.Compression != CompressionZstd {
		return fmt.Errorf("%w: compression %v", ErrUnsupported, h.Compression)
	}
	if h.Bits != 32 && h.Bits != 16 && !isAffineBits(h.Bits) {
		return fmt.Errorf("%w: bits %d", ErrUnsupported, h.Bits)
	}
	if err := checkSchemeBits(h.Scheme, h.Bits); err != nil {
		return err
	}
	// Elements: each dim is below 2^32 and the rank at most 8, so multiply
	// with an overflow check.
	n := uint64(1)
	for i, d := range h.Dims[:h.Rank] {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("%w: shape %v: element count overflows at dim %d", ErrTooLarge, h.shapeCopy(), i)
		}
		n = lo
	}
	packed := PackedSize(int64(n), h.Bits)
	if packed > maxPayload {
		return fmt.Errorf("%w: shape %v at %d bits packs to %d bytes, format limit %d", ErrTooLarge, h.shapeCopy(), h.Bits, packed, uint64(maxPayload))
	}
	switch h.Compression {
	case CompressionNone:
		if int64(h.PayloadLen) != packed {
			return fmt.Errorf("%w: payload length %d, want %d for shape %v at %d bits", ErrCorrupt, h.PayloadLen, packed, h.shapeCopy(), h.Bits)
		}
	default:
		// Encode sends a payload uncompressed unless compressing shrinks it.
		if h.PayloadLen == 0 || int64(h.PayloadLen) >= packed {
			return fmt.Errorf("%w: compressed payload length %d, want 1..%d for shape %v at %d bits", ErrCorrupt, h.PayloadLen, packed-1, h.shapeCopy(), h.Bits)
		}
	}
	qmax := h.qmax()
	for i := range h.NumParams() {
		p := h.Param(i)
		if !(p.Scale > 0) || math.IsInf(float64(p.Scale), 1) { // also rejects NaN
			return fmt.Errorf("%w: parameter set %d: scale %g", ErrCorrupt, i, p.Scale)
		}
		if p.ZeroPoint > qmax {
			return fmt.Errorf("%w: parameter set %d: zero point %d exceeds %d", ErrCorrupt, i, p.ZeroPoint, qmax)
		}
		lo, hi := h.Range(i)
		if math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) {
			return fmt.Errorf("%w: parameter set %d: range [%g, %g] overflows float32", ErrCorrupt, i, lo, hi)
		}
	}
	return nil
}

// putHeader writes the header of h into b, which is HeaderSize-trailerLen
// bytes long, and returns the parameter area for the caller to fill.
func putHeader(b []byte, bitsPer int, s Scheme, c Compression, shape []int64, payloadLen int) []byte {
	copy(b, magic)
	b[4] = Version
	b[5] = byte(bitsPer)
	b[6] = byte(s)
	b[7] = byte(c)
	b[8] = byte(len(shape))
	b[9], b[10], b[11] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[12:], uint32(payloadLen))
	off := fixedLen
	for _, d := range shape {
		binary.LittleEndian.PutUint32(b[off:], uint32(d))
		off += dimLen
	}
	return b[off:]
}

// putParam writes parameter set i into the parameter area.
func putParam(params []byte, i int, p Param) {
	b := params[i*paramLen : i*paramLen+paramLen]
	binary.LittleEndian.PutUint32(b, math.Float32bits(p.Scale))
	b[4] = byte(p.ZeroPoint)
}
