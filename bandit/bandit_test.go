package bandit_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

var (
	minLatency = costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.74}
	// mobileLatency suits MobileNetV2's lower baseline (0.7188).
	mobileLatency = costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.69}
)

// world drives a policy with reports drawn from the cost model's own
// prediction under a device `slow` times slower, with relative noise.
type world struct {
	cm    *costmodel.Model
	slow  float64
	noise float64
	rng   *rand.Rand
}

func (w *world) conditions() costmodel.Conditions {
	return costmodel.Conditions{BandwidthMbps: 2 + 30*w.rng.Float64(), RTTMs: 20 + 40*w.rng.Float64()}
}

func (w *world) report(c costmodel.Conditions, d *bandit.Decision) *bandit.Report {
	st := truthStages(w.cm, d.Index, c, w.slow)
	n := func() float64 { return math.Exp(w.noise * w.rng.NormFloat64()) }
	st.DeviceMs *= n()
	st.NetworkMs *= n()
	st.CloudMs *= n()
	r := &bandit.Report{Conditions: c, Arm: d.Arm, Propensity: d.Prob, PolicyVersion: d.Version, Observed: st, HasAccuracy: true}
	if w.rng.Float64() < st.Accuracy {
		r.Accuracy = 1
	}
	return r
}

// run chooses and learns n times.
func (w *world) run(t testing.TB, p bandit.Policy, n int) {
	t.Helper()
	var d bandit.Decision
	for i := 0; i < n; i++ {
		c := w.conditions()
		if err := p.Choose(c, &d); err != nil {
			t.Fatal(err)
		}
		if err := p.Learn(w.report(c, &d)); err != nil {
			t.Fatal(err)
		}
	}
}

func newPolicy(t testing.TB, kind string, cm *costmodel.Model, seed uint64) bandit.Policy {
	t.Helper()
	o := minLatency
	if cm.Manifest.Name == "mobilenetv2" {
		o = mobileLatency
	}
	p, err := bandit.New(kind, cm, bandit.Config{Objective: o, Seed: seed})
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return p
}

