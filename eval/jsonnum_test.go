package eval_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/dynoml/dyno/eval"
)

// samplesFrom turns fuzz bytes into a log of k arms: each sample takes
// four bytes (logged arm, propensity, cost, where the target puts its
// mass) and the logger's distribution is given on some records and not
// others, zeros included.
func samplesFrom(data []byte, k int) []eval.Sample {
	var out []eval.Sample
	for len(data) >= 4 {
		b := data[:4]
		data = data[4:]
		arm := int(b[0]) % k
		p := float64(b[1]%255+1) / 256 // (0, 1)
		if b[1] == 255 {
			p = 1
		}
		logger := make([]float64, k)
		logger[arm] = p
		if other := (arm + 1) % k; other != arm {
			logger[other] = 1 - p
		} else {
			logger[arm], p = 1, 1
		}
		target := make([]float64, k)
		switch t := int(b[3]) % (k + 1); {
		case t == k: // uniform
			for a := range target {
				target[a] = 1 / float64(k)
			}
		default: // deterministic, often on an arm the logger gave 0
			target[t] = 1
		}
		s := eval.Sample{Arm: arm, Propensity: p, Cost: float64(b[2]) * 3.5, Target: target, Model: make([]float64, k)}
		for a := range s.Model {
			s.Model[a] = float64((int(b[2])+a)%7) * 10
		}
		if b[0]&0x80 != 0 {
			s.Logger = logger
		}
		out = append(out, s)
	}
	return out
}

// FuzzResultJSON holds the promise of --json: whatever the log, every
// estimate and diagnostic marshals to valid JSON with no NaN or infinity,
// a missing figure is null with its reason, and the JSON reads back.
func FuzzResultJSON(f *testing.F) {
	f.Add([]byte{0, 128, 10, 0}, uint8(3), int8(0))                                       // one record: no analytic interval
	f.Add([]byte{0, 128, 10, 1, 1, 128, 20, 1}, uint8(3), int8(-1))                       // target on an arm the logger never chose
	f.Add([]byte{0x80, 200, 10, 2, 0x81, 10, 20, 2, 0x80, 255, 30, 3}, uint8(3), int8(5)) // zero-probability support known
	f.Add([]byte{0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0}, uint8(1), int8(3))            // one arm, all weights 1, zero cost
	f.Fuzz(func(t *testing.T, data []byte, arms uint8, boot int8) {
		k := int(arms)%6 + 1
		samples := samplesFrom(data, k)
		res, err := eval.Evaluate(samples, k, eval.Estimators, eval.EstimateOptions{Bootstrap: int(boot), Seed: 1})
		if errors.Is(err, eval.ErrNoSamples) {
			return
		}
		if err != nil {
			t.Fatalf("evaluate: %v", err)
		}
		out, err := json.Marshal(eval.TargetReport{Name: "x", Result: res, ArmShares: make([]float64, k)})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if !json.Valid(out) || bytes.Contains(out, []byte("NaN")) || bytes.Contains(out, []byte("Inf")) {
			t.Fatalf("invalid JSON: %s", out)
		}
		var back eval.TargetReport
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("read back: %v\n%s", err, out)
		}
		for i, e := range res.Estimates {
			got := back.Estimates[i]
			if same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }; !same(e.Value, got.Value) || !same(e.Lo, got.Lo) || !same(e.BootHi, got.BootHi) {
				t.Fatalf("%s read back as %+v, was %+v", e.Estimator, got, e)
			}
			if e.Verdict == "" {
				t.Fatalf("%s has no verdict", e.Estimator)
			}
			if math.IsNaN(e.Value) && (e.Verdict != eval.Unsupported || !strings.Contains(e.Reason, "no support")) {
				t.Fatalf("%s: no value, but verdict %s, reason %q", e.Estimator, e.Verdict, e.Reason)
			}
		}
	})
}
