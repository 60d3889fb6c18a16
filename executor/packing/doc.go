// Package packing turns a float32 activation tensor into the bytes that cross
// the device/cloud split, and back.
//
// It owns the wire format of one tensor: the precision (raw float32, IEEE
// half, or affine quantisation to 8, 6, 4, 3 or 2 bits, per tensor or per
// channel, scaled from min/max or from a clipping percentile), the bit
// packing, the optional lossless compression of the packed stream, a
// self-describing header and a CRC32C checksum, and the checks that let the
// receiver decode untrusted bytes safely. It does not choose the precision
// (the bandit's arm does), frame messages on a connection (the transport
// does), or know about models: a tensor is a []float32 and a shape.
//
//	msg, err := packing.Encode(buf[:0], act, []int64{1, 64, 56, 56},
//		packing.Options{Bits: 4, Compression: packing.CompressionZstd})
//	...
//	act, hdr, err := packing.Decode(act[:0], msg, packing.DecodeOptions{})
//
// # Format
//
// A message is a header (magic "DYPK", version, bits, scheme, compression,
// rank and dims, payload length, and the quantisation parameters: a float32
// scale and a uint8 zero point per tensor or per channel), the payload, and a
// CRC32C of everything before it; header.go has the byte layout. HeaderSize
// is the overhead (41 bytes for a rank-4 tensor at one scale), PackedSize the
// uncompressed payload, ceil(elements*bits/8), and EncodedSize their sum:
// the bytes(s, b) of the cost model before compression.
//
// # Quantisation
//
// Code q stands for float32(q-zp)*scale. The range, [min, max] or the
// [100-p, p] percentiles, is widened to include 0 and the zero point zp is an
// integer, so 0.0 is exactly representable: ReLU zeros decode to exactly 0
// and stay one repeated code, which is what lets the compressor work. Every
// value in the range decodes within half a step (scale/2, plus float
// rounding); with a clip percentile, values outside the range decode to its
// ends. The channel axis is dim 1 for rank 2 and above; rank 0 and 1
// tensors are one channel. NaN and ±Inf are rejected at the affine widths
// (the error names the first index) and pass through at 32 bits (bit for
// bit, NaN payloads included) and 16 bits (as float16 NaN and Inf; float16
// quiets NaNs). Ranges wider than about MaxFloat32 (values near ±3.4e38 of
// both signs) cannot have both an exact zero and finite ends at few bits;
// they lose accuracy at the ends.
//
// Percentiles come from radix selection on the float bits (percentile.go):
// two integer passes, no sort, no allocation, exact for groups up to 1024
// values and otherwise overshooting by less than 2^-9 of the value, so the
// clip never cuts more than asked.
//
// # Compression
//
// CompressionZstd is github.com/klauspost/compress/zstd at its fastest level,
// with entropy coding of literals forced on. It was picked by measurement:
// one million ReLU-like values (half exact zeros, the rest exponential or
// half-normal, i.i.d., or zeros in runs of 7), quantised per tensor and
// packed, then compressed by each candidate on this 2-core machine (one
// goroutine; MB/s of packed bytes, noisy):
//
//	data, bits           zstd fastest           s2                     lz4 block
//	                     ratio  enc/dec MB/s    ratio  enc/dec MB/s    ratio  enc/dec MB/s
//	exponential, 8       1.88x  112/625         1.15x  395/1406        1.20x  138/2543
//	exponential, 4       2.31x  101/627         1.33x  295/1065        1.46x  140/2393
//	exponential, 2       3.78x  136/540         2.87x  397/937         2.53x  284/1223
//	half-normal, 8       1.70x   87/365         1.09x  219/1106        1.12x  129/2245
//	half-normal, 4       1.87x  133/467         1.00x  421/-           1.05x  106/2385
//	half-normal, 2       2.28x   55/333         1.23x  250/964         1.34x  102/1576
//	exp. zero runs, 4    2.38x  101/532         1.51x  215/879         1.62x  135/1554
//
// (ratio: packed bytes over compressed bytes; float32 over wire is 32/bits
// times that.) Quantised activations are short codes with a skewed
// distribution and few long repeats: an entropy coder is what shrinks them,
// and only zstd has one. s2 and lz4 are 3-4x faster to encode but leave
// i.i.d. 4-bit codes almost as they are (1.00-1.46x), which misses the 10x
// target for 4-bit ReLU-like tensors; zstd reaches 15-19x. The link is the
// bottleneck wherever compression pays (zstd spends about 10 ms on a 1M
// element 4-bit tensor, which a 100 Mbit/s link spends on 125 KB), so zstd
// alone is kept; the cost model learns its ratio per arm. Without
// WithAllLitEntropyCompression the fastest level gave only 1.21-1.40x on
// half-normal 4-bit codes. Encode sends the payload uncompressed when
// compressing does not shrink it, so EncodedSize bounds every message.
//
// # Performance
//
// On this 2-core machine, one goroutine, a 1M-element ReLU-like tensor,
// per-tensor min/max scale, no compression (go run
// ./executor/packing/internal/packbench; medians by the thread's CPU time,
// as other builds share the machine): 8-bit encode 1.4-1.8 GB/s of float32
// and decode about 3 GB/s; 4-bit encode 1.5-2 GB/s and decode about 3 GB/s;
// copy() of the same buffer runs at 11-15 GB/s. Per-channel scales cost
// about the same; a clip percentile adds two passes (0.6-0.85 GB/s to
// encode); zstd runs at 0.25-0.6 GB/s to encode and 1-2 GB/s to decode;
// float16 at about 0.25 GB/s both ways (x448/float16 converts one value at a
// time). The hot loops are plain Go, no assembly, so the devices (arm64)
// run the same code: min/max on order-preserving integer keys (CMOVs
// instead of float branches), quantisation as int32(x*inv + zp + 0.5) with
// no division, math.Round or clamp on the min/max path (both ends are
// checked once per scale, including for FMA contraction), fused
// quantise-and-pack kernels per width, and SWAR packing of byte codes on the
// clamping path.
//
// # Caveats
//
// Buffer ownership. Encode appends to dst and returns the extended slice,
// which may be a new array when dst lacks capacity (EncodedSize says how
// much is enough); it does not keep data or dst. Decode writes into dst's
// array when its capacity holds the tensor and returns a slice of it, so the
// values alias dst; it does not keep src. The Header that Decode and
// ParseHeader return aliases src for its quantisation parameters: Param and
// Range read src, so keep src unchanged while the Header is in use (copy the
// parameters out otherwise). Header.Shape aliases the Header.
//
// All functions are safe for concurrent use. Compression shares one zstd
// encoder and decoder per process and pooled scratch buffers, so steady-state
// calls do not allocate; a pooled buffer is as large as the largest payload
// seen, until the garbage collector drops it.
//
// Decode trusts nothing: it rejects truncated, oversized, inconsistent or
// corrupt input with errors wrapping ErrTruncated, ErrCorrupt, ErrChecksum,
// ErrUnsupported or ErrTooLarge, never panics, and allocates nothing before
// checking the element count against DecodeOptions.MaxElements (64M by
// default); a compressed payload decompresses into a buffer of exactly the
// declared packed size and no further.
package packing
