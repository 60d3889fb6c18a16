package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Trace is one record of the trace log: a report as the controller applied
// it. Seq numbers the log from 1 without gaps (until retention deletes the
// oldest records).
type Trace struct {
	Seq              uint64
	ReceivedUnixNano int64
	Executor         string
	Key              string
	// ReportSeq is the executor's own number of the report.
	ReportSeq     uint64
	RequestID     string
	StartUnixNano int64
	Split, Bits   int
	Explore       bool
	Propensity    float64
	PolicyVersion uint64
	Conditions    TraceConditions
	Stages        TraceStages
	Bytes         float64
	Accuracy      float64
	HasAccuracy   bool
	// Eligible is a bitset over the key's arms.
	Eligible []byte
	// PolicyKind is the kind of policy that chose ("" if not said).
	PolicyKind string
	// Cost is the objective's cost of the stages when the report arrived.
	Cost float64
	// Probs is the distribution the arm was drawn from, when sent.
	Probs []float64
	// AllowedBits are the precisions of the manifest the arm indices
	// (Eligible, Probs) refer to, as the executor reported them; empty when
	// it did not.
	AllowedBits []int
}

// TraceConditions are the conditions measured before the request.
type TraceConditions struct {
	BandwidthMbps, RTTMs, CloudQueueMs, CloudSlowdown, DeviceSlowdown float64
}

// TraceStages are the stage times measured for the request, ms.
type TraceStages struct {
	DeviceMs, PackMs, NetworkMs, RTTMs, CloudQueueMs, CloudMs, UnpackMs, LatencyMs float64
}

// traceFormat is the first byte of every encoded trace.
const traceFormat = 1

// floats lists the trace's float fields in encoding order; bit i of the
// encoded presence mask says whether field i is non-zero and stored.
func (t *Trace) floats() [17]*float64 {
	c, s := &t.Conditions, &t.Stages
	return [17]*float64{&t.Propensity, &c.BandwidthMbps, &c.RTTMs, &c.CloudQueueMs, &c.CloudSlowdown, &c.DeviceSlowdown,
		&s.DeviceMs, &s.PackMs, &s.NetworkMs, &s.RTTMs, &s.CloudQueueMs, &s.CloudMs, &s.UnpackMs, &s.LatencyMs, &t.Bytes, &t.Accuracy, &t.Cost}
}

// AppendEncoded appends the encoding of t (without Seq, which is the record's
// key) to dst. It is safe to call concurrently on different traces, so that
// the encoding can happen outside the write transaction.
func (t *Trace) AppendEncoded(dst []byte) []byte {
	dst = append(dst, traceFormat)
	flags := byte(0)
	if t.Explore {
		flags |= 1
	}
	if t.HasAccuracy {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, t.ReceivedUnixNano)
	dst = binary.AppendVarint(dst, t.StartUnixNano)
	dst = binary.AppendUvarint(dst, t.ReportSeq)
	dst = binary.AppendUvarint(dst, t.PolicyVersion)
	dst = binary.AppendUvarint(dst, uint64(t.Split))
	dst = binary.AppendUvarint(dst, uint64(t.Bits))
	dst = appendString(dst, t.Executor)
	dst = appendString(dst, t.Key)
	dst = appendString(dst, t.RequestID)
	dst = appendString(dst, string(t.Eligible))
	dst = appendString(dst, t.PolicyKind)
	fs := t.floats()
	var mask uint32
	for i, f := range fs {
		if *f != 0 {
			mask |= 1 << i
		}
	}
	dst = binary.BigEndian.AppendUint32(dst, mask)
	for _, f := range fs {
		if *f != 0 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*f))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.Probs)))
	for _, p := range t.Probs {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(p))
	}
	// An optional tail, so that records written without it read the same.
	if len(t.AllowedBits) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(t.AllowedBits)))
		for _, b := range t.AllowedBits {
			dst = binary.AppendUvarint(dst, uint64(b))
		}
	}
	return dst
}

// maxProbs bounds the distribution a decoded trace may hold.
const maxProbs = 1 << 16

