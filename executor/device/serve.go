package device

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/executor/packing"
)

// maxRequestID bounds a caller's request id (the controller's limit is
// larger).
const maxRequestID = 128

// Request is one application request.
type Request struct {
	// Model must be empty or the executor's model.
	Model string
	// X is the model's input, row-major; Shape its shape (nil: the
	// model's).
	X     []float32
	Shape []int64
	// Label is the class the output should have, for an output of one
	// row under a class metric; negative: unknown.
	Label int
	// Labels is the class of every row of the output (see
	// DeviceInferRequest.labels), instead of Label; nil: unknown.
	Labels []int
	// RequestID names the request in Feedback and traces; empty: the
	// executor makes one.
	RequestID string
}

// validate refuses what the model cannot take, naming what is wrong.
func (a *Agent) validate(r *Request) error {
	m := a.cfg.Chain.Manifest
	if r.Model != "" && r.Model != m.Name {
		return fmt.Errorf("%w: model %q: this executor serves %s", ErrInvalid, r.Model, m.Name)
	}
	if len(r.RequestID) > maxRequestID {
		return fmt.Errorf("%w: request_id is %d bytes, at most %d", ErrInvalid, len(r.RequestID), maxRequestID)
	}
	want := m.Input
	if r.Shape != nil && !slices.Equal(r.Shape, want.Shape) {
		return fmt.Errorf("%w: input shape %v: model %s takes %v (%s)", ErrInvalid, r.Shape, m.Name, want.Shape, want.Name)
	}
	if int64(len(r.X)) > want.Elements {
		return fmt.Errorf("%w: input is oversized: %d values, model %s takes %d (shape %v)", ErrInvalid, len(r.X), m.Name, want.Elements, want.Shape)
	}
	if int64(len(r.X)) != want.Elements {
		return fmt.Errorf("%w: input holds %d values, shape %v needs %d", ErrInvalid, len(r.X), want.Shape, want.Elements)
	}
	if i := nonFinite(r.X); i >= 0 {
		return fmt.Errorf("%w: input value %d is %v: every value must be finite", ErrInvalid, i, r.X[i])
	}
	if r.Label >= 0 {
		if r.Labels != nil {
			return fmt.Errorf("%w: the request has both label and labels: give one", ErrInvalid)
		}
		r.Labels = []int{r.Label}
	}
	if r.Labels != nil {
		return a.score.checkLabels(r.Labels, "label")
	}
	return nil
}

// nonFinite is the index of x's first NaN or infinity, or -1. It tests
// blocks of values without a branch per value (a float32 is not finite
// when its exponent bits are all ones: adding one to that exponent
// carries into the sign bit), then finds the index in the block that
// has one.
func nonFinite(x []float32) int {
	const block = 256
	for lo := 0; lo < len(x); lo += block {
		hi := min(lo+block, len(x))
		var bad uint32
		for _, v := range x[lo:hi] {
			bad |= (math.Float32bits(v)&0x7f800000 + 0x00800000) & 0x80000000
		}
		if bad == 0 {
			continue
		}
		for i := lo; i < hi; i++ {
			if math.Float32bits(x[i])&0x7f800000 == 0x7f800000 {
				return i
			}
		}
	}
	return -1
}

// Infer serves one request: it decides the arm, runs the device stage,
// the transfer and the cloud stage, and answers. Requests run
// concurrently, up to Config.Depth at once (ErrBusy beyond it): the device
// runs one device stage at a time and the link carries one transfer at a
// time, so the stages of different requests overlap as in a pipeline.
// The report goes to the controller at once when the request carried a
// label, else when feedback arrives or its window closes.
func (a *Agent) Infer(ctx context.Context, req Request) (Result, error) {
	if err := a.validate(&req); err != nil {
		return Result{}, err
	}
	a.life.Lock()
	if !a.started || a.stopped {
		a.life.Unlock()
		return Result{}, ErrStopped
	}
	a.inflight.Add(1)
	a.life.Unlock()
	defer a.inflight.Done()
	select {
	case a.slots <- struct{}{}:
	default:
		return Result{}, fmt.Errorf("%w: %d already (the executor's depth); retry later", ErrBusy, a.cfg.Depth)
	}
	defer func() { <-a.slots }()

	id := req.RequestID
	if id == "" {
		id = fmt.Sprintf("%s-%d", a.cfg.ExecutorID, a.reqN.Add(1))
	}
	if err := a.book.reserve(id); err != nil {
		return Result{}, err
	}
	res, rep, act, err := a.serve(ctx, req, id)
	if err != nil || rep == nil {
		a.book.abandon(id)
		return res, err
	}
	wait := !res.HasLabel && a.cfg.FeedbackWindow > 0
	var until time.Time
	if wait {
		until = time.Now().Add(a.cfg.FeedbackWindow)
		res.FeedbackUntil = until
	}
	kept := a.score.keep(res.Output)
	if !res.HasLabel && a.sampleShadow() {
		// The shadow runs after the answer, off the request's path; the
		// report waits for it.
		a.inflight.Add(1)
		go func() {
			defer a.inflight.Done()
			if v, ok := a.shadowAgreement(a.bgCtx, res.Arm, req.X, act, res.Output); ok {
				rep.Accuracy, rep.AccuracyShadow = &v, true
			}
			a.book.finish(id, rep, kept, wait, until)
		}()
		return res, nil
	}
	a.book.finish(id, rep, kept, wait, until)
	return res, nil
}

