// Package device is the device executor: for every request it measures its
// context, lets the policy the controller published choose an arm (locally:
// no round trip), runs blocks 1..s with ONNX Runtime, packs the tensor at
// the split, sends it to the cloud executor over the link, and reports what
// each stage took back to the controller. A watcher keeps the policy
// fresh; if the controller is unreachable the executor keeps deciding with
// the policy it holds and buffers its reports until it is back.
package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/packing"
)

// Input is one request: the model's input and, when known, the label its
// output should have (negative: unknown, no accuracy signal).
type Input struct {
	X     []float32
	Label int
}

// Inputs supplies requests; Next returns false when there are no more.
type Inputs interface {
	Next() (Input, bool)
}

// Config configures an executor.
type Config struct {
	// ExecutorID is unique and stable across restarts.
	ExecutorID string
	// DeviceClass and Objective (a name the controller knows; empty is
	// "default") complete the key with the model's name.
	DeviceClass string
	Objective   string
	// CostModel is the model's cost model for this device class, as the
	// controller builds it: the policy the controller publishes is
	// restored against it, and its arms must be the controller's.
	CostModel *costmodel.Model
	// Chain holds the device's sessions for the model's blocks.
	Chain *ort.Chain
	// Controller and Cloud are the clients of the controller and of a
	// cloud executor.
	Controller api.ExecutorClient
	Cloud      api.CloudClient
	// Link emulates the device-to-cloud link; nil sends over the real
	// network, whose transfer time is the call's time less the cloud's
	// work and the round trip, measured by a ping (Describe) every
	// PingEvery. Estimator is what the executor knows of the link.
	Link      *link.Emulated
	Estimator *link.Estimator
	// PingEvery is the period of the round-trip probe on a real link;
	// zero means two seconds.
	PingEvery time.Duration
	// InferTimeout bounds one call to the cloud; zero means 30 seconds.
	// A call that times out, or finds the cloud unreachable, is finished
	// on the device (see Agent.Fallbacks).
	InferTimeout time.Duration
	// Slowdown emulates a slower device: every device stage is stretched
	// to Slowdown times what it took here (1 or 0: as measured).
	Slowdown float64
	// Compress packs with zstd.
	Compress bool
	// Seed seeds the policy's exploration.
	Seed uint64
	// MaxBuffered bounds the reports held while the controller is away;
	// zero means 100,000. Beyond it new reports are dropped and counted.
	MaxBuffered int
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
	// Version is the software version sent at registration.
	Version string
}

// Agent is a running device executor.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	key    string
	arms   []costmodel.Arm
	policy atomic.Pointer[held]
	rep    *reporter
	seq    uint64
	dec    bandit.Decision

	queueMs float64 // the cloud's last reported queueing

	fallbacks atomic.Int64

	rttMu sync.Mutex
	rtt   float64 // the pinged round trip of a real link, ms (negative: none yet)
}

// held is a policy version restored for deciding.
type held struct {
	version uint64
	kind    string
	mu      sync.Mutex // Choose draws from the policy's random stream
	p       bandit.Policy
}

