package packing

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/x448/float16"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// nativeLittleEndian lets raw float32 move with one copy: the wire format is
// the memory layout.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// maxEncodeElements bounds Encode: percentile histograms count in uint32.
const maxEncodeElements = math.MaxUint32

// Encode appends the message for data, of the given shape, to dst and
// returns the extended slice; with enough capacity in dst it does not
// allocate. On error it returns dst unchanged.
//
// The channel axis is dim 1 for rank 2 and above; rank 0 and 1 tensors are one
// channel. NaN and Inf are rejected (ErrInvalid, naming the first index) at
// the affine widths, which cannot represent them; at 32 and 16 bits they pass
// through (32 bits bit for bit, 16 bits as float16 NaN and Inf).
func Encode(dst []byte, data []float32, shape []int64, opt Options) ([]byte, error) {
	opt, err := opt.resolve()
	if err != nil {
		return dst, err
	}
	n, err := checkShape(shape, len(data))
	if err != nil {
		return dst, err
	}
	packed := PackedSize(n, opt.Bits)
	if packed > maxPayload {
		return dst, fmt.Errorf("%w: shape %v at %d bits packs to %d bytes, format limit %d", ErrTooLarge, shape, opt.Bits, packed, uint64(maxPayload))
	}
	np := int(numParams(opt.Scheme, channelsOf(shape)))
	hdr := HeaderSize(len(shape), np) - trailerLen
	comp := opt.Compression
	if packed == 0 {
		comp = CompressionNone
	}

	start := len(dst)
	msg := slices.Grow(dst, hdr+int(packed)+trailerLen)[:start+hdr]
	params := putHeader(msg[start:], opt.Bits, opt.Scheme, comp, shape, 0)

	var payload []byte
	var buf *[]byte
	if comp != CompressionNone {
		buf = getBuf(int(packed))
		defer putBuf(buf)
		payload = *buf
	} else {
		payload = msg[start+hdr : start+hdr+int(packed)]
	}
	switch opt.Scheme {
	case SchemeRaw32:
		putRaw32(payload, data)
	case SchemeHalf:
		putHalf(payload, data)
	default:
		if err := quantizeAffine(payload, params, data, shape, opt); err != nil {
			return dst, err
		}
	}

	if comp != CompressionNone {
		msg = compress(msg, payload)
		if len(msg)-start-hdr >= int(packed) { // did not help: send it packed
			msg = append(msg[:start+hdr], payload...)
			msg[start+7] = byte(CompressionNone)
		}
	} else {
		msg = msg[:start+hdr+int(packed)]
	}
	binary.LittleEndian.PutUint32(msg[start+12:], uint32(len(msg)-start-hdr))
	return binary.LittleEndian.AppendUint32(msg, crc32.Checksum(msg[start:], castagnoli)), nil
}

// EncodedSize is the length of the message Encode makes for a tensor of
// this shape: exact with CompressionNone, an upper bound with compression
// (Encode falls back to the uncompressed payload when compression does not
// help). It is HeaderSize + PackedSize, the bytes(s, b) of the cost model
// before compression.
func EncodedSize(shape []int64, opt Options) (int, error) {
	opt, err := opt.resolve()
	if err != nil {
		return 0, err
	}
	n, err := checkShape(shape, -1)
	if err != nil {
		return 0, err
	}
	packed := PackedSize(n, opt.Bits)
	if packed > maxPayload {
		return 0, fmt.Errorf("%w: shape %v at %d bits packs to %d bytes, format limit %d", ErrTooLarge, shape, opt.Bits, packed, uint64(maxPayload))
	}
	return HeaderSize(len(shape), int(numParams(opt.Scheme, channelsOf(shape)))) + int(packed), nil
}

