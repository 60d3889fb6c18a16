package packing

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"unsafe"

	"github.com/x448/float16"
)

// Decode decodes the message src into dst, reusing dst's capacity when it
// holds the tensor (allocating exactly the element count otherwise), and
// returns the values and the header. src must be exactly one message.
//
// Decode checks, in order: the layout fields and that src holds exactly
// header, payload and trailer (ErrTruncated, ErrCorrupt); the CRC32C
// (ErrChecksum); every other header field (ErrUnsupported, ErrCorrupt); the
// element count against opt.MaxElements (ErrTooLarge), before it allocates
// anything. A compressed payload is decompressed into a buffer of exactly the
// packed size the header implies and must fill it exactly. Decode never
// panics on any input. On error it returns dst[:0] and a zero Header.
//
// The returned Header aliases src; see the package caveats.
func Decode(dst []float32, src []byte, opt DecodeOptions) ([]float32, Header, error) {
	h, hdrEnd, err := parseLayout(src)
	if err != nil {
		return dst[:0], Header{}, err
	}
	total := int64(hdrEnd) + int64(h.PayloadLen) + trailerLen
	if int64(len(src)) < total {
		return dst[:0], Header{}, fmt.Errorf("%w: payload of %d bytes and checksum: message needs %d bytes, have %d", ErrTruncated, h.PayloadLen, total, len(src))
	}
	if int64(len(src)) > total {
		return dst[:0], Header{}, fmt.Errorf("%w: %d bytes after the checksum (message is %d bytes)", ErrCorrupt, int64(len(src))-total, total)
	}
	body := src[:total-trailerLen]
	want := binary.LittleEndian.Uint32(src[total-trailerLen:])
	if got := crc32.Checksum(body, castagnoli); got != want {
		return dst[:0], Header{}, fmt.Errorf("%w: CRC32C of %d bytes is %08x, trailer says %08x", ErrChecksum, len(body), got, want)
	}
	if err := h.check(); err != nil {
		return dst[:0], Header{}, err
	}
	limit := opt.MaxElements
	if limit <= 0 {
		limit = DefaultMaxElements
	}
	n := h.Elements()
	if n > limit || n > math.MaxInt/4 {
		return dst[:0], Header{}, fmt.Errorf("%w: shape %v has %d elements, limit %d", ErrTooLarge, h.shapeCopy(), n, limit)
	}
	payload := body[hdrEnd:]
	if h.Compression != CompressionNone {
		buf := getBuf(int(PackedSize(n, h.Bits)))
		defer putBuf(buf)
		if err := decompress(*buf, payload); err != nil {
			return dst[:0], Header{}, err
		}
		payload = *buf
	}

	if int64(cap(dst)) >= n {
		dst = dst[:n]
	} else {
		dst = make([]float32, n)
	}
	switch h.Scheme {
	case SchemeRaw32:
		getRaw32(dst, payload)
	case SchemeHalf:
		getHalf(dst, payload)
	default:
		dequantizeAffine(dst, payload, &h)
	}
	return dst, h, nil
}

func getRaw32(dst []float32, in []byte) {
	in = in[:4*len(dst)]
	if nativeLittleEndian && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(in)), in)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(in[4*i:]))
	}
}

func getHalf(dst []float32, in []byte) {
	in = in[:2*len(dst)]
	for i := range dst {
		dst[i] = float16.Frombits(binary.LittleEndian.Uint16(in[2*i:])).Float32()
	}
}

// dequantizeAffine unpacks the codes of a checked header's payload.
func dequantizeAffine(dst []float32, payload []byte, h *Header) {
	r := newBitReader(payload, h.Bits)
	deq := func(i int) dequantizer {
		p := h.Param(i)
		return dequantizer{scale: p.Scale, zp: int32(p.ZeroPoint)}
	}
	if h.Scheme == SchemeAffineTensor || h.Rank < 2 {
		r.dequantize(dst, deq(0))
		return
	}
	outer, c := int(h.Dims[0]), int(h.Dims[1])
	if len(dst) == 0 {
		return
	}
	inner := len(dst) / (outer * c)
	for k := range outer {
		for ch := range c {
			off := (k*c + ch) * inner
			r.dequantize(dst[off:off+inner], deq(ch))
		}
	}
}