// New checks the cloud executor, registers with the controller (waiting,
// until ctx ends, for one that is not up yet) and restores the key's
// policy.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.CostModel == nil || cfg.Chain == nil || cfg.Controller == nil || cfg.Cloud == nil || cfg.Estimator == nil {
		return nil, errors.New("device: config needs a cost model, a chain, controller and cloud clients and a link estimator")
	}
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = 2 * time.Second
	}
	if cfg.InferTimeout <= 0 {
		cfg.InferTimeout = 30 * time.Second
	}
	if cfg.ExecutorID == "" || cfg.DeviceClass == "" {
		return nil, errors.New("device: config needs an executor id and a device class")
	}
	if cfg.Chain.Manifest.Name != cfg.CostModel.Manifest.Name || cfg.Chain.K() != cfg.CostModel.Manifest.K() {
		return nil, fmt.Errorf("device: the sessions are of model %s (%d blocks), the cost model of %s (%d blocks)",
			cfg.Chain.Manifest.Name, cfg.Chain.K(), cfg.CostModel.Manifest.Name, cfg.CostModel.Manifest.K())
	}
	if cfg.Slowdown == 0 {
		cfg.Slowdown = 1
	}
	if !(cfg.Slowdown >= 1) {
		return nil, fmt.Errorf("device: slowdown %g: want at least 1", cfg.Slowdown)
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 100000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, arms: cfg.CostModel.Arms(), rtt: -1}
	if err := a.checkCloud(ctx); err != nil {
		return nil, err
	}
	req := &api.RegisterRequest{
		ExecutorId: cfg.ExecutorID, Model: cfg.CostModel.Manifest.Name, DeviceClass: cfg.DeviceClass,
		ObjectiveName: cfg.Objective, Version: cfg.Version, Labels: a.labels(),
	}
	// A fleet may start before its controller: wait for it (until ctx
	// ends), but not for a controller that refuses.
	var resp *api.RegisterResponse
	var err error
	for waited := false; ; waited = true {
		if resp, err = cfg.Controller.Register(ctx, req); err == nil || !unreachable(err) || ctx.Err() != nil {
			break
		}
		if !waited {
			a.log.Warn("controller unreachable; retrying registration", "err", err)
		}
		if link.SleepContext(ctx, retry) != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("device: register: %w", err)
	}
	if err := a.checkArms(resp.GetArms()); err != nil {
		return nil, err
	}
	a.key = resp.GetKey()
	a.seq = resp.GetAckedThroughSeq()
	if err := a.adopt(resp.GetPolicy()); err != nil {
		return nil, fmt.Errorf("device: the registered policy: %w", err)
	}
	a.rep = newReporter(cfg.Controller, cfg.ExecutorID, resp.GetLimits(), cfg.MaxBuffered, a.log)
	return a, nil
}

// labels say what of the executor is emulated.
func (a *Agent) labels() map[string]string {
	var parts []string
	if a.cfg.Slowdown > 1 {
		parts = append(parts, fmt.Sprintf("device slowdown %g", a.cfg.Slowdown))
	}
	if a.cfg.Link != nil {
		parts = append(parts, fmt.Sprintf("link %s + %g ms", filepath.Base(a.cfg.Link.Trace.Name), a.cfg.Link.RTTMs))
	}
	if len(parts) == 0 {
		return nil
	}
	return map[string]string{"emulated": strings.Join(parts, ", ")}
}

// checkCloud makes sure the cloud executor answers, accepts the token and
// serves this model with the same blocks.
func (a *Agent) checkCloud(ctx context.Context) error {
	var resp *api.DescribeResponse
	var err error
	for waited := false; ; waited = true {
		t := time.Now()
		if resp, err = a.cfg.Cloud.Describe(ctx, &api.DescribeRequest{}); err == nil {
			a.observePing(msSince(t))
			break
		}
		if !unreachable(err) || ctx.Err() != nil {
			break
		}
		if !waited {
			a.log.Warn("cloud executor unreachable; retrying", "err", err)
		}
		if link.SleepContext(ctx, retry) != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("device: the cloud executor: %w", err)
	}
	name, k := a.cfg.Chain.Manifest.Name, a.cfg.Chain.K()
	var served []string
	for _, m := range resp.GetModels() {
		if m.GetName() == name {
			if int(m.GetBlocks()) != k {
				return fmt.Errorf("device: the cloud executor splits model %s into %d blocks, this executor into %d: are both built from the same model folder?", name, m.GetBlocks(), k)
			}
			return nil
		}
		served = append(served, m.GetName())
	}
	return fmt.Errorf("device: the cloud executor does not serve model %s (it serves %v)", name, served)
}

