package bandit_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dynoml/dyno/bandit"
)

// TestExploreFloor checks the floor's promises while dyno learns: every arm
// the accuracy and mask allow keeps a probability of at least
// ExploreFloor/m scaled by how much costlier it is than the best (so the
// floor costs at most ExploreFloor of the best arm's expected cost), the
// distribution sums to one, masked arms stay at zero, the floor survives a
// round trip through the published bytes, and without it dyno prunes arms
// to exactly zero.
func TestExploreFloor(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	allowed := make([]bool, len(cm.Arms()))
	for i := range allowed {
		allowed[i] = i%4 != 1
	}
	for _, floor := range []float64{0, 0.2, -1} {
		// safe exploration off: it gives held-out arms probability on
		// purpose (TestSafeExploration)
		p, err := bandit.New(bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Seed: 3, Allowed: allowed, Dyno: bandit.DynoConfig{ExploreFloor: floor, BaselineFloor: floor / 10, SafeBudget: -1}})
		if err != nil {
			t.Fatal(err)
		}
		want := floor
		if floor == 0 {
			want = bandit.DefaultExploreFloor
		}
		w := &world{cm: cm, slow: 1.5, noise: 0.1, rng: rand.New(rand.NewPCG(3, 1))}
		var baselines []bandit.Policy
		for _, kind := range []string{bandit.NameStatic, bandit.NameDevice, bandit.NameCloud} {
			b, err := bandit.New(kind, cm, bandit.Config{Objective: minLatency, Allowed: allowed})
			if err != nil {
				t.Fatal(err)
			}
			baselines = append(baselines, b)
		}
		var d, bd bandit.Decision
		zeros := 0
		for n := 0; n < 400; n++ {
			if n == 200 {
				// the floor travels in the published policy
				blob, err := p.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if p, err = bandit.Restore(cm, blob); err != nil {
					t.Fatal(err)
				}
			}
			c := w.conditions()
			if err := p.Choose(c, &d); err != nil {
				t.Fatal(err)
			}
			dy := p.(*bandit.Dyno)
			var sum, regret, best float64
			m := 0
			best = math.Inf(1)
			costs := make([]float64, len(d.Probs))
			for i := range d.Probs {
				var ok bool
				_, costs[i], ok = dy.Predict(c, i)
				if ok {
					m++
					best = math.Min(best, costs[i])
				}
			}
			for i, q := range d.Probs {
				sum += q
				_, _, ok := dy.Predict(c, i)
				if !ok {
					if q != 0 {
						t.Fatalf("floor %g, request %d: ineligible arm %v has probability %g", floor, n, cm.Arms()[i], q)
					}
					continue
				}
				if q == 0 {
					zeros++
				}
				if want > 0 {
					lo := want / float64(m) * math.Min(1, best/costs[i])
					if q < lo*(1-1e-9) {
						t.Fatalf("floor %g, request %d: arm %v has probability %g, below its floor %g", floor, n, cm.Arms()[i], q, lo)
					}
					regret += lo * (costs[i] - best)
				}
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Fatalf("floor %g: probabilities sum to %g", floor, sum)
			}
			// each baseline's arm keeps the baseline floor, lowered so
			// that it costs at most a tenth of the best cost
			for _, b := range baselines {
				if err := b.Choose(c, &bd); err != nil {
					t.Fatal(err)
				}
				if _, _, ok := dy.Predict(c, bd.Index); !ok || want < 0 {
					continue
				}
				g := floor / 10
				if floor == 0 {
					g = bandit.DefaultBaselineFloor
				}
				if gap := costs[bd.Index] - best; gap > 0 {
					g = math.Min(g, 0.1*best/gap)
				}
				if q := d.Probs[bd.Index]; q < g*(1-1e-9) {
					t.Fatalf("floor %g, request %d: %s's arm %v has probability %g, below its floor %g", floor, n, b.Name(), bd.Arm, q, g)
				}
			}
			if want > 0 && regret > want*best*(1+1e-9) {
				t.Fatalf("floor %g: the floor's cost %g exceeds %g of the best cost %g", floor, regret, want, best)
			}
			if err := p.Learn(w.report(c, &d)); err != nil {
				t.Fatal(err)
			}
		}
		if want > 0 && zeros > 0 {
			t.Errorf("floor %g: %d eligible arms had probability 0", floor, zeros)
		}
		if want < 0 && zeros == 0 {
			t.Errorf("floor off: no eligible arm was ever pruned to 0, the test shows nothing")
		}
	}
}

func TestExploreFloorRejectsBadValues(t *testing.T) {
	cm := synthModel(t, 4, []int{32, 8})
	for _, f := range []float64{0.6, math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := bandit.New(bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Dyno: bandit.DynoConfig{ExploreFloor: f}})
		if !errors.Is(err, bandit.ErrInvalid) {
			t.Errorf("explore floor %g: error %v, want ErrInvalid", f, err)
		}
		_, err = bandit.New(bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Dyno: bandit.DynoConfig{BaselineFloor: f / 10}})
		if !errors.Is(err, bandit.ErrInvalid) {
			t.Errorf("baseline floor %g: error %v, want ErrInvalid", f/10, err)
		}
	}
}

// TestSetFloors changes a learning dyno's floors in place: the published
// bytes carry the new ones, out-of-bounds floors are refused naming the
// field and change nothing, and zero restores the defaults.
func TestSetFloors(t *testing.T) {
	cm := synthModel(t, 6, []int{32, 8})
	p, err := bandit.New(bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	dy := p.(*bandit.Dyno)
	if e, b := dy.Floors(); e != bandit.DefaultExploreFloor || b != bandit.DefaultBaselineFloor {
		t.Fatalf("default floors %g %g", e, b)
	}
	if err := dy.SetFloors(0.2, -3); err != nil {
		t.Fatal(err)
	}
	blob, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := bandit.Restore(cm, blob)
	if err != nil {
		t.Fatal(err)
	}
	if e, b := q.(*bandit.Dyno).Floors(); e != 0.2 || b != -1 {
		t.Fatalf("restored floors %g %g, want 0.2 -1", e, b)
	}
	for _, c := range []struct {
		e, b  float64
		field string
	}{{0.6, 0, "explore_floor"}, {math.NaN(), 0, "explore_floor"}, {0.1, 0.06, "baseline_floor"}, {0.1, math.Inf(-1), "baseline_floor"}} {
		err := dy.SetFloors(c.e, c.b)
		if !errors.Is(err, bandit.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("SetFloors(%g, %g): %v, want ErrInvalid naming %s", c.e, c.b, err, c.field)
		}
		if err := bandit.CheckFloors(c.e, c.b); !errors.Is(err, bandit.ErrInvalid) {
			t.Errorf("CheckFloors(%g, %g): %v", c.e, c.b, err)
		}
	}
	if e, b := dy.Floors(); e != 0.2 || b != -1 {
		t.Fatalf("a refused change changed the floors to %g %g", e, b)
	}
	if err := dy.SetFloors(0, 0); err != nil {
		t.Fatal(err)
	}
	if e, b := dy.Floors(); e != bandit.DefaultExploreFloor || b != bandit.DefaultBaselineFloor {
		t.Fatalf("zero floors %g %g, want the defaults", e, b)
	}
}
