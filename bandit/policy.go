package bandit

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dynoml/dyno/costmodel"
)

// Sentinel errors. Each is wrapped with context; test with errors.Is.
var (
	// ErrInvalid is wrapped by every validation failure of a config, a
	// conditions value or a report.
	ErrInvalid = errors.New("bandit: invalid input")
	// ErrNoEligibleArm means the mask, the pin and the accuracy floor leave
	// nothing to choose.
	ErrNoEligibleArm = errors.New("bandit: no eligible arm")
	// ErrUnknownArm means a report names an arm the model does not have.
	ErrUnknownArm = errors.New("bandit: unknown arm")
	// ErrUnknownPolicy means a policy name or a serialised kind is not one
	// of Names().
	ErrUnknownPolicy = errors.New("bandit: unknown policy")
	// ErrCorrupt means serialised state could not be decoded.
	ErrCorrupt = errors.New("bandit: corrupt state")
	// ErrVersion means serialised state has a format version this build
	// does not read.
	ErrVersion = errors.New("bandit: unsupported state version")
	// ErrModelMismatch means serialised state was written for another model
	// (another arm set) than the one it is restored against.
	ErrModelMismatch = errors.New("bandit: state does not match the model")
)

// Chooser picks an arm for one request. Choose writes the chosen arm, the
// probability it was chosen with and the full distribution (one entry per
// arm of the model, in costmodel.Model.Arms order, zero for arms that could
// not be chosen) into d, reusing d.Probs.
type Chooser interface {
	Choose(c costmodel.Conditions, d *Decision) error
}

// Learner learns from one executed request. The report is not retained.
type Learner interface {
	Learn(r *Report) error
}

// Policy is a chooser that learns, names itself and serialises. Restore
// reads what MarshalBinary writes; the restored policy continues exactly
// where the original was, random stream included, unless Reseed is called.
type Policy interface {
	Chooser
	Learner
	encoding.BinaryMarshaler
	// Name is the policy's kind, one of Names().
	Name() string
	// Version counts the reports learned from; Decision.Version carries
	// it into the report so a learner knows which state chose.
	Version() uint64
	// Reseed restarts the policy's random stream, so that executors
	// restoring the same published snapshot draw independently.
	Reseed(seed uint64)
}

// Decision is the outcome of Choose.
type Decision struct {
	// Index is the chosen arm's position in costmodel.Model.Arms.
	Index int
	Arm   costmodel.Arm
	// Prob is the propensity: the probability the policy chose Arm with.
	Prob float64
	// Probs is the full distribution over the model's arms; it sums to one.
	Probs []float64
	// Version is the policy's Version when it chose.
	Version uint64
}

// Report is what an executor measured for one request: the conditions it
// chose under, what it chose and with what probability, the observed stage
// times and an accuracy signal. It carries no transport types; the
// controller maps its wire form to this.
type Report struct {
	Conditions    costmodel.Conditions
	Arm           costmodel.Arm
	Propensity    float64
	PolicyVersion uint64
	// Observed holds the measured device, pack, transfer (NetworkMs),
	// round-trip, queue, cloud and unpack milliseconds and the bytes sent.
	// Observed.Arm and Observed.Accuracy are ignored.
	Observed costmodel.Stages
	// HasAccuracy says whether Accuracy carries a signal.
	HasAccuracy bool
	// Accuracy is 1 when the result was correct (or agreed with full
	// precision), 0 when not; values in between are soft agreement.
	Accuracy float64
	Time     time.Time
	// Executor is the id of the executor that ran the request; empty
	// when unknown. Dyno learns the link stages per executor from it.
	Executor string
}

// Validate names the first bad field.
func (r *Report) Validate() error {
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: report: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if err := r.Conditions.Validate(); err != nil {
		return fmt.Errorf("%w: report: %w", ErrInvalid, err)
	}
	if !(r.Propensity > 0 && r.Propensity <= 1) {
		return bad("propensity", "%g is outside (0, 1]", r.Propensity)
	}
	if err := r.Observed.ValidateMeasured(); err != nil {
		return fmt.Errorf("%w: report: observed.%w", ErrInvalid, err)
	}
	if r.HasAccuracy && !(r.Accuracy >= 0 && r.Accuracy <= 1) {
		return bad("accuracy", "%g is outside [0, 1]", r.Accuracy)
	}
	return nil
}

