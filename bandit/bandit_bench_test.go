package bandit_test

import (
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// bench100 is a synthetic model of exactly 100 arms: 33 blocks at three
// precisions, plus device-only.
func bench100(b *testing.B) *costmodel.Model {
	cm := synthModel(b, 33, []int{32, 8, 4})
	if n := len(cm.Arms()); n != 100 {
		b.Fatalf("%d arms", n)
	}
	return cm
}

// benchPolicies builds each policy at its prior and after 2000 reports of a
// device 1.5x slower than profiled.
func benchPolicies(b *testing.B, cm *costmodel.Model, kinds ...string) map[string]bandit.Policy {
	out := map[string]bandit.Policy{}
	for _, kind := range kinds {
		out[kind+"/prior"] = newPolicy(b, kind, cm, 1)
		p := newPolicy(b, kind, cm, 1)
		(&world{cm: cm, slow: 1.5, noise: 0.1, rng: rand.New(rand.NewPCG(1, 1))}).run(b, p, 2000)
		out[kind+"/trained"] = p
	}
	return out
}

func benchConditions() []costmodel.Conditions {
	rng := rand.New(rand.NewPCG(9, 9))
	cs := make([]costmodel.Conditions, 64)
	for i := range cs {
		cs[i] = costmodel.Conditions{BandwidthMbps: 2 + 30*rng.Float64(), RTTMs: 20 + 40*rng.Float64(), CloudQueueMs: 3 * rng.Float64()}
	}
	return cs
}

// BenchmarkChoose100 times Choose for 100 arms (target: at most 10 us for
// dyno).
func BenchmarkChoose100(b *testing.B) {
	cm := bench100(b)
	ps := benchPolicies(b, cm, bandit.NameDyno, bandit.NameStatic, bandit.NameANS, bandit.NameNeurosurgeon, bandit.NameEGreedy)
	cs := benchConditions()
	for _, name := range sortedKeys(ps) {
		p := ps[name]
		b.Run(name, func(b *testing.B) {
			var d bandit.Decision
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := p.Choose(cs[i%len(cs)], &d); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkLearn100 times Learn from one report for 100 arms (target: at
// most 5 us for dyno).
func BenchmarkLearn100(b *testing.B) {
	cm := bench100(b)
	ps := benchPolicies(b, cm, bandit.NameDyno, bandit.NameANS, bandit.NameEGreedy)
	cs := benchConditions()
	w := &world{cm: cm, slow: 1.5, noise: 0.1, rng: rand.New(rand.NewPCG(3, 3))}
	for _, name := range sortedKeys(ps) {
		p := ps[name]
		// pre-draw the reports so that the loop times Learn alone
		reports := make([]*bandit.Report, 256)
		var d bandit.Decision
		for i := range reports {
			c := cs[i%len(cs)]
			if err := p.Choose(c, &d); err != nil {
				b.Fatal(err)
			}
			reports[i] = w.report(c, &d)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := p.Learn(reports[i%len(reports)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkDynoMobileNet times dyno on MobileNetV2's 141 arms.
func BenchmarkDynoMobileNet(b *testing.B) {
	cm := mobileNet(b)
	ps := benchPolicies(b, cm, bandit.NameDyno)
	cs := benchConditions()
	for _, name := range sortedKeys(ps) {
		p := ps[name]
		b.Run("choose/"+name, func(b *testing.B) {
			var d bandit.Decision
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := p.Choose(cs[i%len(cs)], &d); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkMarshal times serialising dyno's state for the store.
func BenchmarkMarshal(b *testing.B) {
	cm := bench100(b)
	p := benchPolicies(b, cm, bandit.NameDyno)["dyno/trained"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	data, _ := p.MarshalBinary()
	b.ReportMetric(float64(len(data)), "bytes")
}

func sortedKeys(m map[string]bandit.Policy) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
