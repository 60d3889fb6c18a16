package eval

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// factors are the truth's multipliers for one request.
type factors struct {
	device, cloud, link, queueMs float64
}

// factorsAt returns the truth's factors at request i: the base values, the
// abrupt changes up to i, then the waves.
func (s *Scenario) factorsAt(i int) factors {
	t := s.Truth
	f := factors{device: simOrOne(t.DeviceSlowdown), cloud: simOrOne(t.CloudSlowdown), link: simOrOne(t.LinkEfficiency), queueMs: t.CloudQueueMs}
	for _, c := range t.Changes {
		if c.At > i {
			break
		}
		if c.DeviceSlowdown != nil {
			f.device = *c.DeviceSlowdown
		}
		if c.CloudSlowdown != nil {
			f.cloud = *c.CloudSlowdown
		}
		if c.LinkEfficiency != nil {
			f.link = *c.LinkEfficiency
		}
		if c.CloudQueueMs != nil {
			f.queueMs = *c.CloudQueueMs
		}
	}
	for _, w := range t.Waves {
		if i < w.Start || i >= w.Start+w.Length {
			continue
		}
		x := math.Sin(math.Pi * float64(i-w.Start) / float64(w.Length))
		bump := x * x
		switch w.Factor {
		case FactorDeviceSlowdown:
			f.device *= 1 + (w.Peak-1)*bump
		case FactorCloudSlowdown:
			f.cloud *= 1 + (w.Peak-1)*bump
		case FactorLinkEfficiency:
			f.link *= 1 + (w.Peak-1)*bump
		case FactorCloudQueueMs:
			f.queueMs += w.Peak * bump
		}
	}
	return f
}

func simOrOne(v float64) float64 {
	if v == 0 {
		return 1
	}
	return v
}

// policyRun is one policy's record of one seed.
type policyRun struct {
	name   string
	p      bandit.Policy
	dec    bandit.Decision
	cost   []float64 // true mean cost of the chosen arm, per request
	regret float64
	slo    int
	floor  int
	bytes  float64
	arms   []int
	errors int
	// lastErr keeps the first choose or learn error for the summary.
	lastErr error
}

// seedRun is the record of one seed: every policy and the oracle.
type seedRun struct {
	oracle   []float64
	policies []*policyRun
}

// newPolicies builds the named policies for one seed.
func (w *World) newPolicies(names []string, seed uint64, dyno *bandit.DynoConfig) ([]*policyRun, error) {
	out := make([]*policyRun, len(names))
	for j, name := range names {
		// each policy's stream depends on the seed and its name only, so
		// that its results do not depend on which others run beside it
		h := fnv.New64a()
		h.Write([]byte(name))
		cfg := bandit.Config{Objective: w.Scenario.Objective, Seed: seed ^ h.Sum64(), Layers: w.Layers}
		if dyno != nil {
			cfg.Dyno = *dyno
		}
		p, err := bandit.New(name, w.Seen, cfg)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: policy %s: %w", w.Scenario.Name, name, err)
		}
		out[j] = &policyRun{name: name, p: p, arms: make([]int, len(w.Seen.Arms()))}
	}
	return out, nil
}

