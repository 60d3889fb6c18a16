package packing

import "errors"

// Sentinel errors. Every error the package returns wraps one of them (test
// with errors.Is) and adds which field was wrong and why.
var (
	// ErrTruncated: the input ends before the header or payload it declares.
	ErrTruncated = errors.New("packing: truncated input")
	// ErrCorrupt: the input is not a valid encoding (bad magic, fields that
	// contradict each other, trailing bytes, a payload that does not decompress
	// to the declared size).
	ErrCorrupt = errors.New("packing: corrupt input")
	// ErrChecksum: the CRC32C trailer does not match the message.
	ErrChecksum = errors.New("packing: checksum mismatch")
	// ErrUnsupported: a version, width, scheme or compression this package does
	// not know, on either side.
	ErrUnsupported = errors.New("packing: unsupported")
	// ErrTooLarge: a tensor beyond DecodeOptions.MaxElements or beyond what the
	// format can describe.
	ErrTooLarge = errors.New("packing: too large")
	// ErrInvalid: an invalid argument to Encode (shape and data disagree, NaN or
	// Inf at a quantised width, an out-of-range option).
	ErrInvalid = errors.New("packing: invalid argument")
)
