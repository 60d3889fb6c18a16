package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

// expectedCoster is what the controller would use to write the posterior
// expected cost of arms to the learning curves; without it the curves carry
// observed costs.
type expectedCoster interface {
	ExpectedCosts(c costmodel.Conditions, dst []float64) error
}

// posteriorer is implemented by the dyno policy: its learned coefficients
// go into the learning curves.
type posteriorer interface {
	Posterior() bandit.Posterior
}

// reconfigureReplay bounds how many of a key's traces are replayed into a
// rebuilt policy.
const reconfigureReplay = 50_000

// learner owns the policy of one key: it learns from the key's committed
// reports in trace order, applies operators' changes, and publishes
// versions. Everything but the inbox and the published snapshot belongs to
// its goroutine.
type learner struct {
	srv  *Server
	key  *keyEntry
	arms []*api.Arm

	mu    sync.Mutex
	inbox []learnMsg
	// queued counts the reports in the inbox; committed is the last trace
	// of the key committed; catchup says that the learner reads the trace
	// log up to committed instead of taking reports from its inbox.
	queued    int
	committed uint64
	catchup   bool
	wake      chan struct{}
	ready     chan struct{} // closed once a version is committed
	ready1    sync.Once

	// latest is the last committed version, shared with admin calls.
	latest atomic.Pointer[api.Policy]

	// Owned by the goroutine.
	kind      string
	policy    bandit.Policy
	objective costmodel.Objective
	pin       *store.Pin
	floors    floorSet
	version   uint64
	applied   uint64 // last trace applied
	// appliedShared mirrors applied under mu, for pending.
	appliedShared uint64
	resetSeq      uint64
	resets        uint64
	reports       uint64
	total         uint64
	since         int
	lastPub       time.Time
	// pendingReason, when set, names the next timer publication.
	pendingReason string
	ref           costmodel.Conditions
	refN          int
	win           windowStats
	regretSum     float64
	decision      bandit.Decision
	costs         []float64
}

// windowStats sums the observed cost of the reports since the last version.
type windowStats struct {
	n          int
	cost       float64
	armN       []int
	armCost    []float64
	explored   int
	propensity float64
}

// learnMsg is a group of committed reports or an operator's change.
type learnMsg struct {
	items []*item
	op    *adminOp
}

// adminOp is an operator's change, applied in order with the reports.
type adminOp struct {
	action    string // "pin", "unpin", "reset", "objective", "floors"
	by        string
	at        time.Time
	pin       *store.Pin
	objective *costmodel.Objective
	floors    *floorChange
	result    chan opResult
}

// floorSet is a key's exploration floors as the operator set them and the
// store keeps them (store.Key): zero is the default, -1 off.
type floorSet struct {
	Explore  float64 `json:"explore_floor"`
	Baseline float64 `json:"baseline_floor"`
}

// floorChange is what a SetFloors call changes; nil keeps a floor.
type floorChange struct {
	explore, baseline *float64
}

// apply returns f with the change made.
func (c *floorChange) apply(f floorSet) floorSet {
	if c.explore != nil {
		f.Explore = *c.explore
	}
	if c.baseline != nil {
		f.Baseline = *c.baseline
	}
	return f
}

// setFloors gives a dyno policy the key's floors; other kinds have none.
func setFloors(p bandit.Policy, f floorSet) error {
	if d, ok := p.(*bandit.Dyno); ok {
		return d.SetFloors(f.Explore, f.Baseline)
	}
	return nil
}

type opResult struct {
	version uint64
	err     error
}

