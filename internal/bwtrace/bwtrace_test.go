package bwtrace_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/dynoml/dyno/internal/bwtrace"
)

func TestReadTrace(t *testing.T) {
	tr, err := bwtrace.ReadTrace("t", strings.NewReader("# a comment\n0.0 1.0\n1.0\t2.0\n\n3.0 4.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	// three samples over 3 s, mean gap 1.5 s: a loop of 4.5 s
	if p := tr.Period(); p != 4.5 {
		t.Fatalf("period %g, want 4.5", p)
	}
	cases := []struct {
		sec, want float64
	}{
		{0, 1}, {0.99, 1}, {1, 2}, {2.9, 2}, {3, 4}, {4.4, 4}, {4.5, 1}, {5.6, 2}, {-0.5, 4},
	}
	for _, c := range cases {
		if got := tr.At(c.sec); got != c.want {
			t.Errorf("At(%g) = %g, want %g", c.sec, got, c.want)
		}
	}
	if m := tr.Mean(); m != (1*1+2*2+4*1.5)/4.5 {
		t.Errorf("mean %g", m)
	}
}

func TestReadTraceErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"one column", "0 1\n1\n", ":2: want two columns"},
		{"not a number", "0 1\nx 2\n", ":2: seconds \"x\""},
		{"negative throughput", "0 1\n1 -2\n", ":2: throughput \"-2\""},
		{"NaN throughput", "0 1\n1 NaN\n", ":2: throughput"},
		{"time goes back", "0 1\n2 1\n1 1\n", ":3: timestamp 1 does not increase"},
		{"one sample", "0 1\n", "need at least two"},
		{"empty", "", "need at least two"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bwtrace.ReadTrace("t", strings.NewReader(tc.in))
			if !errors.Is(err, bwtrace.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, bwtrace.ErrInvalid, tc.want)
			}
		})
	}
}

// TransferEnd integrates the throughput: a transfer crosses samples and
// loops, and waits through samples that deliver nothing.
func TestTransferEnd(t *testing.T) {
	// 1 Mbit/s for 1 s, 0 for 1 s, 2 Mbit/s for 1 s; a loop of 3 s.
	tr, err := bwtrace.ReadTrace("t", strings.NewReader("0 1\n1 0\n2 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ sec, bits, want float64 }{
		{0, 0, 0},
		{0, 0.5e6, 0.5},
		{0.5, 1e6, 2.25},  // 0.5 Mbit by 1 s, nothing until 2 s, 0.5 Mbit at 2 Mbit/s
		{1.2, 2e6, 3},     // waits out the zero, then a full second at 2
		{2.5, 2e6, 4},     // 1 Mbit to 3 s, 1 Mbit at 1 Mbit/s from the loop start
		{0, 3e6 * 10, 30}, // ten whole loops of 3 Mbit each
		{0, 3e6*10 + 1e6, 31},
	}
	for _, c := range cases {
		got, err := tr.TransferEnd(c.sec, c.bits)
		if err != nil || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("TransferEnd(%g, %g) = %g, %v; want %g", c.sec, c.bits, got, err, c.want)
		}
	}
	if _, err := tr.TransferEnd(0, math.NaN()); !errors.Is(err, bwtrace.ErrInvalid) {
		t.Errorf("NaN bits: %v", err)
	}
	dead, err := bwtrace.ReadTrace("dead", strings.NewReader("0 0\n1 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.TransferEnd(0, 1); !errors.Is(err, bwtrace.ErrInvalid) || !strings.Contains(err.Error(), "never delivers") {
		t.Errorf("dead link: %v", err)
	}
}