// runSeed simulates one seed of the world for n requests.
func (w *World) runSeed(names []string, seedIndex, n int, dyno *bandit.DynoConfig) (*seedRun, error) {
	s := w.Scenario
	seed := s.Seed*1_000_003 + uint64(seedIndex)
	pols, err := w.newPolicies(names, seed, dyno)
	if err != nil {
		return nil, err
	}
	for _, pr := range pols {
		pr.cost = make([]float64, n)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	// Each seed starts at its own point of the trace.
	offset := rng.Float64() * w.Trace.Period()
	interval := s.Link.RequestIntervalMs
	if interval == 0 {
		interval = 200
	}
	scale := simOrOne(s.Link.Scale)
	minMbps := s.Link.MinMbps
	if minMbps == 0 {
		minMbps = 0.05
	}
	ewma := s.Measurement.BandwidthEWMA
	if ewma == 0 {
		ewma = 1
	}
	sigRate := s.AccuracySignalRate
	if sigRate == 0 {
		sigRate = 1
	}
	obj := s.Objective
	bases := w.True.Bases()
	nArms := len(bases)
	// the true eligibility (accuracy floor on the true table) is static
	trueOK := make([]bool, nArms)
	for i := range trueOK {
		trueOK[i], _ = w.True.Eligible(i, obj, nil)
	}
	trueStages := make([]costmodel.Stages, nArms)
	trueCost := make([]float64, nArms)
	run := &seedRun{oracle: make([]float64, n), policies: pols}
	lognormal := func(sigma float64) float64 {
		if sigma == 0 {
			return 1
		}
		// mean-one log-normal
		return math.Exp(sigma*rng.NormFloat64() - sigma*sigma/2)
	}
	measured := 0.0
	reportedQueue := 0.0
	for i := 0; i < n; i++ {
		f := s.factorsAt(i)
		nominal := w.Trace.At(offset+float64(i)*interval/1000) * scale
		delivered := math.Max(nominal*f.link, minMbps)
		sample := math.Max(nominal*lognormal(s.Measurement.BandwidthNoise), minMbps)
		if i == 0 {
			measured = sample
		} else {
			measured = ewma*sample + (1-ewma)*measured
		}
		rtt := s.Link.RTTMs
		cond := costmodel.Conditions{
			BandwidthMbps: measured,
			RTTMs:         rtt * lognormal(s.Measurement.RTTNoise),
			CloudQueueMs:  reportedQueue,
		}
		if s.Observable.DeviceSlowdown {
			cond.DeviceSlowdown = f.device
		}
		if s.Observable.CloudSlowdown {
			cond.CloudSlowdown = f.cloud
		}
		truth := costmodel.Conditions{BandwidthMbps: delivered, RTTMs: rtt, CloudQueueMs: f.queueMs, CloudSlowdown: f.cloud, DeviceSlowdown: f.device}
		oracle := math.Inf(1)
		for a := range bases {
			trueStages[a] = bases[a].Predict(truth)
			trueCost[a] = obj.Cost(trueStages[a])
			if trueOK[a] && trueCost[a] < oracle {
				oracle = trueCost[a]
			}
		}
		run.oracle[i] = oracle
		// per-request noise, common to every policy
		nD, nN, nR := lognormal(s.Noise.Device), lognormal(s.Noise.Network), lognormal(s.Noise.RTT)
		nQ, nC := lognormal(s.Noise.Queue), lognormal(s.Noise.Cloud)
		uAcc, uSig := rng.Float64(), rng.Float64()
		queue := f.queueMs * nQ
		for _, pr := range pols {
			a, prob, version := nArms-1, 1.0, pr.p.Version()
			if err := pr.p.Choose(cond, &pr.dec); err != nil {
				// a policy that cannot choose runs device-only, counted
				pr.errors++
				if pr.lastErr == nil {
					pr.lastErr = err
				}
			} else {
				a, prob, version = pr.dec.Index, pr.dec.Prob, pr.dec.Version
			}
			st := trueStages[a]
			obs := costmodel.Stages{Arm: st.Arm, DeviceMs: st.DeviceMs * nD, PackMs: st.PackMs * nD, Bytes: st.Bytes}
			if bases[a].Sends() {
				obs.NetworkMs = st.NetworkMs * nN
				obs.RTTMs = st.RTTMs * nR
				obs.CloudQueueMs = queue
				obs.CloudMs = st.CloudMs * nC
				obs.UnpackMs = st.UnpackMs * nC
			}
			pr.cost[i] = trueCost[a]
			pr.regret += trueCost[a] - oracle
			if obj.MeetsSLO(obs.LatencyMs()) {
				pr.slo++
			}
			if trueOK[a] {
				pr.floor++
			}
			pr.bytes += obs.Bytes
			pr.arms[a]++
			rep := bandit.Report{
				Conditions: cond, Arm: st.Arm, Propensity: prob, PolicyVersion: version, Observed: obs,
			}
			if uSig < sigRate {
				rep.HasAccuracy = true
				if uAcc < st.Accuracy {
					rep.Accuracy = 1
				}
			}
			if err := pr.p.Learn(&rep); err != nil {
				pr.errors++
				if pr.lastErr == nil {
					pr.lastErr = err
				}
			}
		}
		reportedQueue = queue
	}
	return run, nil
}