// sampleShadow says whether the next unlabelled request is shadowed: a
// steady share of ShadowShare, without randomness.
func (a *Agent) sampleShadow() bool {
	if a.cfg.ShadowShare <= 0 {
		return false
	}
	i := a.shadow.Add(1) - 1
	return math.Floor(float64(i+1)*a.cfg.ShadowShare) > math.Floor(float64(i)*a.cfg.ShadowShare)
}

// FeedbackValue gives the request id an accuracy signal v in [0, 1].
func (a *Agent) FeedbackValue(id string, v float64) error {
	if !(v >= 0 && v <= 1) {
		return fmt.Errorf("%w: feedback value %g: want a signal in [0, 1]", ErrInvalid, v)
	}
	_, err := a.book.feedback(id, func([]float32) (float64, error) { return v, nil })
	return err
}

// FeedbackLabel gives the request id its true class, for an output of one
// row; the signal is the output's score against it under the model's
// metric.
func (a *Agent) FeedbackLabel(id string, label int) (float64, error) {
	return a.FeedbackLabels(id, []int{label})
}

// FeedbackLabels gives the request id the true class of every row of its
// output; the signal is the share of rows right under the model's metric.
func (a *Agent) FeedbackLabels(id string, labels []int) (float64, error) {
	if err := a.score.checkLabels(labels, "feedback label"); err != nil {
		return 0, err
	}
	return a.book.feedback(id, func(out []float32) (float64, error) {
		return a.score.label(out, labels), nil
	})
}

// Waiting is the number of reports waiting for feedback.
func (a *Agent) Waiting() int { return a.book.waiting() }

// Depth is the most requests served at once.
func (a *Agent) Depth() int { return a.cfg.Depth }

// conditions is what the executor knows before a request.
func (a *Agent) conditions() costmodel.Conditions {
	bw, rtt := a.cfg.Estimator.Estimate()
	return costmodel.Conditions{BandwidthMbps: bw, RTTMs: rtt, CloudQueueMs: math.Float64frombits(a.queueMs.Load())}
}

// splitShape is the shape of the tensor crossing split s.
func (a *Agent) splitShape(s int) []int64 {
	if s == 0 {
		return a.cfg.Chain.Manifest.Input.Shape
	}
	return a.cfg.Chain.Manifest.Blocks[s-1].Output.Shape
}