// newLearner makes the learner of a key, restoring its state when given.
func newLearner(srv *Server, k *keyEntry, kind string, obj costmodel.Objective, pin *store.Pin, fl floorSet, st *store.State) (*learner, error) {
	l := &learner{srv: srv, key: k, kind: kind, objective: obj, pin: pin, floors: fl, wake: make(chan struct{}, 1), ready: make(chan struct{})}
	for _, a := range k.cm.Arms() {
		l.arms = append(l.arms, &api.Arm{Split: uint32(a.Split), Bits: uint32(a.Bits)})
	}
	n := len(k.cm.Arms())
	l.win = windowStats{armN: make([]int, n), armCost: make([]float64, n)}
	l.costs = make([]float64, n)
	l.ref = costmodel.Conditions{BandwidthMbps: 10, RTTMs: 40}
	o := obj
	k.objective.Store(&o)
	if st != nil && len(st.Data) > 0 {
		p, err := bandit.Restore(k.cm, st.Data)
		if err != nil {
			return nil, fmt.Errorf("key %s: restore %s state: %w", k.name, st.Kind, err)
		}
		// The key record's floors are the operator's; the state has them
		// too unless it was written before they were set.
		if err := setFloors(p, fl); err != nil {
			return nil, fmt.Errorf("key %s: floors: %w", k.name, err)
		}
		l.policy, l.kind = p, p.Name()
		l.applied, l.reports, l.total, l.version, l.resetSeq = st.AppliedSeq, st.Reports, st.TotalReports, st.Version, st.ResetSeq
		return l, nil
	}
	p, err := l.prior()
	if err != nil {
		return nil, err
	}
	l.policy = p
	return l, nil
}

// config is the bandit configuration of the key now.
func (l *learner) config() bandit.Config {
	h := fnv.New64a()
	h.Write([]byte(l.key.name))
	cfg := bandit.Config{Objective: l.objective, Seed: h.Sum64() + l.resets,
		Dyno: bandit.DynoConfig{ExploreFloor: l.floors.Explore, BaselineFloor: l.floors.Baseline}}
	if l.pin != nil {
		a := costmodel.Arm{Split: l.pin.Split, Bits: l.pin.Bits}
		cfg.Pin = &a
	}
	return cfg
}

// prior builds the key's policy at the cost model's prior.
func (l *learner) prior() (bandit.Policy, error) {
	p, err := bandit.New(l.kind, l.key.cm, l.config())
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", l.key.name, err)
	}
	return p, nil
}

// learn applies one committed report.
func (l *learner) learn(it *item) {
	if err := l.policy.Learn(&it.report); err != nil {
		l.srv.log.Warn("learn failed", "key", l.key.name, "trace", it.seq, "err", err)
	}
	l.applied = it.seq
	l.reports++
	l.total++
	l.since++
	c := it.report.Conditions
	// The reference conditions of the learning curves follow the reports.
	const a = 0.02
	if l.refN == 0 {
		l.ref = c
	} else {
		l.ref.BandwidthMbps += a * (c.BandwidthMbps - l.ref.BandwidthMbps)
		l.ref.RTTMs += a * (c.RTTMs - l.ref.RTTMs)
		l.ref.CloudQueueMs += a * (c.CloudQueueMs - l.ref.CloudQueueMs)
		l.ref.CloudSlowdown += a * (c.CloudSlowdown - l.ref.CloudSlowdown)
		l.ref.DeviceSlowdown += a * (c.DeviceSlowdown - l.ref.DeviceSlowdown)
	}
	l.refN++
	cost := it.cost
	l.win.n++
	l.win.cost += cost
	l.win.armN[it.arm]++
	l.win.armCost[it.arm] += cost
	l.win.propensity += it.report.Propensity
	if it.explore {
		l.win.explored++
	}
	if s := l.srv.sink; s != nil && s.reportPoints {
		s.report(reportPoint{key: l.key, item: it, cost: cost})
	}
}

// maxQueued bounds the reports waiting in a learner's inbox. A learner
// further behind drops to reading the trace log (catch-up), so that a burst
// of reports costs the controller no memory and never slows the ingest.
const maxQueued = 32768

