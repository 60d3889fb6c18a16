// Package bwtrace reads bandwidth traces in the format of shared/traces
// ("<seconds> <Mbit/s>" a line) and answers what a link following one
// delivers: the throughput at a time, and when a transfer started at a time
// ends. The simulator and the executors' emulated links both use it.
package bwtrace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every trace failure.
var ErrInvalid = errors.New("invalid bandwidth trace")

// Trace is a bandwidth trace in the format of shared/traces: one sample a
// line, "<seconds> <Mbit/s>", timestamps increasing. A sample holds until
// the next one; the trace loops when it runs out.
type Trace struct {
	Name  string
	times []float64
	mbps  []float64
	// period is the loop length: the last timestamp plus the mean gap.
	period float64
}

// ReadTrace parses a trace. Blank lines and lines starting with # are
// skipped; anything else that is not two finite numbers, a negative
// throughput or a timestamp that does not increase is an error naming the
// line.
func ReadTrace(name string, r io.Reader) (*Trace, error) {
	t := &Trace{Name: name}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: want two columns \"<seconds> <Mbit/s>\", got %d", ErrInvalid, name, line, len(f))
		}
		ts, err1 := strconv.ParseFloat(f[0], 64)
		bw, err2 := strconv.ParseFloat(f[1], 64)
		switch {
		case err1 != nil || math.IsNaN(ts) || math.IsInf(ts, 0):
			return nil, fmt.Errorf("%w: %s:%d: seconds %q is not a finite number", ErrInvalid, name, line, f[0])
		case err2 != nil || math.IsNaN(bw) || math.IsInf(bw, 0) || bw < 0:
			return nil, fmt.Errorf("%w: %s:%d: throughput %q is not a finite non-negative number", ErrInvalid, name, line, f[1])
		case len(t.times) > 0 && ts <= t.times[len(t.times)-1]:
			return nil, fmt.Errorf("%w: %s:%d: timestamp %g does not increase", ErrInvalid, name, line, ts)
		}
		t.times = append(t.times, ts)
		t.mbps = append(t.mbps, bw)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	if len(t.times) < 2 {
		return nil, fmt.Errorf("%w: %s: %d samples, need at least two", ErrInvalid, name, len(t.times))
	}
	n := len(t.times)
	span := t.times[n-1] - t.times[0]
	t.period = span + span/float64(n-1)
	return t, nil
}

// LoadTrace reads a trace file.
func LoadTrace(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadTrace(path, f)
}

// Period is the length of one loop, in seconds.
func (t *Trace) Period() float64 { return t.period }

// Mean is the time-weighted mean throughput over one loop, Mbit/s.
func (t *Trace) Mean() float64 {
	var s float64
	for i := range t.times {
		next := t.times[0] + t.period
		if i+1 < len(t.times) {
			next = t.times[i+1]
		}
		s += t.mbps[i] * (next - t.times[i])
	}
	return s / t.period
}

// At returns the throughput at sec seconds from the trace's start, looping.
func (t *Trace) At(sec float64) float64 {
	x := math.Mod(sec, t.period)
	if x < 0 {
		x += t.period
	}
	i, _ := t.sample(x)
	return t.mbps[i]
}

// sample returns the index of the sample in force at x seconds into one
// loop (x in [0, period)), and when it ends, in the same frame.
func (t *Trace) sample(x float64) (int, float64) {
	x += t.times[0]
	i := sort.SearchFloat64s(t.times, x)
	if i == len(t.times) || t.times[i] > x {
		i--
	}
	if i < 0 {
		i = 0
	}
	end := t.times[0] + t.period
	if i+1 < len(t.times) {
		end = t.times[i+1]
	}
	return i, end - t.times[0]
}

// TransferEnd returns when a transfer of bits that starts sec seconds into
// the trace ends, the link delivering each sample's throughput while it
// holds. A trace whose every sample is zero never delivers: that is an
// error, as is a negative or non-finite size.
func (t *Trace) TransferEnd(sec, bits float64) (float64, error) {
	if math.IsNaN(bits) || math.IsInf(bits, 0) || bits < 0 || math.IsNaN(sec) || math.IsInf(sec, 0) {
		return 0, fmt.Errorf("%w: %s: transfer of %g bits at %g s", ErrInvalid, t.Name, bits, sec)
	}
	if bits == 0 {
		return sec, nil
	}
	mean := t.Mean()
	if mean <= 0 {
		return 0, fmt.Errorf("%w: %s: the trace never delivers anything", ErrInvalid, t.Name)
	}
	// Whole loops first, so that a large transfer does not walk the trace
	// sample by sample.
	perLoop := mean * 1e6 * t.period
	loops := math.Floor(bits / perLoop)
	if loops > 0 {
		bits -= loops * perLoop
		sec += loops * t.period
	}
	base := math.Floor(sec/t.period) * t.period
	x := sec - base
	for bits > 0 {
		i, end := t.sample(x)
		rate := t.mbps[i] * 1e6
		if rate > 0 && rate*(end-x) >= bits {
			return base + x + bits/rate, nil
		}
		bits -= rate * (end - x)
		x = end
		if x >= t.period {
			base += t.period
			x = 0
		}
	}
	return base + x, nil
}
