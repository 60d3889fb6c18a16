package controller

import (
	"fmt"
	"math"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

// item is one validated report on its way through the committer to the
// learner of its key.
type item struct {
	key       *keyEntry
	executor  string
	reportSeq uint64
	arm       int
	explore   bool
	// trace is the encoded trace record (a slice of the batch's buffer).
	trace []byte
	// seq is the trace sequence number, set by the committer.
	seq      uint64
	received int64
	// start is when the request started on the device (0 if not given).
	start   int64
	report  bandit.Report
	latency float64
	// cost is the key's objective's cost of the measured stages.
	cost float64
}

// Bounds of what an executor measures (docs/controller.md lists them). A
// report outside them is refused with InvalidArgument naming the field and
// the bound: finite is not enough, since one report of 1e308 ms would set a
// key's expected cost beyond anything learnable.
const (
	// MaxStageMs bounds every time of a report (stages.*, conditions.rtt_ms
	// and conditions.cloud_queue_ms): ten minutes.
	MaxStageMs = 600_000.0
	// MinBandwidthMbps and MaxBandwidthMbps bound conditions.bandwidth_mbps:
	// 1 kbit/s to 1 Tbit/s.
	MinBandwidthMbps = 1e-3
	MaxBandwidthMbps = 1e6
	// MaxSlowdown bounds conditions.cloud_slowdown and device_slowdown (0
	// means not measured).
	MaxSlowdown = 1000.0
	// MinPropensity is the smallest probability a chosen arm may be
	// reported with: below it, an importance weight of 1/p stops meaning
	// anything in offline evaluation.
	MinPropensity = 1e-6
	// MaxStartSkew is how far in the future (clock skew) a report's
	// start_unix_nano may be, and MaxStartAge how far in the past
	// (reports buffered while the controller was unreachable).
	MaxStartSkew = 24 * time.Hour
	MaxStartAge  = 30 * 24 * time.Hour
)

// maxRequestID bounds Report.request_id.
const maxRequestID = 256

// probsTolerance is how far a sent distribution may be from summing to one,
// and its entry for the chosen arm from the propensity.
const probsTolerance = 1e-6

// validateBatch checks every report of a batch and encodes its trace. It
// names the batch, the report and the field of the first problem. It never
// panics, whatever the batch holds.
func validateBatch(reg *registry, execID, execKey string, b *api.ReportBatch, now time.Time, maxReports int) ([]item, error) {
	if len(b.Reports) == 0 {
		return nil, badField(fmt.Sprintf("batch %d: reports", b.BatchId), "empty")
	}
	if len(b.Reports) > maxReports {
		return nil, badField(fmt.Sprintf("batch %d: reports", b.BatchId), "%d reports, at most %d in one batch", len(b.Reports), maxReports)
	}
	items := make([]item, len(b.Reports))
	buf := make([]byte, 0, 160*len(b.Reports))
	var k *keyEntry
	for i, r := range b.Reports {
		name := r.GetKey()
		if name == "" {
			name = execKey
		}
		if k == nil || k.name != name {
			k = reg.key(name)
		}
		it := &items[i]
		if err := validateReport(k, name, execKey, r, it, now); err != nil {
			fe, _ := err.(*fieldError)
			if fe == nil {
				fe = &fieldError{field: "?", msg: err.Error()}
			}
			return nil, badField(fmt.Sprintf("batch %d: reports[%d] (seq %d): %s", b.BatchId, i, r.GetSeq(), fe.field), "%s", fe.msg)
		}
		it.executor = execID
		it.report.Executor = execID
		it.received = now.UnixNano()
		it.report.Time = now
		start := len(buf)
		tr := traceOf(r, execID, name, it.received)
		tr.Cost = it.cost
		buf = tr.AppendEncoded(buf)
		it.trace = buf[start:len(buf):len(buf)]
	}
	return items, nil
}

// validateReport checks one report against its key and fills it.
func validateReport(k *keyEntry, name, execKey string, r *api.Report, it *item, now time.Time) error {
	if r == nil {
		return badField("report", "missing")
	}
	if r.Seq == 0 {
		return badField("seq", "0: reports are numbered from 1")
	}
	if k == nil {
		return badField("key", "unknown key %q (executors register their key first)", name)
	}
	if execKey != "" && name != execKey {
		return badField("key", "%q, but the executor is registered for %q", name, execKey)
	}
	if r.Arm == nil {
		return badField("arm", "missing")
	}
	arm := costmodel.Arm{Split: int(r.Arm.Split), Bits: int(r.Arm.Bits)}
	idx, ok := k.cm.Index(arm)
	if r.Arm.Split > math.MaxInt32 || r.Arm.Bits > math.MaxInt32 || !ok {
		return badField("arm", "s%d/b%d is not an arm of model %s (splits 0..%d, bits %v; device-only is s%d/b32)",
			r.Arm.Split, r.Arm.Bits, k.model, k.cm.Manifest.K(), k.cm.Manifest.AllowedBits, k.cm.Manifest.K())
	}
	if !(r.Propensity > 0 && r.Propensity <= 1) {
		return badField("propensity", "%g is outside (0, 1]", r.Propensity)
	}
	if r.Propensity < MinPropensity {
		return badField("propensity", "%g is below the floor of %g", r.Propensity, MinPropensity)
	}
	c := r.Conditions
	if c == nil {
		return badField("conditions", "missing")
	}
	if err := finite("conditions.bandwidth_mbps", c.BandwidthMbps); err != nil {
		return err
	}
	if c.BandwidthMbps == 0 {
		return badField("conditions.bandwidth_mbps", "0: a link with no bandwidth cannot carry a split")
	}
	if c.BandwidthMbps < MinBandwidthMbps || c.BandwidthMbps > MaxBandwidthMbps {
		return badField("conditions.bandwidth_mbps", "%g is outside [%g, %g]", c.BandwidthMbps, MinBandwidthMbps, MaxBandwidthMbps)
	}
	for _, f := range []struct {
		name string
		v    float64
		max  float64
	}{{"conditions.rtt_ms", c.RttMs, MaxStageMs}, {"conditions.cloud_queue_ms", c.CloudQueueMs, MaxStageMs},
		{"conditions.cloud_slowdown", c.CloudSlowdown, MaxSlowdown}, {"conditions.device_slowdown", c.DeviceSlowdown, MaxSlowdown}} {
		if err := bounded(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	s := r.Stages
	if s == nil {
		return badField("stages", "missing")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"stages.device_ms", s.DeviceMs}, {"stages.pack_ms", s.PackMs}, {"stages.network_ms", s.NetworkMs}, {"stages.rtt_ms", s.RttMs},
		{"stages.cloud_queue_ms", s.CloudQueueMs}, {"stages.cloud_ms", s.CloudMs}, {"stages.unpack_ms", s.UnpackMs}, {"stages.latency_ms", s.LatencyMs}} {
		if err := bounded(f.name, f.v, MaxStageMs); err != nil {
			return err
		}
	}
	if err := finite("bytes", r.Bytes); err != nil {
		return err
	}
	if max := k.maxBytes[idx]; max == 0 && r.Bytes != 0 {
		return badField("bytes", "%g, but the device-only arm sends nothing", r.Bytes)
	} else if max > 0 && (r.Bytes < 1 || r.Bytes > max) {
		return badField("bytes", "%g is impossible for arm %v: it sends between 1 and %.0f bytes", r.Bytes, arm, max)
	}
	if r.Accuracy != nil && !(*r.Accuracy >= 0 && *r.Accuracy <= 1) {
		return badField("accuracy", "%g is outside [0, 1]", *r.Accuracy)
	}
	if err := checkEligible(k, r.Eligible, idx); err != nil {
		return err
	}
	if err := checkAllowedBits(k, r.AllowedBits); err != nil {
		return err
	}
	if r.StartUnixNano < 0 {
		return badField("start_unix_nano", "%d is negative", r.StartUnixNano)
	}
	if r.StartUnixNano != 0 {
		if st := time.Unix(0, r.StartUnixNano); st.After(now.Add(MaxStartSkew)) || st.Before(now.Add(-MaxStartAge)) {
			return badField("start_unix_nano", "%s is more than %s ahead of or %s behind the controller's clock", st.UTC().Format(time.RFC3339), MaxStartSkew, MaxStartAge)
		}
	}
	if len(r.RequestId) > maxRequestID {
		return badField("request_id", "%d bytes, at most %d", len(r.RequestId), maxRequestID)
	}
	if len(r.PolicyKind) > 64 {
		return badField("policy_kind", "%d bytes, at most 64", len(r.PolicyKind))
	}
	if n := len(r.Probs); n > 0 {
		if n != len(k.cm.Arms()) {
			return badField("probs", "%d probabilities for %d arms", n, len(k.cm.Arms()))
		}
		sum := 0.0
		for i, p := range r.Probs {
			if !(p >= 0 && p <= 1) {
				return badField(fmt.Sprintf("probs[%d]", i), "%g is outside [0, 1]", p)
			}
			sum += p
		}
		if math.Abs(sum-1) > probsTolerance {
			return badField("probs", "sum to %g, not 1", sum)
		}
		if math.Abs(r.Probs[idx]-r.Propensity) > probsTolerance {
			return badField("propensity", "%g, but probs[%d] (the chosen arm) is %g", r.Propensity, idx, r.Probs[idx])
		}
		if len(r.Eligible) > 0 {
			for i, p := range r.Probs {
				if p > 0 && !bitSet(r.Eligible, i) {
					return badField("eligible", "arm %d has probability %g (probs[%d]) but is not in the eligible set", i, p, i)
				}
			}
		}
	}
	it.key = k
	it.reportSeq = r.Seq
	it.start = r.StartUnixNano
	it.arm = idx
	it.explore = r.Explore
	it.latency = s.LatencyMs
	it.report = bandit.Report{
		Conditions:    costmodel.Conditions{BandwidthMbps: c.BandwidthMbps, RTTMs: c.RttMs, CloudQueueMs: c.CloudQueueMs, CloudSlowdown: c.CloudSlowdown, DeviceSlowdown: c.DeviceSlowdown},
		Arm:           arm,
		Propensity:    r.Propensity,
		PolicyVersion: r.PolicyVersion,
		Observed: costmodel.Stages{Arm: arm, DeviceMs: s.DeviceMs, PackMs: s.PackMs, Bytes: r.Bytes, NetworkMs: s.NetworkMs, RTTMs: s.RttMs,
			CloudQueueMs: s.CloudQueueMs, CloudMs: s.CloudMs, UnpackMs: s.UnpackMs},
		HasAccuracy: r.Accuracy != nil,
		Accuracy:    r.GetAccuracy(),
	}
	if it.latency == 0 {
		it.latency = it.report.Observed.LatencyMs()
	}
	if o := k.objective.Load(); o != nil {
		it.cost = o.Cost(it.report.Observed)
	}
	// The bandit's own check, in case it asks for more than the above.
	if err := it.report.Validate(); err != nil {
		return badField("report", "%v", err)
	}
	return nil
}

// checkEligible checks a report's eligible set against the key's arms: a
// bitset of at most one bit per arm, holding the chosen arm idx (empty:
// not said).
func checkEligible(k *keyEntry, e []byte, idx int) error {
	if len(e) == 0 {
		return nil
	}
	n := len(k.cm.Arms())
	if m := (n + 7) / 8; len(e) > m {
		return badField("eligible", "%d bytes, a bitset over %d arms has at most %d", len(e), n, m)
	}
	if len(e) == (n+7)/8 && n%8 != 0 && e[len(e)-1]>>(n%8) != 0 {
		return badField("eligible", "bits set beyond the last of model %s's %d arms", k.model, n)
	}
	if !bitSet(e, idx) {
		a := k.cm.Arms()[idx]
		return badField("eligible", "the chosen arm s%d/b%d (index %d) is not in the eligible set", a.Split, a.Bits, idx)
	}
	return nil
}

// checkAllowedBits checks that the precisions a report's arm indices refer
// to are the key's manifest's, in its order (empty: not said).
func checkAllowedBits(k *keyEntry, bits []uint32) error {
	want := k.cm.Manifest.AllowedBits
	if len(bits) == 0 {
		return nil
	}
	same := len(bits) == len(want)
	for i := 0; same && i < len(bits); i++ {
		same = int64(bits[i]) == int64(want[i])
	}
	if !same {
		return badField("allowed_bits", "%v, but model %s's manifest has %v: the report's arm indices (eligible, probs) follow another arm order", bits, k.model, want)
	}
	return nil
}

// bitSet reports whether bit i of a bitset is set.
func bitSet(b []byte, i int) bool { return i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }

// bounded is finite, and at most max.
func bounded(field string, v, max float64) error {
	if err := finite(field, v); err != nil {
		return err
	}
	if v > max {
		return badField(field, "%g is above the bound of %g", v, max)
	}
	return nil
}

func finite(field string, v float64) error {
	switch {
	case math.IsNaN(v):
		return badField(field, "NaN")
	case math.IsInf(v, 0):
		return badField(field, "infinite")
	case v < 0:
		return badField(field, "%g is negative", v)
	}
	return nil
}

// traceOf converts a validated report to its trace record.
func traceOf(r *api.Report, exec, key string, received int64) store.Trace {
	c, s := r.Conditions, r.Stages
	return store.Trace{
		ReceivedUnixNano: received, Executor: exec, Key: key, ReportSeq: r.Seq, RequestID: r.RequestId, StartUnixNano: r.StartUnixNano,
		Split: int(r.Arm.Split), Bits: int(r.Arm.Bits), Explore: r.Explore, Propensity: r.Propensity, PolicyVersion: r.PolicyVersion,
		Conditions: store.TraceConditions{BandwidthMbps: c.BandwidthMbps, RTTMs: c.RttMs, CloudQueueMs: c.CloudQueueMs, CloudSlowdown: c.CloudSlowdown, DeviceSlowdown: c.DeviceSlowdown},
		Stages: store.TraceStages{DeviceMs: s.DeviceMs, PackMs: s.PackMs, NetworkMs: s.NetworkMs, RTTMs: s.RttMs, CloudQueueMs: s.CloudQueueMs,
			CloudMs: s.CloudMs, UnpackMs: s.UnpackMs, LatencyMs: s.LatencyMs},
		Bytes: r.Bytes, Accuracy: r.GetAccuracy(), HasAccuracy: r.Accuracy != nil, Eligible: r.Eligible,
		PolicyKind: r.PolicyKind, Probs: r.Probs, AllowedBits: allowedBitsOf(r.AllowedBits),
	}
}

func allowedBitsOf(bits []uint32) []int {
	if len(bits) == 0 {
		return nil
	}
	out := make([]int, len(bits))
	for i, b := range bits {
		out[i] = int(b)
	}
	return out
}

// banditReportOf converts a trace back to what the bandit learns from (for
// replay and catch-up).
func banditReportOf(t *store.Trace) bandit.Report {
	arm := costmodel.Arm{Split: t.Split, Bits: t.Bits}
	c, s := t.Conditions, t.Stages
	return bandit.Report{
		Conditions: costmodel.Conditions{BandwidthMbps: c.BandwidthMbps, RTTMs: c.RTTMs, CloudQueueMs: c.CloudQueueMs, CloudSlowdown: c.CloudSlowdown, DeviceSlowdown: c.DeviceSlowdown},
		Arm:        arm, Propensity: t.Propensity, PolicyVersion: t.PolicyVersion,
		Observed: costmodel.Stages{Arm: arm, DeviceMs: s.DeviceMs, PackMs: s.PackMs, Bytes: t.Bytes, NetworkMs: s.NetworkMs, RTTMs: s.RTTMs,
			CloudQueueMs: s.CloudQueueMs, CloudMs: s.CloudMs, UnpackMs: s.UnpackMs},
		HasAccuracy: t.HasAccuracy, Accuracy: t.Accuracy, Time: time.Unix(0, t.ReceivedUnixNano),
		Executor: t.Executor,
	}
}

// apiTrace converts a trace to its wire form; armIndex is the arm's index
// in the key's order.
func apiTrace(t *store.Trace, armIndex int) *api.Trace {
	r := &api.Report{
		Seq: t.ReportSeq, Key: t.Key, Arm: &api.Arm{Split: uint32(t.Split), Bits: uint32(t.Bits)}, Propensity: t.Propensity, Explore: t.Explore,
		PolicyVersion: t.PolicyVersion, Eligible: t.Eligible, Bytes: t.Bytes, StartUnixNano: t.StartUnixNano, RequestId: t.RequestID,
		PolicyKind: t.PolicyKind, Probs: t.Probs,
		Conditions: &api.Conditions{BandwidthMbps: t.Conditions.BandwidthMbps, RttMs: t.Conditions.RTTMs, CloudQueueMs: t.Conditions.CloudQueueMs,
			CloudSlowdown: t.Conditions.CloudSlowdown, DeviceSlowdown: t.Conditions.DeviceSlowdown},
		Stages: &api.Stages{DeviceMs: t.Stages.DeviceMs, PackMs: t.Stages.PackMs, NetworkMs: t.Stages.NetworkMs, RttMs: t.Stages.RTTMs,
			CloudQueueMs: t.Stages.CloudQueueMs, CloudMs: t.Stages.CloudMs, UnpackMs: t.Stages.UnpackMs, LatencyMs: t.Stages.LatencyMs},
	}
	if t.HasAccuracy {
		a := t.Accuracy
		r.Accuracy = &a
	}
	for _, b := range t.AllowedBits {
		r.AllowedBits = append(r.AllowedBits, uint32(b))
	}
	return &api.Trace{Seq: t.Seq, ExecutorId: t.Executor, ReceivedUnixNano: t.ReceivedUnixNano, Report: r, ArmIndex: uint32(armIndex), Cost: t.Cost}
}
