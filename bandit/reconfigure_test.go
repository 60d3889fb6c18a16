package bandit_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// twins trains a policy and returns it and a copy of it (through its
// serialised state), which choose alike until one is changed.
func twins(t *testing.T, kind string, cm *costmodel.Model) (bandit.Policy, bandit.Policy) {
	t.Helper()
	p := newPolicy(t, kind, cm, 3)
	(&world{cm: cm, slow: 1.5, noise: 0.1, rng: rand.New(rand.NewPCG(4, 4))}).run(t, p, 800)
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := bandit.Restore(cm, data)
	if err != nil {
		t.Fatal(err)
	}
	return p, q
}

// A pin, then its removal, leaves every policy choosing exactly as a twin
// that was never pinned, and an objective change leaves dyno's posterior
// as it was.
func TestReconfigureKeepsWhatWasLearned(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	pin := cm.Arms()[5]
	rng := rand.New(rand.NewPCG(8, 8))
	for _, kind := range bandit.Names() {
		t.Run(kind, func(t *testing.T) {
			p, twin := twins(t, kind, cm)
			r, ok := p.(bandit.Reconfigurer)
			if !ok {
				t.Fatalf("%s does not implement Reconfigurer", kind)
			}
			o := minLatency
			if err := r.Reconfigure(bandit.Config{Objective: o, Pin: &pin}); err != nil {
				t.Fatal(err)
			}
			var d, e bandit.Decision
			c := costmodel.Conditions{BandwidthMbps: 5, RTTMs: 30}
			if err := p.Choose(c, &d); err != nil || d.Arm != pin || d.Prob != 1 {
				t.Fatalf("pinned: %v %v p=%g", err, d.Arm, d.Prob)
			}
			if err := r.Reconfigure(bandit.Config{Objective: o}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 50; i++ {
				c := costmodel.Conditions{BandwidthMbps: 1 + 30*rng.Float64(), RTTMs: 10 + 50*rng.Float64()}
				if err := p.Choose(c, &d); err != nil {
					t.Fatal(err)
				}
				if err := twin.Choose(c, &e); err != nil {
					t.Fatal(err)
				}
				if d.Index != e.Index || !reflect.DeepEqual(d.Probs, e.Probs) {
					t.Fatalf("after unpin, choice %v (%g) differs from the twin's %v (%g)", d.Arm, d.Prob, e.Arm, e.Prob)
				}
			}
		})
	}
	// An objective change and back leaves dyno's whole state, every
	// regression, residual and accuracy count, as the twin's, byte for
	// byte.
	p, twin := twins(t, bandit.NameDyno, cm)
	throughput := minLatency
	throughput.Kind = costmodel.MaxThroughput
	for _, o := range []costmodel.Objective{throughput, minLatency} {
		if err := p.(bandit.Reconfigurer).Reconfigure(bandit.Config{Objective: o}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b, err := twin.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("an objective change and back altered dyno's state")
	}
}

// What cannot be applied in place says so, and a refused change changes
// nothing.
func TestReconfigureRefusals(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	throughput := costmodel.Objective{Kind: costmodel.MaxThroughput, AccuracyFloor: minLatency.AccuracyFloor}
	for _, kind := range []string{bandit.NameEGreedy, bandit.NameANS} {
		p, _ := twins(t, kind, cm)
		if err := p.(bandit.Reconfigurer).Reconfigure(bandit.Config{Objective: throughput}); !errors.Is(err, bandit.ErrRebuild) {
			t.Errorf("%s: objective change: %v, want ErrRebuild", kind, err)
		}
		floor := minLatency
		floor.AccuracyFloor = 0.6
		if err := p.(bandit.Reconfigurer).Reconfigure(bandit.Config{Objective: floor}); err != nil {
			t.Errorf("%s: a new floor costs nothing differently: %v", kind, err)
		}
	}
	p, twin := twins(t, bandit.NameDyno, cm)
	unknown := costmodel.Arm{Split: 99, Bits: 8}
	for _, cfg := range []bandit.Config{
		{Objective: minLatency, Pin: &unknown},
		{Objective: minLatency, Allowed: []bool{true}},
		{Objective: costmodel.Objective{Kind: "fastest"}},
	} {
		if err := p.(bandit.Reconfigurer).Reconfigure(cfg); !errors.Is(err, bandit.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", cfg, err)
		}
	}
	var d, e bandit.Decision
	c := costmodel.Conditions{BandwidthMbps: 4, RTTMs: 20}
	if err := p.Choose(c, &d); err != nil {
		t.Fatal(err)
	}
	if err := twin.Choose(c, &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Probs, e.Probs) {
		t.Error("refused changes altered the policy")
	}
}
