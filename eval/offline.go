package eval

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/tracelog"
)

// Target is a policy to evaluate offline. It is only asked to choose, never
// to learn: the estimate is of the policy as it stands.
type Target struct {
	Name   string
	Policy bandit.Chooser
	// Logged makes the target the logger itself: its distribution is each
	// record's own (Policy is not used), an on-policy check whose IPS and
	// SNIPS equal the logged mean cost. It needs records that carry their
	// distribution.
	Logged bool
}

// LoggerTarget is the target that evaluates the logger itself.
func LoggerTarget(name string) Target { return Target{Name: name, Logged: true} }

// OfflineOptions configure an offline evaluation.
type OfflineOptions struct {
	EstimateOptions
	Estimators []Estimator
	// Objective turns each record's observed stages into its cost; it may
	// differ from the objective the logger optimised ("what if we cared
	// about throughput?").
	Objective costmodel.Objective
	// Reward tunes the reward model of the direct method and doubly robust
	// estimators: a dyno learner fitted on the records as they stream by,
	// each record predicted before it is learned from (progressive
	// validation), so no record's own cost leaks into its prediction.
	Reward bandit.DynoConfig
	// CurvePoints bounds the logged learning curve; zero means 500.
	CurvePoints int
}

// Offline evaluates target policies on a stream of trace records in memory
// that does not grow with the stream. It is not safe for concurrent use.
type Offline struct {
	cm      *costmodel.Model
	opt     OfflineOptions
	targets []Target
	accs    []*Accumulator
	reward  *bandit.Dyno
	rng     *rand.Rand
	boot    []float64
	decs    []bandit.Decision // per target, for the record being added
	model   []float64
	sample  Sample
	report  bandit.Report

	loggedArms []int64
	targetArms [][]float64
	curve      curve
	n          int64
}

// NewOffline prepares the evaluation of targets on records of model cm.
func NewOffline(cm *costmodel.Model, targets []Target, opt OfflineOptions) (*Offline, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("eval: no target policies")
	}
	if len(opt.Estimators) == 0 {
		opt.Estimators = Estimators
	}
	if err := opt.EstimateOptions.defaults(); err != nil {
		return nil, err
	}
	if err := opt.Objective.Validate(); err != nil {
		return nil, err
	}
	if opt.CurvePoints <= 0 {
		opt.CurvePoints = 500
	}
	arms := len(cm.Arms())
	o := &Offline{
		cm: cm, opt: opt, targets: targets,
		rng:        rand.New(rand.NewPCG(opt.Seed, 0x626f6f74)),
		boot:       make([]float64, opt.replicates()),
		loggedArms: make([]int64, arms),
		curve:      curve{max: opt.CurvePoints, every: 1},
	}
	for i, t := range targets {
		eo := opt.EstimateOptions
		eo.Seed = opt.Seed + uint64(i)*7919
		acc, err := NewAccumulator(arms, opt.Estimators, eo)
		if err != nil {
			return nil, err
		}
		o.accs = append(o.accs, acc)
		o.targetArms = append(o.targetArms, make([]float64, arms))
		o.decs = append(o.decs, bandit.Decision{})
		if t.Policy == nil && !t.Logged {
			return nil, fmt.Errorf("eval: target %q has no policy", t.Name)
		}
	}
	if o.accs[0].NeedsModel() {
		r, err := bandit.NewDyno(cm, bandit.Config{Objective: opt.Objective, Dyno: opt.Reward, Seed: opt.Seed})
		if err != nil {
			return nil, fmt.Errorf("eval: reward model: %w", err)
		}
		o.reward = r
		o.model = make([]float64, arms)
	}
	return o, nil
}

// WithBits is cm rebuilt for a manifest that allows bits instead (the
// precisions a trace record states it was logged under), so that the
// record's arm indices name the same arms; cm itself when bits is empty or
// already cm's.
func WithBits(cm *costmodel.Model, bits []int) (*costmodel.Model, error) {
	if len(bits) == 0 || slices.Equal(bits, cm.Manifest.AllowedBits) {
		return cm, nil
	}
	m := *cm.Manifest
	m.AllowedBits = slices.Clone(bits)
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("eval: the records' allowed bits %v: %w", bits, err)
	}
	return costmodel.New(&m, cm.Device, cm.Cloud, cm.Accuracy)
}

