package eval_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dynoml/dyno/eval"
)

func TestReadTrace(t *testing.T) {
	tr, err := eval.ReadTrace("t", strings.NewReader("# a comment\n0.0 1.0\n1.0\t2.0\n\n3.0 4.0\n"))
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
			_, err := eval.ReadTrace("t", strings.NewReader(tc.in))
			if !errors.Is(err, eval.ErrInvalidTrace) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, eval.ErrInvalidTrace, tc.want)
			}
		})
	}
}

// TestSharedTraces reads every trace of shared/traces, when present.
func TestSharedTraces(t *testing.T) {
	ss, err := eval.LoadScenarios("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		w, err := s.Build()
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if m := w.Trace.Mean(); !(m > 0) {
			t.Errorf("%s: trace mean %g", s.Name, m)
		}
	}
}

func FuzzReadTrace(f *testing.F) {
	f.Add("0.0 1.0\n1.0 2.0\n")
	f.Add("0 1\n1 -2\n")
	f.Add("# c\n0\t0.5\n5.0\t0.7\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := eval.ReadTrace("fuzz", strings.NewReader(in))
		if err != nil {
			return
		}
		for _, s := range []float64{0, 1.5, 1e6, -3} {
			if v := tr.At(s); v < 0 {
				t.Fatalf("At(%g) = %g", s, v)
			}
		}
	})
}
