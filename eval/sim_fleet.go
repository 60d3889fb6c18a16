package eval

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
)

// A fleet: several executors of the scenario's device class, each on its own
// link, sharing one key. Requests go to the executors in turn; the device,
// the cloud, the accuracy and the truth's changes are the class's and the
// cloud's, the link is each executor's own (its trace, scale, round trip
// and an efficiency that multiplies the truth's).
//
// Beside dyno (which learns the link per executor from the executor id in
// each report, and decides with the executor's own link posterior), two
// variants show what that buys: dyno-shared, one posterior for the whole
// key as if every report came from one executor, and dyno-separate, a dyno
// per executor, each learning that executor alone under a key of its own.

// FleetMember is one executor of a fleet.
type FleetMember struct {
	// Name is the executor id in reports and results.
	Name string `json:"name"`
	// Link is the executor's link; its request interval is the
	// scenario's.
	Link Link `json:"link"`
	// LinkEfficiency multiplies the truth's link efficiency for this
	// executor; zero means 1.
	LinkEfficiency float64 `json:"link_efficiency,omitempty"`
}

// Fleet-only policy variants of dyno (docs/simulator.md).
const (
	PolicyDynoShared   = "dyno-shared"
	PolicyDynoSeparate = "dyno-separate"
)

// fleetPolicy says whether name is one of the fleet-only variants.
func fleetPolicy(name string) bool { return name == PolicyDynoShared || name == PolicyDynoSeparate }

// validateFleet checks the fleet members.
func (s *Scenario) validateFleet() error {
	seen := map[string]bool{}
	for i, m := range s.Fleet {
		f := fmt.Sprintf("fleet[%d]", i)
		if m.Name == "" {
			return s.bad(f+".name", "empty")
		}
		if seen[m.Name] {
			return s.bad(f+".name", "%q twice", m.Name)
		}
		seen[m.Name] = true
		if m.Link.Trace == "" {
			return s.bad(f+".link.trace", "empty: name a bandwidth trace file (relative to the scenario file)")
		}
		if m.Link.RequestIntervalMs != 0 {
			return s.bad(f+".link.request_interval_ms", "set the request interval on the scenario's link, not per executor")
		}
		for _, v := range []struct {
			name string
			v    float64
		}{{".link.scale", m.Link.Scale}, {".link.rtt_ms", m.Link.RTTMs}, {".link.min_mbps", m.Link.MinMbps}, {".link_efficiency", m.LinkEfficiency}} {
			if !finiteNonNeg(v.v) {
				return s.bad(f+v.name, "%g is not a finite non-negative number", v.v)
			}
		}
	}
	return nil
}

// execLink is one executor's link in a run: where it is in its trace and
// what its estimator measured last.
type execLink struct {
	trace    *Trace
	offset   float64
	scale    float64
	minMbps  float64
	rttMs    float64
	eff      float64
	measured float64
	n        int // requests it has served
}

// perExecutor is dyno-separate: one policy per executor, the current one
// chosen by the simulator before each request.
type perExecutor struct {
	ps  []bandit.Policy
	cur int
}

var _ bandit.Policy = (*perExecutor)(nil)

func (p *perExecutor) Choose(c costmodel.Conditions, d *bandit.Decision) error {
	return p.ps[p.cur].Choose(c, d)
}
func (p *perExecutor) Learn(r *bandit.Report) error   { return p.ps[p.cur].Learn(r) }
func (p *perExecutor) MarshalBinary() ([]byte, error) { return p.ps[p.cur].MarshalBinary() }
func (p *perExecutor) Name() string                   { return PolicyDynoSeparate }
func (p *perExecutor) Version() uint64                { return p.ps[p.cur].Version() }
func (p *perExecutor) Reseed(seed uint64)             { p.ps[p.cur].Reseed(seed) }
func (p *perExecutor) SetExecutor(i int)              { p.cur = i }

// FleetRatios compares dyno with its fleet variants, executor by executor.
type FleetRatios struct {
	// WorstVsSeparate is the largest, over executors, of dyno's regret
	// over dyno-separate's (target: at most 1.1).
	WorstVsSeparate float64
	// LeastSharedOver is the smallest, over executors, of dyno-shared's
	// regret over dyno's (target: at least 2 where the links differ).
	LeastSharedOver float64
}

// FleetRatios returns the per-executor ratios, or nil when the scenario has
// no fleet or dyno and both variants did not all run. A ratio over a
// regret of zero or less is left out.
func (r *ScenarioResult) FleetRatios() *FleetRatios {
	d, sep, sh := r.Policy(bandit.NameDyno), r.Policy(PolicyDynoSeparate), r.Policy(PolicyDynoShared)
	if len(r.Executors) == 0 || d == nil || sep == nil || sh == nil {
		return nil
	}
	f := &FleetRatios{LeastSharedOver: math.Inf(1)}
	for e := range r.Executors {
		if sep.ExecutorRegret[e] > 0 {
			f.WorstVsSeparate = max(f.WorstVsSeparate, d.ExecutorRegret[e]/sep.ExecutorRegret[e])
		}
		if d.ExecutorRegret[e] > 0 {
			f.LeastSharedOver = min(f.LeastSharedOver, sh.ExecutorRegret[e]/d.ExecutorRegret[e])
		}
	}
	return f
}
