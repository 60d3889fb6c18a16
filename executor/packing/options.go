package packing

import "fmt"

// Scheme is how values are represented on the wire.
type Scheme uint8

// Schemes. The numeric values are part of the wire format.
const (
	// SchemeAuto (the zero value) picks the scheme from Options.Bits:
	// SchemeRaw32 for 32, SchemeHalf for 16, SchemeAffineTensor below.
	SchemeAuto Scheme = 0
	// SchemeRaw32 is little-endian IEEE float32, bit for bit.
	SchemeRaw32 Scheme = 1
	// SchemeHalf is little-endian IEEE float16, rounded to nearest even.
	SchemeHalf Scheme = 2
	// SchemeAffineTensor is linear quantisation with one scale and zero point.
	SchemeAffineTensor Scheme = 3
	// SchemeAffineChannel is linear quantisation with a scale and zero point
	// per channel (dimension 1 of a tensor of rank 2 or more).
	SchemeAffineChannel Scheme = 4
)

func (s Scheme) String() string {
	switch s {
	case SchemeAuto:
		return "auto"
	case SchemeRaw32:
		return "raw32"
	case SchemeHalf:
		return "half"
	case SchemeAffineTensor:
		return "affine-tensor"
	case SchemeAffineChannel:
		return "affine-channel"
	}
	return fmt.Sprintf("scheme(%d)", uint8(s))
}

// Compression is the lossless compression applied to the packed payload.
type Compression uint8

// Compressions. The numeric values are part of the wire format.
const (
	// CompressionNone sends the packed values as they are.
	CompressionNone Compression = 0
	// CompressionZstd compresses the packed values with zstd at its fastest
	// level (github.com/klauspost/compress/zstd). doc.go says why zstd.
	CompressionZstd Compression = 1
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Options says how Encode represents a tensor. The zero value is lossless:
// raw float32, no compression.
type Options struct {
	// Bits per value: 32, 16, 8, 6, 4, 3 or 2. Zero means 32.
	Bits int
	// Scheme; zero (SchemeAuto) picks it from Bits. SchemeRaw32 needs 32
	// bits, SchemeHalf 16, the affine schemes 8 or fewer.
	Scheme Scheme
	// ClipPercentile, for the affine schemes, sets the quantisation range to
	// the [100-p, p] percentiles of the values (per channel for
	// SchemeAffineChannel), always widened to include 0, instead of
	// [min, max]; values outside are clamped to it. It must lie in (50, 100];
	// 0 and 100 mean min/max. Percentiles are exact for groups of up to 1024
	// values; larger groups use radix selection on the float bits (two
	// passes, no sort, no allocation), which overshoots by less than 2^-9 of
	// the value and never clips more than asked. Ignored by SchemeRaw32 and
	// SchemeHalf.
	ClipPercentile float64
	// Compression of the packed payload. When compressing does not make the
	// payload smaller, Encode sends it uncompressed and says so in the header,
	// so the size with compression never exceeds the size without.
	Compression Compression
}

// DefaultMaxElements is the element limit Decode applies when
// DecodeOptions.MaxElements is zero: 64M elements, 256 MiB of float32.
const DefaultMaxElements = 64 << 20

// DecodeOptions bounds what Decode accepts.
type DecodeOptions struct {
	// MaxElements is the largest tensor Decode will allocate for. Zero (or
	// less) means DefaultMaxElements.
	MaxElements int64
}

// isAffineBits reports whether b is a width of the affine schemes.
func isAffineBits(b int) bool {
	switch b {
	case 8, 6, 4, 3, 2:
		return true
	}
	return false
}

// resolve checks the options and fills in the defaults.
func (o Options) resolve() (Options, error) {
	if o.Bits == 0 {
		o.Bits = 32
	}
	if o.Bits != 32 && o.Bits != 16 && !isAffineBits(o.Bits) {
		return o, fmt.Errorf("%w: bits %d (want 32, 16, 8, 6, 4, 3 or 2)", ErrUnsupported, o.Bits)
	}
	if o.Scheme == SchemeAuto {
		switch o.Bits {
		case 32:
			o.Scheme = SchemeRaw32
		case 16:
			o.Scheme = SchemeHalf
		default:
			o.Scheme = SchemeAffineTensor
		}
	}
	if err := checkSchemeBits(o.Scheme, o.Bits); err != nil {
		return o, err
	}
	if o.Compression != CompressionNone && o.Compression != CompressionZstd {
		return o, fmt.Errorf("%w: compression %v", ErrUnsupported, o.Compression)
	}
	p := o.ClipPercentile
	if p != 0 && !(p > 50 && p <= 100) { // also rejects NaN
		return o, fmt.Errorf("%w: clip percentile %g (want 0 or (50, 100])", ErrInvalid, p)
	}
	if p == 100 {
		o.ClipPercentile = 0
	}
	return o, nil
}

// checkSchemeBits reports whether a known scheme and a known width go
// together; it is shared by Encode and the header check.
func checkSchemeBits(s Scheme, bits int) error {
	var ok bool
	switch s {
	case SchemeRaw32:
		ok = bits == 32
	case SchemeHalf:
		ok = bits == 16
	case SchemeAffineTensor, SchemeAffineChannel:
		ok = isAffineBits(bits)
	default:
		return fmt.Errorf("%w: scheme %v", ErrUnsupported, s)
	}
	if !ok {
		return fmt.Errorf("%w: scheme %v cannot carry %d bits", ErrUnsupported, s, bits)
	}
	return nil
}