func TestNewRejectsBadConfig(t *testing.T) {
	cm := synthModel(t, 6, []int{32, 8, 4})
	n := len(cm.Arms())
	unknown := costmodel.Arm{Split: 99, Bits: 8}
	masked := make([]bool, n)
	masked[0] = true
	first := cm.Arms()[1]
	cases := []struct {
		name string
		kind string
		cm   *costmodel.Model
		cfg  bandit.Config
		want error
	}{
		{"nil model", bandit.NameDyno, nil, bandit.Config{Objective: minLatency}, bandit.ErrInvalid},
		{"bad objective", bandit.NameStatic, cm, bandit.Config{Objective: costmodel.Objective{Kind: "fastest"}}, bandit.ErrInvalid},
		{"short mask", bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Allowed: []bool{true}}, bandit.ErrInvalid},
		{"unknown pin", bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Pin: &unknown}, bandit.ErrUnknownArm},
		{"masked pin", bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Allowed: masked, Pin: &first}, bandit.ErrInvalid},
		{"layers per block", bandit.NameANS, cm, bandit.Config{Objective: minLatency, Layers: [][]bandit.LayerStats{{}}}, bandit.ErrInvalid},
		{"forgetting above one", bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Dyno: bandit.DynoConfig{Forgetting: 1.5}}, bandit.ErrInvalid},
		{"NaN prior", bandit.NameDyno, cm, bandit.Config{Objective: minLatency, Dyno: bandit.DynoConfig{PriorSD: math.NaN()}}, bandit.ErrInvalid},
		{"epsilon above one", bandit.NameEGreedy, cm, bandit.Config{Objective: minLatency, EGreedy: bandit.EGreedyConfig{Epsilon: 2}}, bandit.ErrInvalid},
		{"unknown kind", "thompson", cm, bandit.Config{Objective: minLatency}, bandit.ErrUnknownPolicy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bandit.New(tc.kind, tc.cm, tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDynoPriorIsCostModel: with no data, dyno's posterior is its prior,
// whose mean is the cost model, so it predicts exactly what the cost model
// does and puts most probability on static DynO's choice.
func TestDynoPriorIsCostModel(t *testing.T) {
	cm := mobileNet(t)
	p, err := bandit.NewDyno(cm, bandit.Config{Objective: mobileLatency})
	if err != nil {
		t.Fatal(err)
	}
	post := p.Posterior()
	want := bandit.Posterior{Device: [2]float64{1, 1}, Transfer: [2]float64{1, 0}, RTT: [2]float64{1, 0}, Queue: [2]float64{1, 0}, Cloud: [2]float64{1, 1}}
	post.NoiseSD = want.NoiseSD
	if post != want {
		t.Fatalf("prior coefficients %+v, want %+v", post, want)
	}
	st, err := bandit.NewStatic(cm, bandit.Config{Objective: mobileLatency})
	if err != nil {
		t.Fatal(err)
	}
	const seed = 3
	rng := rand.New(rand.NewPCG(seed, 0))
	for n := 0; n < 50; n++ {
		c := costmodel.Conditions{BandwidthMbps: 0.2 + 40*rng.Float64(), RTTMs: 100 * rng.Float64(), CloudQueueMs: 5 * rng.Float64()}
		for i := range cm.Arms() {
			got, cost, _ := p.Predict(c, i)
			s := cm.Predict(i, c)
			if want := mobileLatency.Cost(s); !approx(cost, want, 1e-9) {
				t.Fatalf("seed %d: arm %v: prior cost %g, cost model %g", seed, cm.Arms()[i], cost, want)
			}
			if !approx(got.LatencyMs(), s.LatencyMs(), 1e-9) {
				t.Fatalf("seed %d: arm %v: prior latency %g, cost model %g", seed, cm.Arms()[i], got.LatencyMs(), s.LatencyMs())
			}
		}
		var dd, ds bandit.Decision
		if err := p.Choose(c, &dd); err != nil {
			t.Fatal(err)
		}
		if err := st.Choose(c, &ds); err != nil {
			t.Fatal(err)
		}
		top := 0
		for i, q := range dd.Probs {
			if q > dd.Probs[top] {
				top = i
			}
		}
		if cm.Arms()[top] != ds.Arm {
			t.Fatalf("seed %d: %+v: dyno's most likely arm %v, static DynO chooses %v", seed, c, cm.Arms()[top], ds.Arm)
		}
	}
}

// TestPropensities: every policy's distribution sums to one, gives the
// chosen arm its stated probability, nothing to masked arms, and matches
// the frequencies it actually chooses with (chi-square at 0.1%).
func TestPropensities(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 16, 8, 6, 4})
	allowed := make([]bool, len(cm.Arms()))
	for i := range allowed {
		allowed[i] = i%5 != 2
	}
	for _, kind := range bandit.Names() {
		t.Run(kind, func(t *testing.T) {
			const seed = 21
			p, err := bandit.New(kind, cm, bandit.Config{Objective: minLatency, Seed: seed, Allowed: allowed})
			if err != nil {
				t.Fatal(err)
			}
			w := &world{cm: cm, slow: 1.5, noise: 0.1, rng: rand.New(rand.NewPCG(seed, 1))}
			var d bandit.Decision
			for n := 0; n < 300; n++ {
				c := w.conditions()
				if err := p.Choose(c, &d); err != nil {
					t.Fatal(err)
				}
				var sum float64
				for i, q := range d.Probs {
					if q < 0 || q > 1 {
						t.Fatalf("seed %d: probability %g", seed, q)
					}
					if !allowed[i] && q != 0 {
						t.Fatalf("seed %d: masked arm %v has probability %g", seed, cm.Arms()[i], q)
					}
					sum += q
				}
				if math.Abs(sum-1) > 1e-9 {
					t.Fatalf("seed %d: probabilities sum to %g", seed, sum)
				}
				if d.Prob != d.Probs[d.Index] || d.Prob <= 0 || d.Arm != cm.Arms()[d.Index] {
					t.Fatalf("seed %d: chose %v (index %d) with %g, distribution says %g", seed, d.Arm, d.Index, d.Prob, d.Probs[d.Index])
				}
				if err := p.Learn(w.report(c, &d)); err != nil {
					t.Fatal(err)
				}
			}
			// Frequencies: the same decision drawn many times from a
			// snapshot (choosing only moves the random stream).
			c := costmodel.Conditions{BandwidthMbps: 8, RTTMs: 30}
			state, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			q, err := bandit.Restore(cm, state)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Choose(c, &d); err != nil {
				t.Fatal(err)
			}
			probs := append([]float64(nil), d.Probs...)
			const draws = 20000
			counts := make([]float64, len(probs))
			for n := 0; n < draws; n++ {
				r, _ := bandit.Restore(cm, state)
				r.Reseed(uint64(n))
				if err := r.Choose(c, &d); err != nil {
					t.Fatal(err)
				}
				counts[d.Index]++
			}
			var chi2 float64
			df := -1
			for i, pr := range probs {
				if pr == 0 {
					if counts[i] != 0 {
						t.Fatalf("seed %d: arm %v of probability 0 chosen %g times", seed, cm.Arms()[i], counts[i])
					}
					continue
				}
				e := pr * draws
				chi2 += (counts[i] - e) * (counts[i] - e) / e
				df++
			}
			if df > 0 {
				crit := distuv.ChiSquared{K: float64(df)}.Quantile(0.999)
				if chi2 > crit {
					t.Fatalf("seed %d: chi-square %g over %d degrees of freedom exceeds %g", seed, chi2, df, crit)
				}
			}
		})
	}
}

