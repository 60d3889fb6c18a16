// Package device is the device executor: for every request it measures its
// context, lets the policy the controller published choose an arm (locally:
// no round trip), runs blocks 1..s with ONNX Runtime, packs the tensor at
// the split, sends it to the cloud executor over the link, and reports what
// each stage took back to the controller. A watcher keeps the policy
// fresh; if the controller is unreachable the executor keeps deciding with
// the policy it holds and buffers its reports until it is back.
//
// Applications call it through the Device API (api/device.proto; Service
// is the gRPC adapter, package client the application's side): Infer
// serves many requests at once, the device stage, the transfer and the
// cloud stage of different requests overlapping up to a depth, and
// Feedback joins ground truth that comes later to the request's report
// within a window. The package does not own the learning (bandit, the
// controller) or the transport's security (api).
package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
	// Depth bounds the requests in flight at once (accepted and not yet
	// answered): the device stage, the transfer and the cloud stage of
	// different requests overlap up to it. Beyond it Infer refuses with
	// ErrBusy; nothing queues without bound. Zero means 8.
	Depth int
	// FeedbackWindow is how long the report of a request without a label
	// waits for Feedback before it goes without; zero sends reports at once
	// and refuses Feedback.
	FeedbackWindow time.Duration
	// MaxHeld bounds the reports waiting for feedback; beyond it the
	// oldest goes without. Zero means 10,000.
	MaxHeld int
	// ShadowShare is the share of unlabelled requests, in [0, 1], whose
	// full-precision output is also computed (where the cost model says it
	// is cheaper: the rest of the model on the device, or the cloud at 32
	// bits) and whose agreement with the served output is reported as a
	// shadow accuracy signal.
	ShadowShare float64
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
	// Version is the software version sent at registration.
	Version string
}

// Agent is a running device executor. Its methods are safe for concurrent
// use: Infer serves many requests at once (up to Config.Depth), and the
// policy, the report sequence and the link estimate are shared under
// their own locks.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	key    string
	arms   []costmodel.Arm
	policy atomic.Pointer[held]
	// payloads holds packed payloads' buffers (*[]byte) for the next
	// request.
	payloads sync.Pool
	score    scorer // the accuracy table's metric
	rep      *reporter
	book     *book

	queueMs atomic.Uint64 // math.Float64bits of the cloud's last reported queueing

	// The device runs one stage at a time (devMu) and the link carries one
	// transfer at a time (linkMu); requests overlap across them. Both are
	// taken in arrival order, so that no request starves.
	devMu  fifo
	linkMu fifo
	slots  chan struct{} // one per request in flight
	reqN   atomic.Uint64 // generated request ids
	shadow atomic.Uint64 // sampling of shadowed requests

	fallbacks atomic.Int64

	// Lifecycle: Start starts the loops, Stop ends them.
	life     sync.Mutex
	started  bool
	stopped  bool
	inflight sync.WaitGroup // requests being served and shadow work
	bg       sync.WaitGroup // the loops
	bgCtx    context.Context
	cancel   context.CancelFunc

	rttMu sync.Mutex
	rtt   float64 // the pinged round trip of a real link, ms (negative: none yet)
}

// fifo is a lock granted in the order it was asked for: goroutines
// blocked sending on a channel are woken first come, first served (a
// sync.Mutex lets a newcomer overtake a waiter).
type fifo chan struct{}

