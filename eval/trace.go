package eval

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

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
			return nil, fmt.Errorf("%w: %s:%d: want two columns \"<seconds> <Mbit/s>\", got %d", ErrInvalidTrace, name, line, len(f))
		}
		ts, err1 := strconv.ParseFloat(f[0], 64)
		bw, err2 := strconv.ParseFloat(f[1], 64)
		switch {
		case err1 != nil || math.IsNaN(ts) || math.IsInf(ts, 0):
			return nil, fmt.Errorf("%w: %s:%d: seconds %q is not a finite number", ErrInvalidTrace, name, line, f[0])
		case err2 != nil || math.IsNaN(bw) || math.IsInf(bw, 0) || bw < 0:
			return nil, fmt.Errorf("%w: %s:%d: throughput %q is not a finite non-negative number", ErrInvalidTrace, name, line, f[1])
		case len(t.times) > 0 && ts <= t.times[len(t.times)-1]:
			return nil, fmt.Errorf("%w: %s:%d: timestamp %g does not increase", ErrInvalidTrace, name, line, ts)
		}
		t.times = append(t.times, ts)
		t.mbps = append(t.mbps, bw)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidTrace, name, err)
	}
	if len(t.times) < 2 {
		return nil, fmt.Errorf("%w: %s: %d samples, need at least two", ErrInvalidTrace, name, len(t.times))
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
	x += t.times[0]
	i := sort.SearchFloat64s(t.times, x)
	if i == len(t.times) || t.times[i] > x {
		i--
	}
	if i < 0 {
		i = 0
	}
	return t.mbps[i]
}
