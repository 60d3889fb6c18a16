package tracelog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dynoml/dyno/costmodel"
)

// SchemaVersion is the version of the record schema this build writes and
// reads; docs/traces.md documents it.
const SchemaVersion = 1

// ErrInvalid is wrapped by every record validation failure.
var ErrInvalid = errors.New("tracelog: invalid record")

// Record is one executed request.
type Record struct {
	// Schema is SchemaVersion.
	Schema int `json:"schema"`
	// ID identifies the request; with Executor it is unique.
	ID string `json:"id"`
	// Key is the learning key (model/device class/objective).
	Key      string `json:"key,omitempty"`
	Executor string `json:"executor,omitempty"`
	// Seq is the record's position in the controller's log (0 if none).
	Seq  uint64    `json:"seq,omitempty"`
	Time time.Time `json:"time"`
	// Policy is the kind of policy that chose; PolicyVersion its version.
	Policy        string               `json:"policy,omitempty"`
	PolicyVersion uint64               `json:"policy_version"`
	Conditions    costmodel.Conditions `json:"conditions"`
	// Eligible lists the arm indices (costmodel.Model.Arms order) the
	// policy could choose from; empty means unknown.
	Eligible []int `json:"eligible,omitempty"`
	// EligibleMask is the same set compactly: the hex of a bitset, arm i
	// at bit i%8 of byte i/8 (the Report's eligible bytes). Empty means
	// unknown.
	EligibleMask string `json:"eligible_mask,omitempty"`
	// AllowedBits are the precisions of the model the arm indices refer
	// to, in the manifest's order (its allowed_bits): a reader rebuilds the
	// arm order from them, so a log is read back with the manifest it came
	// from. Empty means the reader's manifest as it is.
	AllowedBits []int `json:"allowed_bits,omitempty"`
	// ArmIndex is the chosen arm's index, Arm the arm itself.
	ArmIndex int           `json:"arm_index"`
	Arm      costmodel.Arm `json:"arm"`
	// Explore is set when the choice was not the policy's greedy one.
	Explore bool `json:"explore,omitempty"`
	// Propensity is the probability the chosen arm had, in (0, 1].
	Propensity float64 `json:"propensity"`
	// Probs is the full distribution over arms, when the logger knew it.
	Probs    Probs    `json:"probs,omitempty"`
	Observed Observed `json:"observed"`
	// Accuracy is the accuracy signal (1 correct, 0 wrong, or agreement),
	// nil when the request had none.
	Accuracy *float64 `json:"accuracy,omitempty"`
	// Cost is the objective's cost of Observed when it was logged.
	Cost float64 `json:"cost"`
	// StartUnixNano is when the request started on the device, and
	// ReceivedUnixNano when the controller received its report (0 when
	// unknown); Time is the first of them known.
	StartUnixNano    int64 `json:"start_unix_nano,omitempty"`
	ReceivedUnixNano int64 `json:"received_unix_nano,omitempty"`
}

// Observed is what the executors measured, stage by stage.
type Observed struct {
	DeviceMs     float64 `json:"device_ms"`
	PackMs       float64 `json:"pack_ms"`
	Bytes        float64 `json:"bytes"`
	NetworkMs    float64 `json:"network_ms"`
	RTTMs        float64 `json:"rtt_ms"`
	CloudQueueMs float64 `json:"cloud_queue_ms"`
	CloudMs      float64 `json:"cloud_ms"`
	UnpackMs     float64 `json:"unpack_ms"`
	// LatencyMs is the end-to-end latency the executor measured (0 when it
	// did not: the stages' sum stands for it).
	LatencyMs float64 `json:"latency_ms,omitempty"`
}

// Stages converts the observation to the cost model's stages of arm a.
func (o Observed) Stages(a costmodel.Arm) costmodel.Stages {
	return costmodel.Stages{Arm: a, DeviceMs: o.DeviceMs, PackMs: o.PackMs, Bytes: o.Bytes, NetworkMs: o.NetworkMs,
		RTTMs: o.RTTMs, CloudQueueMs: o.CloudQueueMs, CloudMs: o.CloudMs, UnpackMs: o.UnpackMs}
}

