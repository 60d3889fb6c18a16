package eval

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/tracelog"
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
	// rec and acc back the trace record handed to emit.
	rec tracelog.Record
	acc float64
}

// seedRun is the record of one seed: every policy and the oracle.
type seedRun struct {
	oracle   []float64
	policies []*policyRun
}

// newPolicies builds the named policies for one seed.
func (w *World) newPolicies(names []string, seed uint64, tune *Tuning) ([]*policyRun, error) {
	out := make([]*policyRun, len(names))
	for j, name := range names {
		// each policy's stream depends on the seed and its name only, so
		// that its results do not depend on which others run beside it
		h := fnv.New64a()
		h.Write([]byte(name))
		cfg := bandit.Config{Objective: w.Scenario.Objective, Seed: seed ^ h.Sum64(), Layers: w.Layers}
		if tune != nil {
			cfg.Dyno, cfg.EGreedy = tune.Dyno, tune.EGreedy
		}
		p, err := bandit.New(name, w.Seen, cfg)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: policy %s: %w", w.Scenario.Name, name, err)
		}
		out[j] = &policyRun{name: name, p: p, arms: make([]int, len(w.Seen.Arms()))}
	}
	return out, nil
}

// emitFunc receives every simulated request of policy p as a trace record,
// with the true expected cost of every arm in that request (the ground
// truth offline estimators are checked against). The record's slices are
// reused after emit returns.
type emitFunc func(p int, rec *tracelog.Record, trueCost []float64) error

// runSeed simulates one seed of the world for n requests; emit, if not nil,
// receives every request as a trace record.
func (w *World) runSeed(names []string, seedIndex, n int, tune *Tuning, emit emitFunc) (*seedRun, error) {
	s := w.Scenario
	seed := s.Seed*1_000_003 + uint64(seedIndex)
	pols, err := w.newPolicies(names, seed, tune)
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
			trueCost[a] = obj.PredictCost(&bases[a], &truth)
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
		for j, pr := range pols {
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
			st := bases[a].Predict(truth)
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
			if emit != nil {
				if err := emit(j, w.record(i, seedIndex, pr, &rep, obj.Cost(obs), interval), trueCost); err != nil {
					return nil, err
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

// simEpoch is the time of the first simulated request in trace records.
var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// record is request i of policy run pr as a trace record; it reuses pr's
// record.
func (w *World) record(i, seedIndex int, pr *policyRun, rep *bandit.Report, cost, intervalMs float64) *tracelog.Record {
	r := &pr.rec
	probs := r.Probs[:0]
	var best float64
	for _, p := range pr.dec.Probs {
		probs = append(probs, p)
		best = math.Max(best, p)
	}
	idx, _ := w.Seen.Index(rep.Arm)
	*r = tracelog.Record{
		Schema: tracelog.SchemaVersion, ID: fmt.Sprintf("%s-%d-%d", w.Scenario.Name, seedIndex, i),
		Key: w.Scenario.Name, Executor: "sim", Seq: uint64(i + 1),
		Time:   simEpoch.Add(time.Duration(float64(i) * intervalMs * float64(time.Millisecond))),
		Policy: pr.name, PolicyVersion: rep.PolicyVersion, Conditions: rep.Conditions,
		ArmIndex: idx, Arm: rep.Arm, Propensity: rep.Propensity, Explore: rep.Propensity < best,
		Observed: tracelog.FromStages(rep.Observed), Cost: cost, AllowedBits: w.Seen.Manifest.AllowedBits,
	}
	// A policy that failed to choose ran device-only without a
	// distribution; log its propensity alone.
	if len(probs) == len(w.Seen.Arms()) && probs[idx] == rep.Propensity {
		r.Probs = probs
	} else {
		r.Probs = probs[:0]
	}
	if rep.HasAccuracy {
		pr.acc = rep.Accuracy
		r.Accuracy = &pr.acc
	}
	return r
}

// Tuning tunes the policies the simulator builds.
type Tuning struct {
	Dyno    bandit.DynoConfig
	EGreedy bandit.EGreedyConfig
}

// Log runs one policy through the world for n requests of seed seedIndex
// and streams every request to emit as a trace record, with the true
// expected cost of every arm in it (the ground truth of offline
// evaluation). The policy is built like the simulator's own.
func (w *World) Log(policy string, seedIndex, n int, tune *Tuning, emit func(rec *tracelog.Record, trueCost []float64) error) error {
	_, err := w.runSeed([]string{policy}, seedIndex, n, tune, func(_ int, rec *tracelog.Record, trueCost []float64) error {
		return emit(rec, trueCost)
	})
	return err
}