// Add feeds one record. A record of another model (an arm index that does
// not name the same arm here, or allowed bits other than the model's) is an
// error.
func (o *Offline) Add(rec *tracelog.Record) error {
	arms := o.cm.Arms()
	if len(rec.AllowedBits) > 0 && !slices.Equal(rec.AllowedBits, o.cm.Manifest.AllowedBits) {
		return fmt.Errorf("eval: record %s: logged with allowed bits %v, model %s allows %v", rec.ID, rec.AllowedBits, o.cm.Manifest.Name, o.cm.Manifest.AllowedBits)
	}
	if rec.ArmIndex >= len(arms) || arms[rec.ArmIndex] != rec.Arm {
		if i, ok := o.cm.Index(rec.Arm); ok {
			return fmt.Errorf("eval: record %s: arm_index %d, but arm %v is index %d in model %s", rec.ID, rec.ArmIndex, rec.Arm, i, o.cm.Manifest.Name)
		}
		return fmt.Errorf("eval: record %s: arm %v is not an arm of model %s", rec.ID, rec.Arm, o.cm.Manifest.Name)
	}
	var logger []float64
	switch len(rec.Probs) {
	case 0:
	case len(arms):
		logger = rec.Probs
	default:
		return fmt.Errorf("eval: record %s: probs has %d arms, model %s has %d", rec.ID, len(rec.Probs), o.cm.Manifest.Name, len(arms))
	}
	stages := rec.Observed.Stages(rec.Arm)
	cost := o.opt.Objective.Cost(stages)
	for t, target := range o.targets {
		if target.Logged {
			if logger == nil {
				return fmt.Errorf("eval: record %s: target %s is the logger, but the record carries no distribution (probs)", rec.ID, target.Name)
			}
			o.decs[t].Probs = append(o.decs[t].Probs[:0], logger...)
			// the distribution is written at float32 precision; the
			// weight of the logged arm is exactly one
			o.decs[t].Probs[rec.ArmIndex] = rec.Propensity
			continue
		}
		if err := target.Policy.Choose(rec.Conditions, &o.decs[t]); err != nil {
			return fmt.Errorf("eval: record %s: target %s: %w", rec.ID, target.Name, err)
		}
	}
	if o.reward != nil {
		// The estimators read the model's cost of the logged arm and of
		// the arms a target may choose; only those are predicted.
		for i := range o.model {
			if i == rec.ArmIndex || o.anyTarget(i) {
				_, o.model[i], _ = o.reward.Predict(rec.Conditions, i)
			}
		}
	}
	if len(o.boot) > 0 {
		BootstrapWeights(o.rng, o.boot)
	}
	for t := range o.targets {
		probs := o.decs[t].Probs
		o.sample = Sample{Arm: rec.ArmIndex, Propensity: rec.Propensity, Cost: cost, Target: probs, Logger: logger}
		if o.reward != nil {
			o.sample.Model = o.model
		}
		if err := o.accs[t].Add(&o.sample, o.boot); err != nil {
			return fmt.Errorf("eval: record %s: %w", rec.ID, err)
		}
		for i, p := range probs {
			o.targetArms[t][i] += p
		}
	}
	if o.reward != nil {
		o.report = bandit.Report{Conditions: rec.Conditions, Arm: rec.Arm, Propensity: rec.Propensity,
			PolicyVersion: rec.PolicyVersion, Observed: stages, Time: rec.Time}
		if rec.Accuracy != nil {
			o.report.HasAccuracy, o.report.Accuracy = true, *rec.Accuracy
		}
		if err := o.reward.Learn(&o.report); err != nil {
			return fmt.Errorf("eval: record %s: reward model: %w", rec.ID, err)
		}
	}
	o.loggedArms[rec.ArmIndex]++
	o.curve.add(cost)
	o.n++
	return nil
}

// anyTarget reports whether some target gives arm i a probability.
func (o *Offline) anyTarget(i int) bool {
	for t := range o.decs {
		if o.decs[t].Probs[i] != 0 {
			return true
		}
	}
	return false
}