// serve runs one request end to end and builds its report (nil when the
// request fell back to the device and is not reported). act is the
// unquantised tensor at the split.
func (a *Agent) serve(ctx context.Context, req Request, id string) (Result, *api.Report, []float32, error) {
	start := time.Now()
	cond := a.conditions()
	h := a.policy.Load()
	var dec bandit.Decision
	h.mu.Lock()
	err := h.p.Choose(cond, &dec)
	h.mu.Unlock()
	if err != nil {
		return Result{}, nil, nil, fmt.Errorf("device: policy v%d: %w", h.version, err)
	}
	arm, k := dec.Arm, a.cfg.Chain.K()
	st := costmodel.Stages{Arm: arm}
	res := Result{RequestID: id, Arm: arm, Prob: dec.Prob, Version: h.version, HasLabel: len(req.Labels) > 0}

	// The device stage: blocks 1..s and packing, one request at a time.
	a.devMu.Lock()
	t := time.Now()
	act, err := a.cfg.Chain.Run(0, arm.Split, req.X)
	if err != nil {
		a.devMu.Unlock()
		return Result{}, nil, nil, fmt.Errorf("device: blocks 1..%d: %w", arm.Split, err)
	}
	if err := a.stretch(ctx, t, &st.DeviceMs); err != nil {
		a.devMu.Unlock()
		return Result{}, nil, nil, err
	}
	var payload []byte
	if arm.Split < k {
		t = time.Now()
		opt := packing.Options{Bits: arm.Bits}
		if a.cfg.Compress {
			opt.Compression = packing.CompressionZstd
		}
		pb, _ := a.payloads.Get().(*[]byte)
		if pb == nil {
			pb = new([]byte)
		}
		// The call has marshalled the payload when it returns: the
		// buffer serves the next request.
		defer func() { *pb = payload[:0]; a.payloads.Put(pb) }()
		if payload, err = packing.Encode((*pb)[:0], act, a.splitShape(arm.Split), opt); err != nil {
			a.devMu.Unlock()
			return Result{}, nil, nil, fmt.Errorf("device: pack split %d at %d bits: %w", arm.Split, arm.Bits, err)
		}
		if err := a.stretch(ctx, t, &st.PackMs); err != nil {
			a.devMu.Unlock()
			return Result{}, nil, nil, err
		}
	}
	a.devMu.Unlock()

	out := act
	if arm.Split < k {
		st.Bytes = float64(len(payload))
		resp, tr, call, err := a.offload(ctx, arm.Split, payload, id)
		if err != nil {
			if !unreachable(err) || ctx.Err() != nil {
				return Result{}, nil, nil, fmt.Errorf("device: cloud: %w", err)
			}
			// The cloud is away: finish the request here, and report
			// nothing of it (its stages are not the arm's).
			res, err := a.finishLocally(ctx, req, act, res, err)
			return res, nil, nil, err
		}
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
		a.queueMs.Store(math.Float64bits(st.CloudQueueMs))
		out = resp.GetOutput()
		if err := a.score.check(out, "the cloud's"); err != nil {
			return Result{}, nil, nil, err
		}
	}
	res.Output = out
	var acc *float64
	if res.HasLabel {
		v := a.score.label(out, req.Labels)
		res.Correct = v == 1
		acc = &v
	}
	res.LatencyMs = msSince(start)
	res.Stages = st
	rep := &api.Report{
		Key: a.key, Arm: &api.Arm{Split: uint32(arm.Split), Bits: uint32(arm.Bits)},
		Propensity: dec.Prob, Explore: dec.Prob < 1 && !isGreedy(dec), PolicyVersion: h.version,
		Conditions: &api.Conditions{BandwidthMbps: cond.BandwidthMbps, RttMs: cond.RTTMs, CloudQueueMs: cond.CloudQueueMs},
		Stages: &api.Stages{DeviceMs: st.DeviceMs, PackMs: st.PackMs, NetworkMs: st.NetworkMs, RttMs: st.RTTMs,
			CloudQueueMs: st.CloudQueueMs, CloudMs: st.CloudMs, UnpackMs: st.UnpackMs, LatencyMs: res.LatencyMs},
		Bytes: st.Bytes, Accuracy: acc, StartUnixNano: start.UnixNano(),
		RequestId: id, PolicyKind: h.kind, Probs: slices.Clone(dec.Probs),
		Eligible: supportBits(dec.Probs), AllowedBits: allowedBits(a.cfg.CostModel),
	}
	return res, rep, act, nil
}

// offload sends the payload of split s over the link (one transfer at a
// time on an emulated link; the round trip does not hold it) and calls the
// cloud. call is the time of the cloud call alone, ms.
func (a *Agent) offload(ctx context.Context, split int, payload []byte, id string) (*api.InferResponse, link.Transfer, float64, error) {
	var tr link.Transfer
	if a.cfg.Link != nil {
		a.linkMu.Lock()
		var err error
		tr, err = a.cfg.Link.Transmit(ctx, len(payload))
		a.linkMu.Unlock()
		if err != nil {
			return nil, tr, 0, fmt.Errorf("device: link: %w", err)
		}
		if err := link.SleepContext(ctx, time.Duration(tr.RTTMs*float64(time.Millisecond))); err != nil {
			return nil, tr, 0, err
		}
	}
	t := time.Now()
	ictx, cancel := context.WithTimeout(ctx, a.cfg.InferTimeout)
	defer cancel()
	resp, err := a.cfg.Cloud.Infer(ictx, &api.InferRequest{Model: a.cfg.Chain.Manifest.Name, Split: uint32(split), Payload: payload, RequestId: id})
	return resp, tr, msSince(t), err
}

