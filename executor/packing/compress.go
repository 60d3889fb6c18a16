package packing

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The zstd encoder and decoder are shared by every goroutine: EncodeAll and
// DecodeAll are safe for concurrent use and keep their state in internal
// pools, so steady-state calls do not allocate.
//
// Encoder settings, from the measurement in doc.go: the fastest level;
// entropy coding of literals even when a block has no matches (without it
// the fastest level stores i.i.d. 4-bit codes nearly raw: 1.2-1.4x instead of
// 1.8x on ReLU-like data); no frame checksum, the message has its own CRC32C.
var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		panic("packing: zstd encoder options: " + err.Error()) // constant options
	}
	return e
})

// The decoder never writes past the capacity of the buffer it is given
// (WithDecodeAllCapLimit), and that buffer is exactly the packed size the
// header declares, so a hostile payload cannot make it allocate more.
var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderConcurrency(0), // GOMAXPROCS concurrent DecodeAll calls
	)
	if err != nil {
		panic("packing: zstd decoder options: " + err.Error())
	}
	return d
})

// compress appends the zstd frame of src to dst.
func compress(dst, src []byte) []byte {
	return zstdEncoder().EncodeAll(src, dst)
}

// decompress fills dst, whose length is the packed size the header declares,
// from a zstd frame, and fails unless it decodes to exactly that size. It
// never writes more than len(dst) bytes into dst (WithDecodeAllCapLimit).
func decompress(dst, src []byte) error {
	var fh zstd.Header
	if err := fh.Decode(src); err != nil {
		return fmt.Errorf("%w: zstd frame header: %v", ErrCorrupt, err)
	}
	if fh.Skippable {
		return fmt.Errorf("%w: zstd payload is a skippable frame", ErrCorrupt)
	}
	// Small frames may leave the content size out; the cap limit bounds the
	// output either way, and its length is checked below.
	if fh.HasFCS && fh.FrameContentSize != uint64(len(dst)) {
		return fmt.Errorf("%w: zstd frame content size %d, want %d", ErrCorrupt, fh.FrameContentSize, len(dst))
	}
	out, err := zstdDecoder().DecodeAll(src, dst[:0:len(dst)])
	if err != nil {
		return fmt.Errorf("%w: zstd payload: %v", ErrCorrupt, err)
	}
	if len(out) != len(dst) {
		return fmt.Errorf("%w: zstd payload decodes to %d bytes, want %d", ErrCorrupt, len(out), len(dst))
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		copy(dst, out) // not expected with the cap limit; keep dst authoritative
	}
	return nil
}

// bufPool holds scratch for packed payloads on their way to or from the
// compressor.
var bufPool sync.Pool // of *[]byte

func getBuf(n int) *[]byte {
	p, _ := bufPool.Get().(*[]byte)
	if p == nil || cap(*p) < n {
		b := make([]byte, n)
		p = &b
	}
	*p = (*p)[:n]
	return p
}

func putBuf(p *[]byte) { bufPool.Put(p) }