// checkArms makes sure the controller's arms are this cost model's.
func (a *Agent) checkArms(arms []*api.Arm) error {
	if len(arms) != len(a.arms) {
		return fmt.Errorf("device: the controller's model has %d arms, this executor's %d: are both built from the same model folder?", len(arms), len(a.arms))
	}
	for i, x := range arms {
		if int(x.GetSplit()) != a.arms[i].Split || int(x.GetBits()) != a.arms[i].Bits {
			return fmt.Errorf("device: arm %d is s%d/b%d at the controller, %v here", i, x.GetSplit(), x.GetBits(), a.arms[i])
		}
	}
	return nil
}

// adopt restores a published policy and makes it the one that decides.
func (a *Agent) adopt(p *api.Policy) error {
	if p == nil {
		return errors.New("no policy")
	}
	state, err := p.DecodedBanditState()
	if err != nil {
		return err
	}
	pol, err := bandit.Restore(a.cfg.CostModel, state)
	if err != nil {
		return fmt.Errorf("version %d: %w", p.GetVersion(), err)
	}
	pol.Reseed(a.cfg.Seed ^ p.GetVersion())
	// a policy that learns the link per executor decides with this one's
	if l, ok := pol.(interface{ SetExecutor(id string) }); ok {
		l.SetExecutor(a.cfg.ExecutorID)
	}
	a.policy.Store(&held{version: p.GetVersion(), kind: p.GetBanditKind(), p: pol})
	return nil
}

// Key is the learning key the controller assigned.
func (a *Agent) Key() string { return a.key }

// PolicyVersion is the version of the policy deciding now.
func (a *Agent) PolicyVersion() uint64 { return a.policy.Load().version }

// Result is one request as the executor ran it.
type Result struct {
	Arm      costmodel.Arm
	Stages   costmodel.Stages
	Correct  bool
	HasLabel bool
	Version  uint64
	// Fallback is set when the cloud could not be reached and the request
	// was finished on the device (Stages are then the device's extra work
	// only, and nothing was reported).
	Fallback bool
}

// Run starts the policy watcher and the reporter, serves requests until
// inputs run out, n requests are done (n <= 0: no bound) or ctx ends, then
// flushes the reports (waiting up to flush for the controller's acks). It
// calls each (when not nil) with every request's result.
func (a *Agent) Run(ctx context.Context, inputs Inputs, n int, flush time.Duration, each func(Result)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.watch(ctx) }()
	go func() { defer wg.Done(); a.rep.run(ctx) }()
	if a.cfg.Link == nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.ping(ctx) }()
	}
	var runErr error
	for i := 0; n <= 0 || i < n; i++ {
		in, ok := inputs.Next()
		if !ok {
			break
		}
		res, err := a.serve(ctx, in)
		if err != nil {
			if ctx.Err() == nil {
				runErr = err
			}
			break
		}
		if each != nil {
			each(res)
		}
	}
	flushErr := a.rep.flush(ctx, flush)
	cancel()
	wg.Wait()
	return errors.Join(runErr, flushErr)
}

// Dropped is the number of reports dropped because the buffer was full.
func (a *Agent) Dropped() int64 { return a.rep.dropped.Load() }

// Fallbacks is the number of requests the executor finished on the device
// because the cloud executor could not be reached.
func (a *Agent) Fallbacks() int64 { return a.fallbacks.Load() }