// checkShape validates a shape against the format and, unless length is
// negative, against the data length, and returns the element count.
func checkShape(shape []int64, length int) (int64, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("%w: rank %d exceeds %d", ErrUnsupported, len(shape), MaxRank)
	}
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: shape %v: dim %d is negative", ErrInvalid, shape, i)
		}
		if d > math.MaxUint32 {
			return 0, fmt.Errorf("%w: shape %v: dim %d exceeds %d", ErrTooLarge, shape, i, uint32(math.MaxUint32))
		}
		if d != 0 && n > maxEncodeElements/d {
			return 0, fmt.Errorf("%w: shape %v has more than %d elements", ErrTooLarge, shape, int64(maxEncodeElements))
		}
		n *= d
	}
	if length >= 0 && n != int64(length) {
		return 0, fmt.Errorf("%w: shape %v has %d elements, data has %d", ErrInvalid, shape, n, length)
	}
	return n, nil
}

func putRaw32(out []byte, data []float32) {
	out = out[:4*len(data)]
	if nativeLittleEndian && len(data) > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(out)))
		return
	}
	for i, x := range data {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
}

func putHalf(out []byte, data []float32) {
	out = out[:2*len(data)]
	for i, x := range data {
		binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(x).Bits())
	}
}

// quantizeAffine chooses the parameters, writes them into the header's
// parameter area and packs the codes into payload.
func quantizeAffine(payload, params []byte, data []float32, shape []int64, opt Options) error {
	var hist *histogram
	if opt.ClipPercentile != 0 {
		hist = new(histogram) // does not escape: stays on the stack
	}
	w := bitWriter{out: payload, bits: uint(opt.Bits)}
	n := len(data)
	if opt.Scheme == SchemeAffineTensor || len(shape) < 2 {
		// One parameter set (SchemeAffineChannel of rank 0 or 1 has one
		// channel).
		g := group{data: data, inner: n, stride: n, count: 1}
		p, q, err := chooseParam(g, data, opt, hist)
		if err != nil {
			return err
		}
		putParam(params, 0, p)
		w.quantize(data, &q)
		w.flush()
		return nil
	}
	outer, c := int(shape[0]), int(shape[1])
	if n == 0 {
		for ch := range c {
			putParam(params, ch, affineParams(0, 0, opt.Bits))
		}
		return nil
	}
	inner := n / (outer * c)
	qs := getQuantizers(c)
	defer quantizerPool.Put(qs)
	for ch := range c {
		g := group{data: data, start: ch * inner, inner: inner, stride: c * inner, count: outer}
		p, q, err := chooseParam(g, data, opt, hist)
		if err != nil {
			return err
		}
		putParam(params, ch, p)
		(*qs)[ch] = q
	}
	for k := range outer {
		for ch := range c {
			off := (k*c + ch) * inner
			w.quantize(data[off:off+inner], &(*qs)[ch])
		}
	}
	w.flush()
	return nil
}

// chooseParam picks the parameters of one group, from its [min, max] or,
// with a clip percentile, its percentile range, and the quantizer for them.
func chooseParam(g group, all []float32, opt Options, hist *histogram) (Param, quantizer, error) {
	if opt.ClipPercentile != 0 && g.len() > 0 {
		lo, hi, mn, mx, finite := clipRange(g, opt.ClipPercentile, hist)
		if !finite {
			return Param{}, quantizer{}, nonFinite(all)
		}
		p := affineParams(lo, hi, opt.Bits)
		return p, newQuantizer(p, opt.Bits, mn, mx, true), nil
	}
	mn, mx, finite := minMax(g)
	if !finite {
		return Param{}, quantizer{}, nonFinite(all)
	}
	p := affineParams(mn, mx, opt.Bits)
	return p, newQuantizer(p, opt.Bits, min(mn, 0), max(mx, 0), false), nil
}

// quantizerPool holds the per-channel quantizers of SchemeAffineChannel
// between its two passes.
var quantizerPool sync.Pool // of *[]quantizer

func getQuantizers(n int) *[]quantizer {
	p, _ := quantizerPool.Get().(*[]quantizer)
	if p == nil || cap(*p) < n {
		s := make([]quantizer, n)
		p = &s
	}
	*p = (*p)[:n]
	return p
}