// TestRoundTrip: every policy's state serialises and restores to the same
// bytes, and the restored policy continues to choose and learn exactly as
// the original.
func TestRoundTrip(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 6, 4})
	for _, kind := range bandit.Names() {
		t.Run(kind, func(t *testing.T) {
			const seed = 4
			p := newPolicy(t, kind, cm, seed)
			w := &world{cm: cm, slow: 2, noise: 0.1, rng: rand.New(rand.NewPCG(seed, 2))}
			w.run(t, p, 400)
			state, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			q, err := bandit.Restore(cm, state)
			if err != nil {
				t.Fatal(err)
			}
			if q.Name() != kind || q.Version() != p.Version() {
				t.Fatalf("restored %s v%d, want %s v%d", q.Name(), q.Version(), kind, p.Version())
			}
			again, err := q.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(state, again) {
				t.Fatal("restored state serialises differently")
			}
			var dp, dq bandit.Decision
			for n := 0; n < 300; n++ {
				c := w.conditions()
				if err := p.Choose(c, &dp); err != nil {
					t.Fatal(err)
				}
				if err := q.Choose(c, &dq); err != nil {
					t.Fatal(err)
				}
				if dp.Index != dq.Index || dp.Prob != dq.Prob || dp.Version != dq.Version {
					t.Fatalf("seed %d, step %d: original chose %v (%g), restored %v (%g)", seed, n, dp.Arm, dp.Prob, dq.Arm, dq.Prob)
				}
				r := w.report(c, &dp)
				if err := p.Learn(r); err != nil {
					t.Fatal(err)
				}
				if err := q.Learn(r); err != nil {
					t.Fatal(err)
				}
			}
			a, _ := p.MarshalBinary()
			b, _ := q.MarshalBinary()
			if !bytes.Equal(a, b) {
				t.Fatal("original and restored diverged")
			}
		})
	}
}