// unreachable reports whether a cloud call failed for want of the cloud
// (down, unreachable, too slow), not for what was asked of it.
func unreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// finishLocally runs the blocks after the split on the device when the
// cloud cannot be reached, so that the request is still answered. It is
// not reported: its stages are not those of the arm the policy chose, and
// the controller would learn from a mixture. The first such request of a
// run is logged, all are counted.
func (a *Agent) finishLocally(ctx context.Context, in Input, act []float32, arm costmodel.Arm, version uint64, cause error) (Result, error) {
	if a.fallbacks.Add(1) == 1 {
		a.log.Warn("cloud executor unreachable: finishing requests on the device, unreported", "err", cause)
	}
	t := time.Now()
	out, err := a.cfg.Chain.Run(arm.Split, a.cfg.Chain.K(), act)
	if err != nil {
		return Result{}, fmt.Errorf("device: blocks %d..%d after the cloud failed (%v): %w", arm.Split+1, a.cfg.Chain.K(), cause, err)
	}
	st := costmodel.Stages{Arm: costmodel.Arm{Split: a.cfg.Chain.K(), Bits: 32}}
	if err := a.stretch(ctx, t, &st.DeviceMs); err != nil {
		return Result{}, err
	}
	res := Result{Arm: arm, Stages: st, Version: version, HasLabel: in.Label >= 0, Fallback: true}
	res.Correct = res.HasLabel && argmax(out) == in.Label
	return res, nil
}

// conditions is what the executor knows before a request.
func (a *Agent) conditions() costmodel.Conditions {
	bw, rtt := a.cfg.Estimator.Estimate()
	return costmodel.Conditions{BandwidthMbps: bw, RTTMs: rtt, CloudQueueMs: a.queueMs}
}

// serve runs one request end to end and queues its report.
func (a *Agent) serve(ctx context.Context, in Input) (Result, error) {
	start := time.Now()
	cond := a.conditions()
	h := a.policy.Load()
	h.mu.Lock()
	err := h.p.Choose(cond, &a.dec)
	h.mu.Unlock()
	if err != nil {
		return Result{}, fmt.Errorf("device: policy v%d: %w", h.version, err)
	}
	arm, k := a.dec.Arm, a.cfg.Chain.K()
	st := costmodel.Stages{Arm: arm}

	t := time.Now()
	act, err := a.cfg.Chain.Run(0, arm.Split, in.X)
	if err != nil {
		return Result{}, fmt.Errorf("device: blocks 1..%d: %w", arm.Split, err)
	}
	if err := a.stretch(ctx, t, &st.DeviceMs); err != nil {
		return Result{}, err
	}
	out := act
	if arm.Split < k {
		t = time.Now()
		shape := a.cfg.Chain.Manifest.Input.Shape
		if arm.Split > 0 {
			shape = a.cfg.Chain.Manifest.Blocks[arm.Split-1].Output.Shape
		}
		opt := packing.Options{Bits: arm.Bits}
		if a.cfg.Compress {
			opt.Compression = packing.CompressionZstd
		}
		payload, err := packing.Encode(nil, act, shape, opt)
		if err != nil {
			return Result{}, fmt.Errorf("device: pack split %d at %d bits: %w", arm.Split, arm.Bits, err)
		}
		if err := a.stretch(ctx, t, &st.PackMs); err != nil {
			return Result{}, err
		}
		st.Bytes = float64(len(payload))
		var tr link.Transfer
		if a.cfg.Link != nil {
			if tr, err = a.cfg.Link.Send(ctx, len(payload)); err != nil {
				return Result{}, fmt.Errorf("device: link: %w", err)
			}
		}
		t = time.Now()
		ictx, cancel := context.WithTimeout(ctx, a.cfg.InferTimeout)
		resp, err := a.cfg.Cloud.Infer(ictx, &api.InferRequest{Model: a.cfg.Chain.Manifest.Name, Split: uint32(arm.Split), Payload: payload,
			RequestId: fmt.Sprintf("%s-%d", a.cfg.ExecutorID, a.seq+1)})
		cancel()
		if err != nil {
			if !unreachable(err) || ctx.Err() != nil {
				return Result{}, fmt.Errorf("device: cloud: %w", err)
			}
			// The cloud is away: finish the request here, and report
			// nothing of it (its stages are not the arm's).
			return a.finishLocally(ctx, in, act, arm, h.version, err)
		}
		call := msSince(t)
		st.CloudQueueMs, st.UnpackMs, st.CloudMs = resp.GetQueueMs(), resp.GetUnpackMs(), resp.GetComputeMs()
		beyond := max(0, call-st.CloudQueueMs-st.UnpackMs-st.CloudMs) // what the call took beyond the cloud's work
		if a.cfg.Link != nil {
			// The emulated transfer and round trip, and the real one of
			// loopback on top.
			st.NetworkMs, st.RTTMs = tr.TransferMs, tr.RTTMs+beyond
		} else {
			// The network's share: the round trip the pings measure, the
			// rest is the transfer.
			rtt := a.pingMs()
			st.RTTMs = min(rtt, beyond)
			st.NetworkMs = beyond - st.RTTMs
		}
		a.cfg.Estimator.Observe(len(payload), st.NetworkMs, st.RTTMs)
		a.queueMs = st.CloudQueueMs
		out = resp.GetOutput()
	}
	res := Result{Arm: arm, Stages: st, Version: h.version, HasLabel: in.Label >= 0}
	var acc *float64
	if res.HasLabel {
		v := 0.0
		if argmax(out) == in.Label {
			v, res.Correct = 1, true
		}
		acc = &v
	}
	a.seq++
	a.rep.add(&api.Report{
		Seq: a.seq, Key: a.key, Arm: &api.Arm{Split: uint32(arm.Split), Bits: uint32(arm.Bits)},
		Propensity: a.dec.Prob, Explore: a.dec.Prob < 1 && !isGreedy(a.dec), PolicyVersion: h.version,
		Conditions: &api.Conditions{BandwidthMbps: cond.BandwidthMbps, RttMs: cond.RTTMs, CloudQueueMs: cond.CloudQueueMs},
		Stages: &api.Stages{DeviceMs: st.DeviceMs, PackMs: st.PackMs, NetworkMs: st.NetworkMs, RttMs: st.RTTMs,
			CloudQueueMs: st.CloudQueueMs, CloudMs: st.CloudMs, UnpackMs: st.UnpackMs, LatencyMs: st.LatencyMs()},
		Bytes: st.Bytes, Accuracy: acc, StartUnixNano: start.UnixNano(),
		RequestId: fmt.Sprintf("%s-%d", a.cfg.ExecutorID, a.seq), PolicyKind: h.kind, Probs: slices.Clone(a.dec.Probs),
	})
	res.Stages = st
	return res, nil
}