func (f fifo) Lock()   { f <- struct{}{} }
func (f fifo) Unlock() { <-f }

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
	if cfg.Depth <= 0 {
		cfg.Depth = 8
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 10000
	}
	if !(cfg.ShadowShare >= 0 && cfg.ShadowShare <= 1) {
		return nil, fmt.Errorf("device: shadow share %g: want a share in [0, 1]", cfg.ShadowShare)
	}
	if cfg.FeedbackWindow < 0 {
		return nil, fmt.Errorf("device: feedback window %v: want zero or more", cfg.FeedbackWindow)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	score, why, err := newScorer(cfg.CostModel)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("device: outputs scored with the accuracy table's metric", "model", cfg.CostModel.Manifest.Name, "metric", score.m.String(), "why", why)
	a := &Agent{cfg: cfg, log: cfg.Logger, arms: cfg.CostModel.Arms(), score: score, rtt: -1, slots: make(chan struct{}, cfg.Depth),
		devMu: make(fifo, 1), linkMu: make(fifo, 1)}
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
	for waited := false; ; waited = true {
		if resp, err = cfg.Controller.Register(ctx, req); err == nil || !worthWaiting(err) || ctx.Err() != nil {
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
	a.reqN.Store(resp.GetAckedThroughSeq())
	if err := a.adopt(resp.GetPolicy()); err != nil {
		return nil, fmt.Errorf("device: the registered policy: %w", err)
	}
	a.rep = newReporter(cfg.Controller, cfg.ExecutorID, resp.GetLimits(), cfg.MaxBuffered, resp.GetAckedThroughSeq(), a.log)
	a.book = newBook(cfg.FeedbackWindow, cfg.MaxHeld, a.rep.add)
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
		if !worthWaiting(err) || ctx.Err() != nil {
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
	RequestID string
	Arm       costmodel.Arm
	// Prob is the probability the policy chose Arm with.
	Prob   float64
	Stages costmodel.Stages
	// LatencyMs is the request's time from its decision to its answer,
	// waits for the device and the link included (under pipelining, more
	// than the sum of the stages).
	LatencyMs float64
	// Output is the model's output (the last block's, flattened).
	Output []float32
	// Correct is set when the request carried labels and every row of
	// the output was right under the model's metric.
	Correct  bool
	HasLabel bool
	Version  uint64
	// Fallback is set when the cloud could not be reached and the request
	// was finished on the device (Stages are then the device's extra work
	// only, and nothing was reported).
	Fallback bool
	// FeedbackUntil is when the request's report stops waiting for
	// Feedback; zero when it does not wait.
	FeedbackUntil time.Time
}

// Start starts the policy watcher, the reporter, the round-trip probe of
// a real link and the feedback window's clock; they run until ctx ends or
// Stop. Infer may be called once Start has returned.
func (a *Agent) Start(ctx context.Context) {
	a.life.Lock()
	defer a.life.Unlock()
	if a.started {
		return
	}
	a.started = true
	a.bgCtx, a.cancel = context.WithCancel(ctx)
	ctx = a.bgCtx
	a.bg.Add(3)
	go func() { defer a.bg.Done(); a.watch(ctx) }()
	go func() { defer a.bg.Done(); a.rep.run(ctx) }()
	go func() { defer a.bg.Done(); a.book.run(ctx) }()
	if a.cfg.Link == nil {
		a.bg.Add(1)
		go func() { defer a.bg.Done(); a.ping(ctx) }()
	}
}

// Stop refuses new requests, waits for those in flight, sends the reports
// still waiting for feedback without it, waits up to flush for the
// controller to acknowledge every report, and ends the loops Start
// started. Reports unacknowledged then are an error that counts them.
func (a *Agent) Stop(flush time.Duration) error {
	a.life.Lock()
	if !a.started || a.stopped {
		a.life.Unlock()
		return nil
	}
	a.stopped = true
	a.life.Unlock()
	a.inflight.Wait()
	a.book.releaseAll()
	err := a.rep.flush(a.bgCtx, flush)
	a.cancel()
	a.bg.Wait()
	return err
}

// Run starts the executor, serves requests from inputs one after another
// until they run out, n requests are done (n <= 0: no bound) or ctx ends,
// then stops, flushing the reports (waiting up to flush for the
// controller's acks). It calls each (when not nil) with every request's
// result.
func (a *Agent) Run(ctx context.Context, inputs Inputs, n int, flush time.Duration, each func(Result)) error {
	a.Start(ctx)
	var runErr error
	for i := 0; n <= 0 || i < n; i++ {
		in, ok := inputs.Next()
		if !ok {
			break
		}
		res, err := a.Infer(ctx, Request{X: in.X, Label: in.Label})
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
	return errors.Join(runErr, a.Stop(flush))
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

// worthWaiting reports whether a call at start failed in a way that waiting
// may mend: the server is unreachable, and not because the TLS handshake
// failed (a certificate that does not match will not match later).
func worthWaiting(err error) bool {
	return unreachable(err) && !api.IsHandshakeFailure(err)
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

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

// supportBits is the bitset of the arms the decision could have chosen
// (probability above zero), arm i at bit i%8 of byte i/8.
func supportBits(probs []float64) []byte {
	b := make([]byte, (len(probs)+7)/8)
	for i, p := range probs {
		if p > 0 {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// allowedBits are the manifest's precisions, which fix the arm order.
func allowedBits(cm *costmodel.Model) []uint32 {
	out := make([]uint32, len(cm.Manifest.AllowedBits))
	for i, b := range cm.Manifest.AllowedBits {
		out[i] = uint32(b)
	}
	return out
}