// FromStages is the observation of measured stages.
func FromStages(s costmodel.Stages) Observed {
	return Observed{DeviceMs: s.DeviceMs, PackMs: s.PackMs, Bytes: s.Bytes, NetworkMs: s.NetworkMs,
		RTTMs: s.RTTMs, CloudQueueMs: s.CloudQueueMs, CloudMs: s.CloudMs, UnpackMs: s.UnpackMs}
}

// probsTolerance is how far a logged distribution may sum from one.
const probsTolerance = 1e-6

// Validate names the first bad field.
func (r *Record) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if r.Schema != SchemaVersion {
		return bad("schema", "version %d, this build reads %d", r.Schema, SchemaVersion)
	}
	if r.ID == "" {
		return bad("id", "empty")
	}
	if err := r.Conditions.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if r.ArmIndex < 0 {
		return bad("arm_index", "negative (%d)", r.ArmIndex)
	}
	if !(r.Propensity > 0 && r.Propensity <= 1) {
		return bad("propensity", "%g is outside (0, 1]", r.Propensity)
	}
	if err := r.Observed.Stages(r.Arm).ValidateMeasured(); err != nil {
		return fmt.Errorf("%w: observed.%w", ErrInvalid, err)
	}
	if l := r.Observed.LatencyMs; !(l >= 0) || math.IsInf(l, 0) {
		return bad("observed.latency_ms", "%g is not a finite non-negative time", l)
	}
	if r.StartUnixNano < 0 || r.ReceivedUnixNano < 0 {
		return bad("start_unix_nano", "negative (start %d, received %d)", r.StartUnixNano, r.ReceivedUnixNano)
	}
	if math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) {
		return bad("cost", "%g is not finite", r.Cost)
	}
	if r.Accuracy != nil && !(*r.Accuracy >= 0 && *r.Accuracy <= 1) {
		return bad("accuracy", "%g is outside [0, 1]", *r.Accuracy)
	}
	if len(r.Probs) > 0 {
		if r.ArmIndex >= len(r.Probs) {
			return bad("arm_index", "%d but probs has %d arms", r.ArmIndex, len(r.Probs))
		}
		var sum float64
		for i, p := range r.Probs {
			if !(p >= 0 && p <= 1) {
				return bad(fmt.Sprintf("probs[%d]", i), "%g is outside [0, 1]", p)
			}
			sum += p
		}
		if math.Abs(sum-1) > probsTolerance {
			return bad("probs", "sums to %g, not 1", sum)
		}
		if math.Abs(r.Probs[r.ArmIndex]-r.Propensity) > probsTolerance {
			return bad("propensity", "%g but probs[%d] is %g", r.Propensity, r.ArmIndex, r.Probs[r.ArmIndex])
		}
	}
	for i, a := range r.Eligible {
		if a < 0 {
			return bad(fmt.Sprintf("eligible[%d]", i), "negative arm index %d", a)
		}
	}
	if r.EligibleMask != "" {
		if _, err := hex.DecodeString(r.EligibleMask); err != nil {
			return bad("eligible_mask", "not hex: %v", err)
		}
	}
	for i, b := range r.AllowedBits {
		if b < 1 || b > 32 {
			return bad(fmt.Sprintf("allowed_bits[%d]", i), "%d is not a precision in 1..32", b)
		}
	}
	return nil
}

// EligibleSet encodes arm indices as an EligibleMask.
func EligibleSet(arms []int) string {
	var b []byte
	for _, a := range arms {
		for len(b) <= a/8 {
			b = append(b, 0)
		}
		b[a/8] |= 1 << (a % 8)
	}
	return hex.EncodeToString(b)
}

// EligibleArms returns the eligible arm indices from the mask, or from
// Eligible when there is no mask; nil when the record states neither.
func (r *Record) EligibleArms() ([]int, error) {
	if r.EligibleMask == "" {
		return r.Eligible, nil
	}
	b, err := hex.DecodeString(r.EligibleMask)
	if err != nil {
		return nil, fmt.Errorf("%w: eligible_mask: %v", ErrInvalid, err)
	}
	var out []int
	for i, x := range b {
		for j := 0; j < 8; j++ {
			if x&(1<<j) != 0 {
				out = append(out, 8*i+j)
			}
		}
	}
	return out, nil
}