// Bounds of a trace's allowed bits: how many precisions, and the widest.
const (
	maxAllowedBits = 16
	maxBitWidth    = 64
)

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeTrace decodes a record written by AppendEncoded. It never panics,
// whatever b holds.
func DecodeTrace(seq uint64, b []byte) (Trace, error) {
	t := Trace{Seq: seq}
	d := decoder{b: b}
	if f := d.byte(); f != traceFormat {
		return t, fmt.Errorf("%w: trace %d: format %d, this build reads %d", ErrCorruptRecord, seq, f, traceFormat)
	}
	flags := d.byte()
	t.Explore, t.HasAccuracy = flags&1 != 0, flags&2 != 0
	t.ReceivedUnixNano = d.varint()
	t.StartUnixNano = d.varint()
	t.ReportSeq = d.uvarint()
	t.PolicyVersion = d.uvarint()
	t.Split = int(d.small())
	t.Bits = int(d.small())
	t.Executor = d.string()
	t.Key = d.string()
	t.RequestID = d.string()
	if e := d.string(); e != "" {
		t.Eligible = []byte(e)
	}
	t.PolicyKind = d.string()
	mask := d.uint32()
	for i, f := range t.floats() {
		if mask&(1<<i) != 0 {
			*f = math.Float64frombits(d.uint64())
		}
	}
	if n := d.uvarint(); n > 0 {
		if n > maxProbs || n*8 > uint64(len(d.b)) {
			d.fail("probs")
		} else {
			t.Probs = make([]float64, n)
			for i := range t.Probs {
				t.Probs[i] = math.Float64frombits(d.uint64())
			}
		}
	}
	if d.err == nil && len(d.b) > 0 {
		// The tail: the allowed bits, never written empty.
		n := d.uvarint()
		if n == 0 || n > maxAllowedBits {
			d.fail("allowed bits")
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			b := d.uvarint()
			if b == 0 || b > maxBitWidth {
				d.fail("allowed bits")
			}
			t.AllowedBits = append(t.AllowedBits, int(b))
		}
	}
	if d.err != nil {
		return t, fmt.Errorf("%w: trace %d: %v", ErrCorruptRecord, seq, d.err)
	}
	if len(d.b) != 0 {
		return t, fmt.Errorf("%w: trace %d: %d trailing bytes", ErrCorruptRecord, seq, len(d.b))
	}
	return t, nil
}

