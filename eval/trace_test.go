package eval_test

import (
	"strings"
	"testing"

	"github.com/dynoml/dyno/eval"
)

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