// Records is the number of records added.
func (o *Offline) Records() int64 { return o.n }

// TargetReport is the evaluation of one target.
type TargetReport struct {
	Name string `json:"name"`
	Result
	// ArmShares is the target's mean probability of each arm.
	ArmShares []float64 `json:"arm_shares"`
}

// OfflineReport is the whole evaluation.
type OfflineReport struct {
	Model     string              `json:"model"`
	Objective costmodel.Objective `json:"objective"`
	Records   int64               `json:"records"`
	// LoggedMeanCost is the mean cost the logger achieved.
	LoggedMeanCost float64 `json:"logged_mean_cost"`
	// LoggedShares is the share of records that chose each arm.
	LoggedShares []float64      `json:"logged_shares"`
	Arms         []string       `json:"arms"`
	Targets      []TargetReport `json:"targets"`
	// Curve is the logged learning curve: mean cost per window of
	// records.
	Curve []LoggedPoint `json:"curve"`
	// Support says, for each target, which targets the log supports: the
	// estimators whose estimate of it was judged supported.
	Support []TargetSupport `json:"support"`
}

// TargetSupport is what the log supports of one target.
type TargetSupport struct {
	Name string `json:"name"`
	// Supported is set when at least one estimate was judged supported.
	Supported bool `json:"supported"`
	// Estimators lists those estimates (empty when none).
	Estimators []Estimator `json:"estimators"`
}

// supportOf lists the estimators whose estimate of t was judged supported.
func supportOf(t *TargetReport) TargetSupport {
	s := TargetSupport{Name: t.Name, Estimators: []Estimator{}}
	for _, e := range t.Estimates {
		if e.Verdict == Supported {
			s.Estimators = append(s.Estimators, e.Estimator)
		}
	}
	s.Supported = len(s.Estimators) > 0
	return s
}

// Report summarises the evaluation so far.
func (o *Offline) Report() (*OfflineReport, error) {
	if o.n == 0 {
		return nil, ErrNoSamples
	}
	r := &OfflineReport{Model: o.cm.Manifest.Name, Objective: o.opt.Objective, Records: o.n, LoggedMeanCost: o.curve.total / float64(o.n)}
	for i, a := range o.cm.Arms() {
		r.Arms = append(r.Arms, a.String())
		r.LoggedShares = append(r.LoggedShares, float64(o.loggedArms[i])/float64(o.n))
	}
	for t, target := range o.targets {
		res, err := o.accs[t].Result()
		if err != nil {
			return nil, err
		}
		shares := make([]float64, len(o.targetArms[t]))
		for i, m := range o.targetArms[t] {
			shares[i] = m / float64(o.n)
		}
		r.Targets = append(r.Targets, TargetReport{Name: target.Name, Result: res, ArmShares: shares})
	}
	r.Curve = o.curve.points()
	for i := range r.Targets {
		r.Support = append(r.Support, supportOf(&r.Targets[i]))
	}
	return r, nil
}

// curve keeps at most max windows of the logged cost, doubling the window
// when it runs out of room.
type curve struct {
	max, every int
	windows    []float64 // summed cost per window
	cur        float64
	curN       int
	total      float64
	n          int
}

func (c *curve) add(cost float64) {
	c.total += cost
	c.n++
	c.cur += cost
	c.curN++
	if c.curN < c.every {
		return
	}
	c.windows = append(c.windows, c.cur)
	c.cur, c.curN = 0, 0
	if len(c.windows) >= 2*c.max {
		for i := 0; i < c.max; i++ {
			c.windows[i] = c.windows[2*i] + c.windows[2*i+1]
		}
		c.windows = c.windows[:c.max]
		c.every *= 2
	}
}

// LoggedPoint is the logger's mean cost over the window of records that
// ends at Records.
type LoggedPoint struct {
	Records  int     `json:"records"`
	MeanCost float64 `json:"mean_cost"`
}

func (c *curve) points() []LoggedPoint {
	var out []LoggedPoint
	for i, s := range c.windows {
		out = append(out, LoggedPoint{Records: (i + 1) * c.every, MeanCost: s / float64(c.every)})
	}
	return out
}