// decoder reads a record; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or invalid %s", what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// small reads a uvarint that must fit an int32.
func (d *decoder) small() uint64 {
	v := d.uvarint()
	if v > math.MaxInt32 {
		d.fail("small integer")
		return 0
	}
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) uint32() uint32 {
	if len(d.b) < 4 {
		d.fail("uint32")
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail("uint64")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// The trace log keeps traces in blocks: each key is the sequence number
// of a block's first trace (8 bytes, big-endian), each value holds
// consecutive traces (a uvarint count, then each trace's length as a
// uvarint and its encoding). A block is what one batch of reports added, so
// that one bbolt Put covers a whole batch; readers and retention see single
// traces.

// AppendTraces appends encoded traces (Trace.AppendEncoded) to the log as
// one block and returns the sequence number of the first; the others follow
// it without gaps. The encodings are copied.
func (t *Tx) AppendTraces(encoded [][]byte) (uint64, error) {
	if len(encoded) == 0 {
		return 0, nil
	}
	b := t.bucket(bucketTraces)
	// Appends only: full pages waste nothing.
	b.FillPercent = 1.0
	first := b.Sequence() + 1
	if err := b.SetSequence(first + uint64(len(encoded)) - 1); err != nil {
		return 0, err
	}
	n := binary.MaxVarintLen64
	for _, e := range encoded {
		n += binary.MaxVarintLen64 + len(e)
	}
	v := make([]byte, 0, n)
	v = binary.AppendUvarint(v, uint64(len(encoded)))
	for _, e := range encoded {
		v = binary.AppendUvarint(v, uint64(len(e)))
		v = append(v, e...)
	}
	if err := b.Put(be64(first), v); err != nil {
		return 0, fmt.Errorf("append traces %d..%d: %w", first, first+uint64(len(encoded))-1, err)
	}
	return first, nil
}

// AppendTrace appends one encoded trace and returns its sequence number.
func (t *Tx) AppendTrace(encoded []byte) (uint64, error) {
	return t.AppendTraces([][]byte{encoded})
}

// block is one decoded block header: its first sequence number and the
// encodings of its traces (slices of the bucket's memory).
type block struct {
	first   uint64
	entries [][]byte
}

// maxBlock bounds the traces a decoded block may claim.
const maxBlock = 1 << 20

func decodeBlock(k, v []byte) (block, error) {
	if len(k) != 8 {
		return block{}, fmt.Errorf("%w: trace block key of %d bytes", ErrCorruptRecord, len(k))
	}
	bl := block{first: binary.BigEndian.Uint64(k)}
	d := decoder{b: v}
	n := d.uvarint()
	if n > maxBlock || d.err != nil {
		return bl, fmt.Errorf("%w: trace block %d: count %d", ErrCorruptRecord, bl.first, n)
	}
	bl.entries = make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		m := d.uvarint()
		if d.err != nil || m > uint64(len(d.b)) {
			return bl, fmt.Errorf("%w: trace block %d: entry %d truncated", ErrCorruptRecord, bl.first, i)
		}
		bl.entries = append(bl.entries, d.b[:m])
		d.b = d.b[m:]
	}
	if len(d.b) != 0 {
		return bl, fmt.Errorf("%w: trace block %d: %d trailing bytes", ErrCorruptRecord, bl.first, len(d.b))
	}
	return bl, nil
}

// blockCount reads only the count of a block.
func blockCount(v []byte) uint64 {
	n, m := binary.Uvarint(v)
	if m <= 0 {
		return 0
	}
	return n
}

// TraceRange describes the trace log: the first and last sequence numbers
// held (both zero when empty) and the count.
type TraceRange struct {
	First, Last, Count uint64
	// NextSeq is the number the next trace will get.
	NextSeq uint64
}

// Traces returns the range of the trace log.
func (t *Tx) Traces() TraceRange {
	b := t.bucket(bucketTraces)
	r := TraceRange{NextSeq: b.Sequence() + 1}
	c := b.Cursor()
	first, _ := c.First()
	last, lv := c.Last()
	if len(first) == 8 && len(last) == 8 {
		r.First = binary.BigEndian.Uint64(first)
		r.Last = binary.BigEndian.Uint64(last) + max(blockCount(lv), 1) - 1
		// Sequence numbers have no gaps: retention deletes from the front.
		r.Count = r.Last - r.First + 1
	}
	return r
}

// ForEachTrace calls fn with every trace of sequence number at least from,
// in order, until fn returns false or an error. Records that do not decode
// stop the walk with ErrCorruptRecord.
func (t *Tx) ForEachTrace(from uint64, fn func(Trace) (bool, error)) error {
	c := t.bucket(bucketTraces).Cursor()
	// The block holding from may start before it.
	k, v := c.Seek(be64(from))
	switch {
	case k == nil:
		k, v = c.Last()
	case binary.BigEndian.Uint64(k) > from:
		if pk, pv := c.Prev(); pk != nil {
			k, v = pk, pv
		} else {
			k, v = c.First()
		}
	}
	for ; k != nil; k, v = c.Next() {
		bl, err := decodeBlock(k, v)
		if err != nil {
			return err
		}
		for i, e := range bl.entries {
			seq := bl.first + uint64(i)
			if seq < from {
				continue
			}
			tr, err := DecodeTrace(seq, e)
			if err != nil {
				return err
			}
			more, err := fn(tr)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// Retention bounds the trace log. Zero values mean no bound.
type Retention struct {
	MaxCount uint64
	MaxAge   time.Duration
}

// PruneTraces deletes the oldest traces beyond the retention, at most limit
// of them in this transaction (so that one commit stays short), and returns
// how many it deleted. It deletes whole blocks: a count bound may keep up to
// a block's worth more.
func (t *Tx) PruneTraces(r Retention, now time.Time, limit int) (int, error) {
	b := t.bucket(bucketTraces)
	rng := t.Traces()
	var cutoff int64
	if r.MaxAge > 0 {
		cutoff = now.Add(-r.MaxAge).UnixNano()
	}
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil && n < limit; k, v = c.First() {
		count := max(blockCount(v), 1)
		over := r.MaxCount > 0 && rng.Count-uint64(n) >= r.MaxCount+count
		old := false
		if !over && cutoff != 0 {
			// Every trace of a block arrived with one batch: the first
			// one's received time, the first varint after its two
			// leading bytes, stands for all.
			bl, err := decodeBlock(k, v)
			if err == nil && len(bl.entries) > 0 && len(bl.entries[0]) > 2 {
				ts, m := binary.Varint(bl.entries[0][2:])
				old = m > 0 && ts < cutoff
			}
		}
		if !over && !old {
			break
		}
		if err := c.Delete(); err != nil {
			return n, err
		}
		n += int(count)
	}
	return n, nil
}