func TestRestoreRejectsBadState(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	other := synthModel(t, 5, []int{32, 8, 4})
	p := newPolicy(t, bandit.NameDyno, cm, 1)
	(&world{cm: cm, slow: 1, noise: 0.1, rng: rand.New(rand.NewPCG(1, 1))}).run(t, p, 50)
	good, _ := p.MarshalBinary()
	version := append([]byte(nil), good...)
	version[4] = 99
	kind := append([]byte(nil), good...)
	kind[12] = 'x'
	cases := []struct {
		name string
		cm   *costmodel.Model
		data []byte
		want error
	}{
		{"empty", cm, nil, bandit.ErrCorrupt},
		{"not a policy", cm, []byte("hello, world, this is not a policy"), bandit.ErrCorrupt},
		{"future format", cm, version, bandit.ErrVersion},
		{"unknown kind", cm, kind, bandit.ErrUnknownPolicy},
		{"other model", other, good, bandit.ErrModelMismatch},
		{"truncated", cm, good[:len(good)-9], bandit.ErrCorrupt},
		{"trailing bytes", cm, append(append([]byte(nil), good...), 0), bandit.ErrCorrupt},
		{"nil model", nil, good, bandit.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := bandit.Restore(tc.cm, tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzRestore: no bytes make Restore panic.
func FuzzRestore(f *testing.F) {
	cm := synthModel(f, 4, []int{32, 8})
	for _, kind := range bandit.Names() {
		p := newPolicy(f, kind, cm, 1)
		(&world{cm: cm, slow: 1.3, noise: 0.1, rng: rand.New(rand.NewPCG(2, 2))}).run(f, p, 40)
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := bandit.Restore(cm, data)
		if err != nil {
			return
		}
		var d bandit.Decision
		c := costmodel.Conditions{BandwidthMbps: 5, RTTMs: 20}
		if err := p.Choose(c, &d); err == nil {
			_ = p.Learn(&bandit.Report{Conditions: c, Arm: d.Arm, Propensity: max(d.Prob, 1e-9), Observed: costmodel.Stages{DeviceMs: 1}})
		}
	})
}

func TestReportValidation(t *testing.T) {
	cm := synthModel(t, 4, []int{32, 8})
	good := bandit.Report{Conditions: costmodel.Conditions{BandwidthMbps: 5, RTTMs: 10}, Arm: cm.Arms()[0], Propensity: 0.5,
		Observed: costmodel.Stages{DeviceMs: 1, NetworkMs: 3, CloudMs: 2}}
	mut := func(f func(r *bandit.Report)) *bandit.Report { r := good; f(&r); return &r }
	cases := []struct {
		name string
		r    *bandit.Report
		want error
	}{
		{"nil", nil, bandit.ErrInvalid},
		{"zero bandwidth", mut(func(r *bandit.Report) { r.Conditions.BandwidthMbps = 0 }), bandit.ErrInvalid},
		{"zero propensity", mut(func(r *bandit.Report) { r.Propensity = 0 }), bandit.ErrInvalid},
		{"NaN device", mut(func(r *bandit.Report) { r.Observed.DeviceMs = math.NaN() }), bandit.ErrInvalid},
		{"negative rtt", mut(func(r *bandit.Report) { r.Observed.RTTMs = -1 }), bandit.ErrInvalid},
		{"accuracy above one", mut(func(r *bandit.Report) { r.HasAccuracy, r.Accuracy = true, 2 }), bandit.ErrInvalid},
		{"unknown arm", mut(func(r *bandit.Report) { r.Arm = costmodel.Arm{Split: 1, Bits: 5} }), bandit.ErrUnknownArm},
	}
	for _, kind := range bandit.Names() {
		p := newPolicy(t, kind, cm, 1)
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				v := p.Version()
				if err := p.Learn(tc.r); !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if p.Version() != v {
					t.Fatal("a rejected report changed the version")
				}
			})
		}
		var d bandit.Decision
		if err := p.Choose(costmodel.Conditions{BandwidthMbps: math.Inf(1)}, &d); !errors.Is(err, bandit.ErrInvalid) {
			t.Fatalf("%s: infinite bandwidth: got %v", kind, err)
		}
	}
}

