package store

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Window remembers which report sequence numbers of one executor have been
// applied, so that a resent report is acknowledged without being applied
// twice. Every number up to Through is applied; Above holds the applied
// numbers beyond Through, sorted, while reports arrive out of order. An
// executor that numbers its reports 1, 2, 3... and resends in order keeps
// Above empty, so the window costs 8 bytes per executor.
type Window struct {
	Through uint64
	Above   []uint64
}

// MaxAbove bounds Window.Above: when reports skip a number and this many
// later ones arrive, the missing number is given up for lost and the window
// moves past it (a report with that number arriving later is taken for a
// duplicate).
const MaxAbove = 4096

// MaxSeqStep is how far beyond Through a report's sequence number may be.
// An executor numbers its reports 1, 2, 3...; a number further ahead is
// refused rather than taken, since it would move the window past reports
// still to come (they would be taken for duplicates).
const MaxSeqStep = 1 << 20

// Seen reports whether seq has been applied.
func (w *Window) Seen(seq uint64) bool {
	if seq <= w.Through {
		return true
	}
	_, found := slices.BinarySearch(w.Above, seq)
	return found
}

// Add marks seq applied. It reports false if it already was.
func (w *Window) Add(seq uint64) bool {
	if seq <= w.Through {
		return false
	}
	if seq == w.Through+1 && len(w.Above) == 0 {
		w.Through = seq
		return true
	}
	i, found := slices.BinarySearch(w.Above, seq)
	if found {
		return false
	}
	w.Above = slices.Insert(w.Above, i, seq)
	w.compact()
	return true
}

func (w *Window) compact() {
	n := 0
	for n < len(w.Above) && w.Above[n] == w.Through+1 {
		w.Through++
		n++
	}
	if len(w.Above)-n > MaxAbove {
		// Give up on the gap before the oldest number held.
		w.Through = w.Above[n]
		n++
		for n < len(w.Above) && w.Above[n] == w.Through+1 {
			w.Through++
			n++
		}
	}
	if n > 0 {
		w.Above = append(w.Above[:0], w.Above[n:]...)
	}
}

func (w *Window) encode() []byte {
	b := make([]byte, 0, 8+8*len(w.Above))
	b = binary.BigEndian.AppendUint64(b, w.Through)
	for _, s := range w.Above {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

func decodeWindow(b []byte) (Window, error) {
	if len(b) < 8 || len(b)%8 != 0 {
		return Window{}, fmt.Errorf("%w: dedup window of %d bytes", ErrCorruptRecord, len(b))
	}
	w := Window{Through: binary.BigEndian.Uint64(b)}
	for i := 8; i < len(b); i += 8 {
		w.Above = append(w.Above, binary.BigEndian.Uint64(b[i:]))
	}
	return w, nil
}

// Window returns the report window of an executor (empty if it has none).
func (t *Tx) Window(executor string) (Window, error) {
	v := t.bucket(bucketDedup).Get([]byte(executor))
	if v == nil {
		return Window{}, nil
	}
	w, err := decodeWindow(v)
	if err != nil {
		return w, fmt.Errorf("window of %s: %w", executor, err)
	}
	return w, nil
}

// ReportCount is how many reports of an executor have been applied, as
// committed with the window.
func (t *Tx) ReportCount(executor string) (uint64, error) {
	v := t.bucket(bucketCounters).Get([]byte(executor))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: report count of %s: %d bytes", ErrCorruptRecord, executor, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// PutReportCount stores the count of applied reports of an executor.
func (t *Tx) PutReportCount(executor string, n uint64) error {
	return t.bucket(bucketCounters).Put([]byte(executor), be64(n))
}

// PutWindow stores the report window of an executor.
func (t *Tx) PutWindow(executor string, w *Window) error {
	return t.bucket(bucketDedup).Put([]byte(executor), w.encode())
}