// deliver hands the learner reports just committed (committer goroutine);
// it never blocks.
func (l *learner) deliver(items []*item) {
	l.mu.Lock()
	l.committed = items[len(items)-1].seq
	if l.catchup || l.queued+len(items) > maxQueued {
		l.catchup = true
	} else {
		l.inbox = append(l.inbox, learnMsg{items: items})
		l.queued += len(items)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// pending is how many committed reports the learner has not learned yet.
func (l *learner) pending() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.committed - min(l.committed, l.appliedShared)
}

// enqueue hands the learner an operator's change; it never blocks.
func (l *learner) enqueue(m learnMsg) {
	l.mu.Lock()
	l.inbox = append(l.inbox, m)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run is the learner's goroutine.
func (l *learner) run(stop <-chan struct{}) {
	tick := time.NewTicker(l.tickEvery())
	defer tick.Stop()
	var msgs []learnMsg
	for {
		select {
		case <-stop:
			return
		case <-l.wake:
		case <-tick.C:
			l.onTick()
			continue
		}
		for {
			l.mu.Lock()
			msgs, l.inbox = l.inbox, msgs[:0]
			l.queued = 0
			catchup := l.catchup
			l.mu.Unlock()
			for i := range msgs {
				m := &msgs[i]
				if m.op != nil {
					l.apply(m.op)
					continue
				}
				for _, it := range m.items {
					l.learnOne(it)
				}
				m.items = nil
			}
			clear(msgs)
			if !catchup || l.catchUp() {
				break
			}
			select {
			case <-stop:
				return
			case <-tick.C:
				l.onTick()
			default:
			}
		}
	}
}

// learnOne learns a report and publishes every PublishEvery reports.
func (l *learner) learnOne(it *item) {
	l.learn(it)
	l.mu.Lock()
	l.appliedShared = l.applied
	l.mu.Unlock()
	if l.since >= l.srv.cfg.PublishEvery {
		l.publish("reports", nil)
	}
}

// catchUpChunk is how many traces one read transaction of catch-up holds.
const catchUpChunk = 8192

// catchUp learns the next chunk of the key's committed traces from the
// store, and reports true once the learner has caught up (and takes
// reports from its inbox again).
func (l *learner) catchUp() bool {
	l.mu.Lock()
	target := l.committed
	if l.applied >= target && len(l.inbox) == 0 {
		l.catchup = false
		l.mu.Unlock()
		return true
	}
	l.mu.Unlock()
	if l.applied >= target {
		return false // an operator's change waits in the inbox
	}
	items := make([]item, 0, catchUpChunk)
	scanned, last := 0, uint64(0)
	err := l.srv.st.View(func(tx *store.Tx) error {
		return tx.ForEachTrace(l.applied+1, func(t store.Trace) (bool, error) {
			if t.Seq > target {
				return false, nil
			}
			scanned++
			last = t.Seq
			if t.Key == l.key.name {
				items = append(items, l.itemOf(&t))
			}
			return len(items) < catchUpChunk && scanned < 8*catchUpChunk, nil
		})
	})
	if err != nil {
		l.srv.log.Error("catch up from the trace log", "key", l.key.name, "err", err)
		time.Sleep(100 * time.Millisecond)
		return false
	}
	for i := range items {
		l.learnOne(&items[i])
	}
	switch {
	case len(items) == 0 && scanned > 0:
		// Only other keys' traces in this stretch: skip past them.
		l.applied = last
	case scanned == 0:
		// Nothing left to read up to target (retention took it).
		l.applied = target
	}
	return false
}

// itemOf rebuilds what a committed report carried from its trace.
func (l *learner) itemOf(t *store.Trace) item {
	it := item{key: l.key, executor: t.Executor, reportSeq: t.ReportSeq, explore: t.Explore, seq: t.Seq, received: t.ReceivedUnixNano, start: t.StartUnixNano,
		report: banditReportOf(t), latency: t.Stages.LatencyMs, cost: t.Cost}
	it.arm, _ = l.key.cm.Index(it.report.Arm)
	if it.latency == 0 {
		it.latency = it.report.Observed.LatencyMs()
	}
	return it
}

func (l *learner) tickEvery() time.Duration {
	return min(max(l.srv.cfg.PublishInterval/4, time.Millisecond), 100*time.Millisecond)
}

// onTick publishes what was learned since the last version once the
// interval has passed, and lifts a pin whose time is up.
func (l *learner) onTick() {
	now := time.Now()
	if l.pin != nil && !l.pin.Until.IsZero() && !now.Before(l.pin.Until) {
		l.srv.log.Info("pin expired", "key", l.key.name, "arm", fmt.Sprintf("s%d/b%d", l.pin.Split, l.pin.Bits), "until", l.pin.Until, "by", l.pin.By)
		l.apply(&adminOp{action: "unpin", by: "controller (pin expired)", at: now})
		return
	}
	if l.since > 0 && now.Sub(l.lastPub) >= l.srv.cfg.PublishInterval {
		reason := "timer"
		if l.pendingReason != "" {
			reason, l.pendingReason = l.pendingReason, ""
		}
		l.publish(reason, nil)
	}
}

// apply performs an operator's change and publishes the version carrying it.
func (l *learner) apply(op *adminOp) {
	fail := func(err error) {
		if op.result != nil {
			op.result <- opResult{err: err}
		}
	}
	prevPin, prevObj := l.pin, l.objective
	switch op.action {
	case "floors":
		f := op.floors.apply(l.floors)
		if err := setFloors(l.policy, f); err != nil {
			fail(err)
			return
		}
		l.floors = f
		l.publish(op.action, op)
		return
	case "pin":
		l.pin = op.pin
	case "unpin":
		if l.pin == nil {
			fail(fmt.Errorf("%w: key %s is not pinned: nothing to unpin, nothing published", ErrConflict, l.key.name))
			return
		}
		l.pin = nil
	case "objective":
		l.objective = *op.objective
		o := l.objective
		l.key.objective.Store(&o)
	case "reset":
		l.resets++
		p, err := l.prior()
		if err != nil {
			fail(err)
			return
		}
		l.policy = p
		l.resetSeq = l.applied
		l.reports = 0
		l.win = windowStats{armN: make([]int, len(l.costs)), armCost: make([]float64, len(l.costs))}
		l.publish(op.action, op)
		return
	}
	if err := l.reconfigure(); err != nil {
		l.pin, l.objective = prevPin, prevObj
		l.key.objective.Store(&prevObj)
		fail(err)
		return
	}
	l.publish(op.action, op)
}

// reconfigure applies the pin and objective to the policy: in place,
// keeping what it learned, where the policy can (bandit.Reconfigurer);
// otherwise (a policy that learns costs under the objective, given a new
// one) it rebuilds the policy from the prior under the new configuration
// and replays the key's recent traces into it.
func (l *learner) reconfigure() error {
	cfg := l.config()
	if r, ok := l.policy.(bandit.Reconfigurer); ok {
		err := r.Reconfigure(cfg)
		if !errors.Is(err, bandit.ErrRebuild) {
			return err
		}
	}
	p, err := bandit.New(l.kind, l.key.cm, cfg)
	if err != nil {
		return err
	}
	// Replay the most recent traces learned since the last reset.
	n, err := l.srv.replayInto(p, l.key.name, l.resetSeq, l.applied, reconfigureReplay)
	if err != nil {
		return err
	}
	l.srv.log.Info("policy rebuilt under a new configuration", "key", l.key.name, "replayed", n)
	l.policy = p
	return nil
}

// publish snapshots the policy as the next version and hands it to the
// committer; watchers get it once it is committed.
func (l *learner) publish(reason string, op *adminOp) {
	data, err := l.policy.MarshalBinary()
	if err != nil {
		l.srv.log.Error("serialise policy", "key", l.key.name, "err", err)
		if op != nil && op.result != nil {
			op.result <- opResult{err: err}
		}
		return
	}
	req := l.snapshot(reason, data, op)
	l.srv.com.submitSide(req)
}

// snapshot builds the version and the request that commits it.
func (l *learner) snapshot(reason string, data []byte, op *adminOp) *request {
	l.version++
	now := time.Now()
	k := l.key
	packed, encoding, err := api.EncodeBanditState(data)
	if err != nil {
		panic(fmt.Sprintf("deflate into memory: %v", err)) // writes to a bytes.Buffer do not fail
	}
	pol := &api.Policy{
		Key: k.name, Version: l.version, Model: k.model, DeviceClass: k.deviceClass, CloudClass: k.cloudClass,
		ObjectiveName: k.objectiveName, Objective: apiObjective(l.objective), Pin: apiPin(l.pin),
		BanditKind: l.kind, BanditState: packed, BanditStateEncoding: encoding, Reports: l.reports, TotalReports: l.total,
		PublishedUnixNano: now.UnixNano(), Reason: reason,
	}
	if d, ok := l.policy.(*bandit.Dyno); ok {
		pol.ExploreFloor, pol.BaselineFloor = d.Floors()
	}
	enc, err := proto.Marshal(pol)
	if err != nil {
		panic(fmt.Sprintf("marshal policy: %v", err)) // a valid message always marshals
	}
	st := store.State{Key: k.name, Kind: l.kind, Data: data, AppliedSeq: l.applied, Reports: l.reports, TotalReports: l.total, Version: l.version, ResetSeq: l.resetSeq}
	var pt *policyPoint
	if l.srv.sink != nil {
		pt = l.policyPoint(pol, now)
	}
	l.since = 0
	l.lastPub = now
	pin, obj, floors := l.pin, l.objective, l.floors
	return &request{
		ckptKey: k.name, ckptSeq: l.applied,
		apply: func(tx *store.Tx) error {
			if err := tx.PutState(&st); err != nil {
				return err
			}
			if err := tx.PutPolicy(&store.Policy{Key: k.name, Version: pol.Version, Data: enc}); err != nil {
				return err
			}
			if op == nil {
				return nil
			}
			return op.write(tx, k, pol.Version, pin, obj, floors)
		},
		after: func(err error) {
			if err == nil {
				l.latest.Store(pol)
				l.srv.hub.publish(&published{pol: pol, enc: enc})
				l.srv.published.Add(1)
				if pt != nil {
					l.srv.sink.policy(*pt)
				}
				l.ready1.Do(func() { close(l.ready) })
			}
			if op != nil && op.result != nil {
				op.result <- opResult{version: pol.Version, err: err}
			}
		},
	}
}

// write records an operator's change.
func (op *adminOp) write(tx *store.Tx, k *keyEntry, version uint64, pin *store.Pin, obj costmodel.Objective, floors floorSet) error {
	var detail any
	switch op.action {
	case "pin":
		if err := tx.PutPin(pin); err != nil {
			return err
		}
		detail = pin
	case "unpin":
		if err := tx.DeletePin(k.name); err != nil {
			return err
		}
	case "objective":
		rec, _, err := tx.Key(k.name)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(obj)
		rec.Objective = raw
		if err := tx.PutKey(&rec); err != nil {
			return err
		}
		detail = obj
	case "floors":
		rec, _, err := tx.Key(k.name)
		if err != nil {
			return err
		}
		rec.ExploreFloor, rec.BaselineFloor = floors.Explore, floors.Baseline
		if err := tx.PutKey(&rec); err != nil {
			return err
		}
		detail = floors
	}
	ev := &store.Event{At: op.at, By: op.by, Action: op.action, Key: k.name, Version: version}
	if detail != nil {
		ev.Detail, _ = json.Marshal(detail)
	}
	return tx.AppendEvent(ev)
}

// policyPoint computes the learning-curve point of a version: the policy's
// choice at the key's reference conditions against the static DynO choice,
// and the observed cost since the previous version.
func (l *learner) policyPoint(pol *api.Policy, now time.Time) *policyPoint {
	pt := &policyPoint{key: l.key, version: pol.Version, reason: pol.Reason, reports: l.reports, total: l.total, at: now, chosen: -1, static: -1}
	if p, ok := l.policy.(posteriorer); ok {
		post := p.Posterior()
		pt.posterior = &post
	}
	cm, ref := l.key.cm, l.ref
	if err := l.policy.Choose(ref, &l.decision); err == nil {
		best := 0
		for i, p := range l.decision.Probs {
			if p > l.decision.Probs[best] {
				best = i
			}
		}
		pt.chosen, pt.chosenProb = best, l.decision.Probs[best]
	}
	if ch, err := cm.Choose(ref, l.objective, nil); err == nil {
		i, _ := cm.Index(ch.Best)
		pt.static = i
		pt.staticCost = ch.Ranked[0].Cost
	}
	if pt.chosen >= 0 {
		pt.expectedCost, pt.expectedFrom = math.NaN(), ""
		if ec, ok := l.policy.(expectedCoster); ok && ec.ExpectedCosts(ref, l.costs) == nil {
			pt.expectedCost, pt.expectedFrom = l.costs[pt.chosen], "posterior"
		} else if n := l.win.armN[pt.chosen]; n > 0 {
			pt.expectedCost, pt.expectedFrom = l.win.armCost[pt.chosen]/float64(n), "observed"
		} else {
			pt.expectedCost, pt.expectedFrom = l.objective.Cost(cm.Predict(pt.chosen, ref)), "costmodel"
		}
	}
	if l.win.n > 0 {
		pt.observedCost = l.win.cost / float64(l.win.n)
		pt.window = l.win.n
		pt.explored = float64(l.win.explored) / float64(l.win.n)
		pt.meanPropensity = l.win.propensity / float64(l.win.n)
		if !math.IsNaN(pt.expectedCost) && pt.chosen >= 0 {
			pt.regret = pt.observedCost - pt.expectedCost
			l.regretSum += pt.regret * float64(l.win.n)
		}
	}
	pt.cumRegret = l.regretSum
	l.win.n, l.win.cost, l.win.explored, l.win.propensity = 0, 0, 0, 0
	clear(l.win.armN)
	clear(l.win.armCost)
	return pt
}

func apiObjective(o costmodel.Objective) *api.Objective {
	return &api.Objective{Kind: string(o.Kind), AccuracyFloor: o.AccuracyFloor, LatencySloMs: o.LatencySLOMs, SloPenalty: o.SLOPenalty,
		Weights: &api.Weights{LatencyMs: o.Weights.LatencyMs, BottleneckMs: o.Weights.BottleneckMs, CloudGpuMs: o.Weights.CloudGPUMs, Kb: o.Weights.KB}}
}

func objectiveOf(o *api.Objective) costmodel.Objective {
	out := costmodel.Objective{Kind: costmodel.ObjectiveKind(o.GetKind()), AccuracyFloor: o.GetAccuracyFloor(), LatencySLOMs: o.GetLatencySloMs(), SLOPenalty: o.GetSloPenalty()}
	if w := o.GetWeights(); w != nil {
		out.Weights = costmodel.Weights{LatencyMs: w.LatencyMs, BottleneckMs: w.BottleneckMs, CloudGPUMs: w.CloudGpuMs, KB: w.Kb}
	}
	return out
}

func apiPin(p *store.Pin) *api.Pin {
	if p == nil {
		return nil
	}
	out := &api.Pin{Arm: &api.Arm{Split: uint32(p.Split), Bits: uint32(p.Bits)}, By: p.By, AtUnixNano: p.At.UnixNano(), Reason: p.Reason}
	if !p.Until.IsZero() {
		out.UntilUnixNano = p.Until.UnixNano()
	}
	return out
}