func TestPinAndMask(t *testing.T) {
	cm := synthModel(t, 6, []int{32, 8, 4})
	pin := cm.Arms()[3]
	allowed := make([]bool, len(cm.Arms()))
	allowed[3] = true
	for _, kind := range bandit.Names() {
		t.Run(kind, func(t *testing.T) {
			p, err := bandit.New(kind, cm, bandit.Config{Objective: minLatency, Pin: &pin})
			if err != nil {
				t.Fatal(err)
			}
			w := &world{cm: cm, slow: 1, noise: 0.1, rng: rand.New(rand.NewPCG(1, 1))}
			var d bandit.Decision
			for n := 0; n < 50; n++ {
				c := w.conditions()
				if err := p.Choose(c, &d); err != nil {
					t.Fatal(err)
				}
				if d.Arm != pin || d.Prob != 1 {
					t.Fatalf("pinned to %v, chose %v with %g", pin, d.Arm, d.Prob)
				}
				if err := p.Learn(w.report(c, &d)); err != nil {
					t.Fatal(err)
				}
			}
			q, err := bandit.New(kind, cm, bandit.Config{Objective: minLatency, Allowed: allowed})
			if err != nil {
				t.Fatal(err)
			}
			err = q.Choose(w.conditions(), &d)
			switch {
			case err == nil && d.Index != 3:
				t.Fatalf("only arm 3 allowed, chose %v", d.Arm)
			case err != nil && !errors.Is(err, bandit.ErrNoEligibleArm):
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestDynoLearnsSlowDevice: a device twice as slow as its profile is learned
// within a hundred reports, and dyno then chooses what the truth prefers.
func TestDynoLearnsSlowDevice(t *testing.T) {
	cm := mobileNet(t)
	const seed = 8
	p := newPolicy(t, bandit.NameDyno, cm, seed).(*bandit.Dyno)
	w := &world{cm: cm, slow: 2, noise: 0.05, rng: rand.New(rand.NewPCG(seed, 3))}
	w.run(t, p, 100)
	if a := p.Posterior().Device[0]; math.Abs(a-2) > 0.1 {
		t.Fatalf("seed %d: device coefficient %g after 100 reports, want about 2", seed, a)
	}
	// the truth's best arm, at full probability or nearly
	c := costmodel.Conditions{BandwidthMbps: 10, RTTMs: 30}
	best, bestCost := -1, math.Inf(1)
	for i := range cm.Arms() {
		if ok, _ := cm.Eligible(i, mobileLatency, nil); !ok {
			continue
		}
		if c := mobileLatency.Cost(truthStages(cm, i, c, 2)); c < bestCost {
			best, bestCost = i, c
		}
	}
	var d bandit.Decision
	if err := p.Choose(c, &d); err != nil {
		t.Fatal(err)
	}
	got := mobileLatency.Cost(truthStages(cm, d.Index, c, 2))
	if got > 1.05*bestCost {
		t.Fatalf("seed %d: chose %v costing %g, the best is %v at %g", seed, d.Arm, got, cm.Arms()[best], bestCost)
	}
}

// TestDynoTracksChange: after an abrupt throttle, the device coefficient
// follows within a hundred reports.
func TestDynoTracksChange(t *testing.T) {
	cm := mobileNet(t)
	const seed = 12
	p := newPolicy(t, bandit.NameDyno, cm, seed).(*bandit.Dyno)
	w := &world{cm: cm, slow: 1, noise: 0.05, rng: rand.New(rand.NewPCG(seed, 4))}
	w.run(t, p, 1000)
	w.slow = 2.5
	w.run(t, p, 100)
	if a := p.Posterior().Device[0]; math.Abs(a-2.5) > 0.25 {
		t.Fatalf("seed %d: device coefficient %g 100 reports after the change, want about 2.5", seed, a)
	}
}

// TestDynoDropsBrokenPrecision: when every 4-bit arm is far less accurate
// than calibrated, the evidence the arms of the precision share drops them
// all after a few hundred signals (about 30 each), and leaves other
// precisions alone.
func TestDynoDropsBrokenPrecision(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	obj := costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.7}
	p, err := bandit.NewDyno(cm, bandit.Config{Objective: obj, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	const seed = 6
	rng := rand.New(rand.NewPCG(seed, 0))
	c := costmodel.Conditions{BandwidthMbps: 5, RTTMs: 20}
	for n := 0; n < 800; n++ {
		i := rng.IntN(len(cm.Arms()))
		a := cm.Arms()[i]
		r := &bandit.Report{Conditions: c, Arm: a, Propensity: 0.5, Observed: cm.Predict(i, c), HasAccuracy: true}
		acc := cm.Bases()[i].Accuracy
		if a.Bits == 4 {
			acc -= 0.2
		}
		if rng.Float64() < acc {
			r.Accuracy = 1
		}
		if err := p.Learn(r); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range cm.Arms() {
		_, ok := p.Accuracy(i)
		if want := a.Bits != 4; ok != want {
			t.Errorf("seed %d: arm %v eligible %v, want %v", seed, a, ok, want)
		}
	}
}

// TestDeterministic: the same seed and reports give the same choices.
func TestDeterministic(t *testing.T) {
	cm := synthModel(t, 8, []int{32, 8, 4})
	for _, kind := range bandit.Names() {
		a, b := newPolicy(t, kind, cm, 77), newPolicy(t, kind, cm, 77)
		wa := &world{cm: cm, slow: 1.7, noise: 0.1, rng: rand.New(rand.NewPCG(5, 5))}
		wb := &world{cm: cm, slow: 1.7, noise: 0.1, rng: rand.New(rand.NewPCG(5, 5))}
		wa.run(t, a, 200)
		wb.run(t, b, 200)
		sa, _ := a.MarshalBinary()
		sb, _ := b.MarshalBinary()
		if !bytes.Equal(sa, sb) {
			t.Errorf("%s: same seed, different state", kind)
		}
	}
}

// TestANSForcedSampling: where running on the device is best, muLinUCB
// still offloads on its forced-sampling requests.
func TestANSForcedSampling(t *testing.T) {
	cm := synthModel(t, 6, []int{32, 8})
	p := newPolicy(t, bandit.NameANS, cm, 1)
	var d bandit.Decision
	c := costmodel.Conditions{BandwidthMbps: 0.05, RTTMs: 500}
	offloaded := 0
	for n := 0; n < 40; n++ {
		if err := p.Choose(c, &d); err != nil {
			t.Fatal(err)
		}
		if d.Arm.Bits != 32 {
			t.Fatalf("ANS chose %v: it has one full-precision arm per split", d.Arm)
		}
		if d.Arm.Split < cm.Manifest.K() {
			offloaded++
		}
	}
	// forced every ceil(200^0.25) = 4 requests
	if offloaded < 10 {
		t.Fatalf("offloaded %d of 40 requests, want every fourth", offloaded)
	}
}