// isGreedy reports whether the decision took the most probable arm.
func isGreedy(d bandit.Decision) bool {
	for _, p := range d.Probs {
		if p > d.Prob {
			return false
		}
	}
	return true
}

// stretch records the device stage that began at t, first waiting so that
// it lasts Slowdown times what it took.
func (a *Agent) stretch(ctx context.Context, t time.Time, dst *float64) error {
	took := time.Since(t)
	if a.cfg.Slowdown > 1 {
		if err := link.SleepContext(ctx, time.Duration(float64(took)*(a.cfg.Slowdown-1))); err != nil {
			return err
		}
	}
	*dst = msSince(t)
	return nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

func argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if best < 0 || x > v[best] {
			best = i
		}
	}
	return best
}

// ping measures the round trip of a real link every PingEvery with the
// cloud's cheapest call.
func (a *Agent) ping(ctx context.Context) {
	for link.SleepContext(ctx, a.cfg.PingEvery) == nil {
		t := time.Now()
		if _, err := a.cfg.Cloud.Describe(ctx, &api.DescribeRequest{}); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("cloud ping failed", "err", err)
			}
			continue
		}
		a.observePing(msSince(t))
	}
}

// observePing folds a round trip into the estimate (a weighted mean, as the
// link estimator's).
func (a *Agent) observePing(ms float64) {
	a.rttMu.Lock()
	defer a.rttMu.Unlock()
	if a.rtt < 0 {
		a.rtt = ms
		return
	}
	a.rtt += 0.2 * (ms - a.rtt)
}

// pingMs is the current round-trip estimate of a real link.
func (a *Agent) pingMs() float64 {
	a.rttMu.Lock()
	defer a.rttMu.Unlock()
	return max(a.rtt, 0)
}