// finishLocally runs the blocks after the split on the device when the
// cloud cannot be reached, so that the request is still answered. It is
// not reported: its stages are not those of the arm the policy chose, and
// the controller would learn from a mixture. The first such request of a
// run is logged, all are counted.
func (a *Agent) finishLocally(ctx context.Context, req Request, act []float32, res Result, cause error) (Result, error) {
	if a.fallbacks.Add(1) == 1 {
		a.log.Warn("cloud executor unreachable: finishing requests on the device, unreported", "err", cause)
	}
	a.devMu.Lock()
	defer a.devMu.Unlock()
	t := time.Now()
	out, err := a.cfg.Chain.Run(res.Arm.Split, a.cfg.Chain.K(), act)
	if err != nil {
		return Result{}, fmt.Errorf("device: blocks %d..%d after the cloud failed (%v): %w", res.Arm.Split+1, a.cfg.Chain.K(), cause, err)
	}
	st := costmodel.Stages{Arm: costmodel.Arm{Split: a.cfg.Chain.K(), Bits: 32}}
	if err := a.stretch(ctx, t, &st.DeviceMs); err != nil {
		return Result{}, err
	}
	res.Stages, res.Output, res.Fallback = st, out, true
	res.Correct = res.HasLabel && a.score.label(out, req.Labels) == 1
	return res, nil
}

// shadowAgreement obtains the full-precision output for a request served
// with arm and scores out's agreement with it under the accuracy table's
// metric (calibration's agreement: the share of rows whose class agrees,
// or the dense metric's verdict). An output already at full
// precision (device-only, or sent at 32 bits) agrees by construction;
// otherwise the rest of the model runs where the cost model says it is
// cheaper: on the device from the unquantised tensor at the split, or in
// the cloud on that tensor sent at 32 bits. ok is false when it failed
// (logged).
func (a *Agent) shadowAgreement(ctx context.Context, arm costmodel.Arm, x, act, out []float32) (float64, bool) {
	k := a.cfg.Chain.K()
	if arm.Split == k || arm.Bits == 32 {
		return 1, true
	}
	var full []float32
	var err error
	if a.shadowLocally(arm.Split) {
		a.devMu.Lock()
		t := time.Now()
		full, err = a.cfg.Chain.Run(arm.Split, k, act)
		if err == nil {
			var ms float64
			err = a.stretch(ctx, t, &ms)
		}
		a.devMu.Unlock()
	} else {
		var payload []byte
		payload, err = packing.Encode(nil, act, a.splitShape(arm.Split), packing.Options{Bits: 32})
		if err == nil {
			var resp *api.InferResponse
			resp, _, _, err = a.offload(ctx, arm.Split, payload, "shadow")
			full = resp.GetOutput()
			if err == nil {
				err = a.score.check(full, "the cloud's full-precision")
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("shadow output failed; the report goes without a shadow signal", "arm", arm, "err", err)
		}
		return 0, false
	}
	return a.score.agreement(out, full), true
}

// shadowLocally says whether running blocks s+1..K on the device costs
// less, by the cost model, than sending the split's tensor at 32 bits and
// running them in the cloud.
func (a *Agent) shadowLocally(s int) bool {
	cm := a.cfg.CostModel
	k := a.cfg.Chain.K()
	cond := a.conditions()
	dev, okDev := cm.Index(costmodel.Arm{Split: k, Bits: 32})
	cut := -1
	for i, arm := range a.arms {
		if arm.Split == s {
			cut = i
			break
		}
	}
	raw, okRaw := cm.Index(costmodel.Arm{Split: s, Bits: 32})
	if !okDev || cut < 0 || !okRaw {
		return true
	}
	local := (cm.Predict(dev, cond).DeviceMs - cm.Predict(cut, cond).DeviceMs) * a.cfg.Slowdown
	remote := cm.Predict(raw, cond)
	return local <= remote.Network()+remote.Cloud()
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
