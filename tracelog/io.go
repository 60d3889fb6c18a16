package tracelog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Writer appends records to a JSON Lines stream. It is not safe for
// concurrent use.
type Writer struct {
	w   *bufio.Writer
	buf bytes.Buffer
	enc *json.Encoder
	n   int64
}

// NewWriter writes to w; call Flush when done.
func NewWriter(w io.Writer) *Writer {
	tw := &Writer{w: bufio.NewWriterSize(w, 1<<16)}
	tw.enc = json.NewEncoder(&tw.buf)
	return tw
}

// Write validates r and appends it as one line.
func (w *Writer) Write(r *Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("record %d: %w", w.n+1, err)
	}
	w.buf.Reset()
	if err := w.enc.Encode(r); err != nil {
		return err
	}
	w.n++
	_, err := w.w.Write(w.buf.Bytes())
	return err
}

// Count is the number of records written.
func (w *Writer) Count() int64 { return w.n }

// Flush writes buffered lines to the underlying writer.
func (w *Writer) Flush() error { return w.w.Flush() }

// DefaultMaxLine bounds one line (and so the reader's memory): a record with
// the distribution over a few thousand arms fits.
const DefaultMaxLine = 1 << 20

// ReadOptions configures a Reader. The zero value stops at the first bad
// line and allows lines of DefaultMaxLine bytes.
type ReadOptions struct {
	// SkipBad counts and skips bad lines instead of stopping.
	SkipBad bool
	// MaxLine is the longest line accepted, in bytes.
	MaxLine int
}

// LineError is a bad line: its number and what was wrong.
type LineError struct {
	Line int64
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrLineTooLong is wrapped by the error for a line over MaxLine.
var ErrLineTooLong = errors.New("tracelog: line too long")

// Reader streams records from a JSON Lines source.
type Reader struct {
	r       *bufio.Reader
	opt     ReadOptions
	rec     Record
	repeats repeats
	line    int64
	read    int64
	skipped int64
	first   *LineError
	err     error
}

// NewReader reads from r.
func NewReader(r io.Reader, opt ReadOptions) *Reader {
	if opt.MaxLine <= 0 {
		opt.MaxLine = DefaultMaxLine
	}
	return &Reader{r: bufio.NewReaderSize(r, min(opt.MaxLine, 1<<20)), opt: opt}
}

// Next decodes the next good record; it returns false at the end or on the
// first bad line (unless SkipBad). Check Err after the loop.
func (r *Reader) Next() bool {
	for r.err == nil {
		line, err := r.readLine()
		if err != nil {
			if err != io.EOF {
				r.err = err
			}
			return false
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.rec = Record{Probs: r.rec.Probs[:0], Eligible: r.rec.Eligible[:0], AllowedBits: r.rec.AllowedBits[:0]}
		if err := decode(line, &r.rec, &r.repeats); err != nil {
			if r.fail(err) {
				continue
			}
			return false
		}
		if err := r.rec.Validate(); err != nil {
			if r.fail(err) {
				continue
			}
			return false
		}
		r.read++
		return true
	}
	return false
}

// fail records a bad line and reports whether reading goes on.
func (r *Reader) fail(err error) bool {
	le := &LineError{Line: r.line, Err: err}
	if !r.opt.SkipBad {
		r.err = le
		return false
	}
	r.skipped++
	if r.first == nil {
		r.first = le
	}
	return true
}

// readLine returns the next line; a line over MaxLine is consumed and
// reported as bad.
func (r *Reader) readLine() ([]byte, error) {
	for {
		r.line++
		var long []byte
		tooLong := false
		for {
			chunk, err := r.r.ReadSlice('\n')
			if err == bufio.ErrBufferFull || err == nil || (err == io.EOF && len(chunk) > 0) {
				if !tooLong && len(long)+len(chunk) > r.opt.MaxLine+1 {
					tooLong, long = true, nil
				}
				if err == bufio.ErrBufferFull {
					if !tooLong {
						long = append(long, chunk...)
					}
					continue
				}
				if tooLong {
					break
				}
				if long != nil {
					return append(long, chunk...), nil
				}
				return chunk, nil
			}
			if err == io.EOF && len(long) == 0 && !tooLong {
				return nil, io.EOF
			}
			if err != io.EOF {
				return nil, err
			}
			if tooLong {
				break
			}
			return long, nil
		}
		if !r.fail(fmt.Errorf("%w: over %d bytes", ErrLineTooLong, r.opt.MaxLine)) {
			return nil, r.err
		}
	}
}

// Record is the last record Next decoded; see the package caveats.
func (r *Reader) Record() *Record { return &r.rec }

// Err is the error that stopped reading, nil at a clean end.
func (r *Reader) Err() error { return r.err }

// Read is the number of good records returned.
func (r *Reader) Read() int64 { return r.read }

// Skipped is the number of bad lines skipped with SkipBad, and FirstBad
// the first of them.
func (r *Reader) Skipped() int64 { return r.skipped }

// FirstBad is the first bad line skipped, nil if none.
func (r *Reader) FirstBad() *LineError { return r.first }