// Config is what every policy is built from. The zero value of each field
// is documented; Objective is required.
type Config struct {
	// Objective is what the policy minimises, with its accuracy floor and
	// SLO.
	Objective costmodel.Objective
	// Allowed masks arms by index in costmodel.Model.Arms; nil allows all.
	Allowed []bool
	// Pin, when non-nil, is an operator pin: the policy always chooses it
	// (probability one) while still learning from reports.
	Pin *costmodel.Arm
	// Seed seeds the policy's random stream (zero is a valid seed).
	Seed uint64
	// Layers describes every block by layer type for the Neurosurgeon and
	// ANS baselines; nil treats each block as one convolution of its
	// manifest FLOPs.
	Layers [][]LayerStats
	// Dyno tunes dyno's learner; zero values take the defaults.
	Dyno DynoConfig
	// EGreedy tunes the epsilon-greedy baseline.
	EGreedy EGreedyConfig
}

// LayerStats is one layer type's share of a block: how many layers of the
// kind and their FLOPs.
type LayerStats struct {
	// Kind is "conv", "dwconv", "pool", "add", "gap" or "fc"; other names
	// are allowed and regressed as their own type.
	Kind  string  `json:"kind"`
	Count int     `json:"count"`
	FLOPs float64 `json:"flops"`
}

// validateConfig checks what every policy needs.
func validateConfig(cm *costmodel.Model, cfg *Config) error {
	if cm == nil {
		return fmt.Errorf("%w: config: nil cost model", ErrInvalid)
	}
	if err := cfg.Objective.Validate(); err != nil {
		return fmt.Errorf("%w: config: %w", ErrInvalid, err)
	}
	n := len(cm.Arms())
	if cfg.Allowed != nil && len(cfg.Allowed) != n {
		return fmt.Errorf("%w: config: allowed: %d entries for %d arms", ErrInvalid, len(cfg.Allowed), n)
	}
	if cfg.Pin != nil {
		i, ok := cm.Index(*cfg.Pin)
		if !ok {
			return fmt.Errorf("%w: config: pin: %v: %w", ErrInvalid, *cfg.Pin, ErrUnknownArm)
		}
		if cfg.Allowed != nil && !cfg.Allowed[i] {
			return fmt.Errorf("%w: config: pin: %v is masked", ErrInvalid, *cfg.Pin)
		}
	}
	if cfg.Layers != nil && len(cfg.Layers) != cm.Manifest.K() {
		return fmt.Errorf("%w: config: layers: %d entries for %d blocks", ErrInvalid, len(cfg.Layers), cm.Manifest.K())
	}
	for i, l := range cfg.Layers {
		for j, s := range l {
			if s.Count < 0 || math.IsNaN(s.FLOPs) || math.IsInf(s.FLOPs, 0) || s.FLOPs < 0 {
				return fmt.Errorf("%w: config: layers[%d][%d]: count %d, flops %g", ErrInvalid, i, j, s.Count, s.FLOPs)
			}
		}
	}
	return nil
}

// Names lists every policy kind New builds.
func Names() []string {
	return []string{NameDyno, NameStatic, NameANS, NameNeurosurgeon, NameEGreedy, NameDevice, NameCloud}
}

// Policy kinds.
const (
	NameDyno         = "dyno"
	NameStatic       = "static"
	NameANS          = "ans"
	NameNeurosurgeon = "neurosurgeon"
	NameEGreedy      = "egreedy"
	NameDevice       = "device"
	NameCloud        = "cloud"
)

// New builds the policy of the given kind.
func New(kind string, cm *costmodel.Model, cfg Config) (Policy, error) {
	switch kind {
	case NameDyno:
		return NewDyno(cm, cfg)
	case NameStatic:
		return NewStatic(cm, cfg)
	case NameANS:
		return NewANS(cm, cfg)
	case NameNeurosurgeon:
		return NewNeurosurgeon(cm, cfg)
	case NameEGreedy:
		return NewEGreedy(cm, cfg)
	case NameDevice:
		return NewDeviceOnly(cm, cfg)
	case NameCloud:
		return NewCloudOnly(cm, cfg)
	}
	return nil, fmt.Errorf("%w: %q (known: %v)", ErrUnknownPolicy, kind, Names())
}
