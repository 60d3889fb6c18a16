package bandit

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/dynoml/dyno/costmodel"
)

// common is the state every policy shares: the model, the objective, the
// mask and pin, the random stream and the version.
type common struct {
	cm      *costmodel.Model
	obj     costmodel.Objective
	allowed []bool // nil allows all
	pin     int    // arm index, -1 for none
	pcg     *rand.PCG
	rng     *rand.Rand
	version uint64
	tableOK []bool // mask and the table's point accuracy against the floor
	// staticLeanest lists, per split, the table-eligible arm that sends the
	// fewest bytes: the only one of its split a cost-model choice can
	// pick, since its siblings differ only in sending more
	staticLeanest []int
}

// pcgStream is the PCG increment constant; the seed picks the state.
const pcgStream = 0x9e3779b97f4a7c15

func newPCG(seed uint64) *rand.PCG { return rand.NewPCG(mix(seed), pcgStream) }

// mix is the splitmix64 finaliser: nearby seeds give unrelated streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func newCommon(cm *costmodel.Model, cfg *Config) (common, error) {
	if err := validateConfig(cm, cfg); err != nil {
		return common{}, err
	}
	c := common{cm: cm, pcg: newPCG(cfg.Seed)}
	c.configure(cfg)
	c.initRand()
	return c, nil
}

// configure takes the objective, mask and pin of a validated cfg.
func (c *common) configure(cfg *Config) {
	c.obj = cfg.Objective
	c.allowed = slices.Clone(cfg.Allowed)
	c.pin = -1
	if cfg.Pin != nil {
		c.pin, _ = c.cm.Index(*cfg.Pin)
	}
}

// initRand wires the random stream and caches the table eligibility; both
// constructors and Restore end with it.
func (c *common) initRand() {
	c.rng = rand.New(c.pcg)
	c.initEligibility()
}

// initEligibility caches what the mask and the floor allow by the table.
func (c *common) initEligibility() {
	c.tableOK = make([]bool, len(c.cm.Arms()))
	bySplit := make([]int, c.cm.Manifest.K()+1)
	for s := range bySplit {
		bySplit[s] = -1
	}
	bases := c.cm.Bases()
	for i := range c.tableOK {
		c.tableOK[i], _ = c.cm.Eligible(i, c.obj, c.allowed)
		if s := bases[i].Arm.Split; c.tableOK[i] && (bySplit[s] < 0 || bases[i].Bytes < bases[bySplit[s]].Bytes) {
			bySplit[s] = i
		}
	}
	c.staticLeanest = c.staticLeanest[:0]
	for _, i := range bySplit {
		if i >= 0 {
			c.staticLeanest = append(c.staticLeanest, i)
		}
	}
}

// Version implements Policy.
func (c *common) Version() uint64 { return c.version }

// Reseed implements Policy.
func (c *common) Reseed(seed uint64) { c.pcg.Seed(mix(seed), pcgStream) }

// isAllowed reports whether arm i passes the mask.
func (c *common) isAllowed(i int) bool { return c.allowed == nil || c.allowed[i] }

// tableEligible reports whether arm i passes the mask and, by the
// calibrated table's point value, the accuracy floor: what the static
// baselines use.
func (c *common) tableEligible(i int) bool { return c.tableOK[i] }

// reset prepares d for a new decision over n arms, reusing its Probs.
func (c *common) reset(d *Decision) {
	n := len(c.cm.Arms())
	if cap(d.Probs) < n {
		d.Probs = make([]float64, n)
	}
	d.Probs = d.Probs[:n]
	clear(d.Probs)
	d.Version = c.version
}

// pick finishes d with arm i, its probability read from d.Probs.
func (c *common) pick(d *Decision, i int) {
	d.Index = i
	d.Arm = c.cm.Arms()[i]
	d.Prob = d.Probs[i]
}

// certain finishes d with arm i chosen with probability one.
func (c *common) certain(d *Decision, i int) {
	d.Probs[i] = 1
	c.pick(d, i)
}

// sample draws an index from d.Probs (which must sum to one) with the
// policy's random stream and finishes d with it.
func (c *common) sample(d *Decision) {
	u := c.rng.Float64()
	last := -1
	for i, p := range d.Probs {
		if p <= 0 {
			continue
		}
		last = i
		u -= p
		if u < 0 {
			c.pick(d, i)
			return
		}
	}
	// Rounding left u a hair above zero: the last arm with mass takes it.
	c.pick(d, last)
}

// checkConditions validates conditions before a policy uses them.
func checkConditions(cond costmodel.Conditions) error {
	if err := cond.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// armIndex maps a report's arm to its index.
func (c *common) armIndex(r *Report) (int, error) {
	i, ok := c.cm.Index(r.Arm)
	if !ok {
		return 0, fmt.Errorf("%w: %v is not an arm of %s", ErrUnknownArm, r.Arm, c.cm.Manifest.Name)
	}
	return i, nil
}

// Learn implements Learner for the policies that learn nothing (static,
// device, cloud, Neurosurgeon): the report is validated and counted.
func (c *common) Learn(r *Report) error {
	_, err := c.learnCommon(r)
	return err
}

// learnCommon validates a report and bumps the version; every policy's
// Learn starts with it.
func (c *common) learnCommon(r *Report) (int, error) {
	if r == nil {
		return 0, fmt.Errorf("%w: nil report", ErrInvalid)
	}
	if err := r.Validate(); err != nil {
		return 0, err
	}
	i, err := c.armIndex(r)
	if err != nil {
		return 0, err
	}
	c.version++
	return i, nil
}

// staticBest returns the eligible (by the table) arm of least predicted cost
// under cond, among the arms of the given split (split < 0: all), or -1.
func (c *common) staticBest(cond costmodel.Conditions, split int) int {
	best, bestCost := -1, 0.0
	bases := c.cm.Bases()
	for _, i := range c.staticLeanest {
		b := &bases[i]
		if split >= 0 && b.Arm.Split != split {
			continue
		}
		cost := c.obj.PredictCost(b, &cond)
		if best < 0 || cost < bestCost {
			best, bestCost = i, cost
		}
	}
	return best
}
