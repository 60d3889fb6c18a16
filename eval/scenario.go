package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

// ScenarioVersion is the schema version of a scenario file.
const ScenarioVersion = 1

// Scenario is one simulated world, as a JSON file names it. Paths are
// relative to the scenario file. See docs/simulator.md for every field.
type Scenario struct {
	Version     int    `json:"version"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Model names the network: an architecture table ("resnet50",
	// "mobilenetv2") or a manifest file.
	Model ModelSpec `json:"model"`
	// Device and Cloud are the profiles the policies see.
	Device ProfileSpec `json:"device"`
	Cloud  ProfileSpec `json:"cloud"`
	// Accuracy is the calibrated table the policies see.
	Accuracy  AccuracySpec        `json:"accuracy"`
	Objective costmodel.Objective `json:"objective"`
	// Truth is what the simulator draws the measured costs from.
	Truth Truth `json:"truth"`
	// Observable says which truth factors the executor can measure and
	// report as conditions.
	Observable Observable `json:"observable"`
	Link       Link       `json:"link"`
	// Fleet, when set, runs the key on several executors of the class,
	// each on its own link (sim_fleet.go); Link then only sets the
	// request interval and the defaults.
	Fleet       []FleetMember `json:"fleet,omitempty"`
	Measurement Measurement   `json:"measurement"`
	Noise       Noise         `json:"noise"`
	// AccuracySignalRate is the share of requests that come back with an
	// accuracy signal (correct or not); zero means every request.
	AccuracySignalRate float64 `json:"accuracy_signal_rate,omitempty"`
	Requests           int     `json:"requests"`
	Seed               uint64  `json:"seed"`

	// Path is the file the scenario was read from ("" when decoded from a
	// reader); relative paths resolve against its directory.
	Path string `json:"-"`
}

// ModelSpec names the model: an architecture table (Arch), a manifest file
// (Manifest), or both, when the manifest was made from that architecture:
// the manifest is then used and the table only supplies the layer types
// the Neurosurgeon and ANS baselines regress on.
type ModelSpec struct {
	Arch     string `json:"arch,omitempty"`
	Manifest string `json:"manifest,omitempty"`
	// AllowedBits, if set, restricts the manifest's precisions.
	AllowedBits []int `json:"allowed_bits,omitempty"`
}

// ProfileSpec is a profile file or a profile derived from the model's FLOPs:
// exactly one of File or Derive.
type ProfileSpec struct {
	File   string         `json:"file,omitempty"`
	Derive *DeriveProfile `json:"derive,omitempty"`
}

// DeriveProfile derives a latency profile from throughput figures: a block
// takes the sum over its layers of FLOPs / throughput of the layer's type,
// plus a fixed overhead per layer.
type DeriveProfile struct {
	DeviceClass string `json:"device_class"`
	// GFLOPS is the effective throughput per layer type ("conv", "dwconv",
	// "pool", "add", "gap", "fc"); "default" covers types not listed.
	GFLOPS           map[string]float64 `json:"gflops"`
	OpOverheadMs     float64            `json:"op_overhead_ms,omitempty"`
	PackNsPerElement float64            `json:"pack_ns_per_element,omitempty"`
	// P95Ratio is p95 / median; zero means 1.1.
	P95Ratio float64 `json:"p95_ratio,omitempty"`
}

// AccuracySpec is an accuracy table file or a derived table: exactly one of
// File or Derive.
type AccuracySpec struct {
	File   string          `json:"file,omitempty"`
	Derive *DeriveAccuracy `json:"derive,omitempty"`
}

// DeriveAccuracy derives a synthetic calibration table: the accuracy of arm
// (s, b) is Baseline less DropByBits[b] scaled up for early splits by
// EarlySensitivity (early activations are more fragile); the input (s = 0)
// uses InputDropByBits when given.
type DeriveAccuracy struct {
	Baseline          float64            `json:"baseline"`
	DropByBits        map[string]float64 `json:"drop_by_bits"`
	InputDropByBits   map[string]float64 `json:"input_drop_by_bits,omitempty"`
	EarlySensitivity  float64            `json:"early_sensitivity,omitempty"`
	CompressionByBits map[string]float64 `json:"compression_by_bits,omitempty"`
	Samples           int                `json:"samples,omitempty"`
}

// Truth is the simulated reality: the profiles the policies see, times
// factors.
type Truth struct {
	// DeviceSlowdown multiplies every device block (and packing); zero
	// means 1.
	DeviceSlowdown float64 `json:"device_slowdown,omitempty"`
	// CloudSlowdown multiplies every cloud block (and unpacking); zero
	// means 1.
	CloudSlowdown float64 `json:"cloud_slowdown,omitempty"`
	// LinkEfficiency is the share of the measured bandwidth the link
	// delivers; zero means 1.
	LinkEfficiency float64 `json:"link_efficiency,omitempty"`
	// CloudQueueMs is the mean queueing delay in the cloud.
	CloudQueueMs float64 `json:"cloud_queue_ms,omitempty"`
	// DeviceBlocks and CloudBlocks scale single blocks (0-based index).
	DeviceBlocks []BlockFactor `json:"device_blocks,omitempty"`
	CloudBlocks  []BlockFactor `json:"cloud_blocks,omitempty"`
	// Accuracy is the true accuracy; nil means the calibrated table is
	// right.
	Accuracy *AccuracyTruth `json:"accuracy,omitempty"`
	// Changes are abrupt changes of the factors at given request counts.
	Changes []Change `json:"changes,omitempty"`
	// Waves are gradual bumps of a factor.
	Waves []Wave `json:"waves,omitempty"`
}

// BlockFactor scales one block's true latency.
type BlockFactor struct {
	Block  int     `json:"block"`
	Factor float64 `json:"factor"`
}

// AccuracyTruth is the true accuracy table: a file, or the calibrated table
// shifted by offsets.
type AccuracyTruth struct {
	File         string             `json:"file,omitempty"`
	OffsetByBits map[string]float64 `json:"offset_by_bits,omitempty"`
	Offsets      []AccuracyOffset   `json:"offsets,omitempty"`
}

// AccuracyOffset shifts one arm's true accuracy.
type AccuracyOffset struct {
	Split int     `json:"split"`
	Bits  int     `json:"bits"`
	Delta float64 `json:"delta"`
}

// Change sets factors from request At on; fields left out keep their value.
type Change struct {
	At             int      `json:"at"`
	DeviceSlowdown *float64 `json:"device_slowdown,omitempty"`
	CloudSlowdown  *float64 `json:"cloud_slowdown,omitempty"`
	LinkEfficiency *float64 `json:"link_efficiency,omitempty"`
	CloudQueueMs   *float64 `json:"cloud_queue_ms,omitempty"`
}

// Wave is a raised-cosine bump of one factor over [Start, Start+Length):
// a multiplicative factor rises to Peak times its value at the crest, the
// queue by Peak ms.
type Wave struct {
	Factor string  `json:"factor"`
	Start  int     `json:"start"`
	Length int     `json:"length"`
	Peak   float64 `json:"peak"`
}

// Factor names for waves.
const (
	FactorDeviceSlowdown = "device_slowdown"
	FactorCloudSlowdown  = "cloud_slowdown"
	FactorLinkEfficiency = "link_efficiency"
	FactorCloudQueueMs   = "cloud_queue_ms"
)

// Observable says which factors the executor reports in its conditions.
type Observable struct {
	DeviceSlowdown bool `json:"device_slowdown,omitempty"`
	CloudSlowdown  bool `json:"cloud_slowdown,omitempty"`
}

// Link is the device-to-cloud link.
type Link struct {
	// Trace is a bandwidth trace file (shared/traces format).
	Trace string `json:"trace"`
	// Scale multiplies the trace; zero means 1.
	Scale float64 `json:"scale,omitempty"`
	RTTMs float64 `json:"rtt_ms"`
	// RequestIntervalMs is the time between requests, which walks the
	// trace; zero means 200.
	RequestIntervalMs float64 `json:"request_interval_ms,omitempty"`
	// MinMbps floors the throughput (a trace at zero would stall a
	// transfer forever); zero means 0.05.
	MinMbps float64 `json:"min_mbps,omitempty"`
}

// Measurement is how the executor measures the conditions.
type Measurement struct {
	// BandwidthNoise is the log-normal sigma of a bandwidth sample.
	BandwidthNoise float64 `json:"bandwidth_noise,omitempty"`
	// BandwidthEWMA is the weight of the newest sample in the executor's
	// moving average; zero means 1 (the last sample only).
	BandwidthEWMA float64 `json:"bandwidth_ewma,omitempty"`
	// RTTNoise is the log-normal sigma of an RTT sample.
	RTTNoise float64 `json:"rtt_noise,omitempty"`
}

// Noise is the log-normal sigma of each true stage time around its mean.
type Noise struct {
	Device  float64 `json:"device,omitempty"`
	Network float64 `json:"network,omitempty"`
	RTT     float64 `json:"rtt,omitempty"`
	Queue   float64 `json:"queue,omitempty"`
	Cloud   float64 `json:"cloud,omitempty"`
}

// ReadScenario decodes a scenario (unknown fields are an error) and checks
// it. Relative paths in it resolve against the directory of path.
func ReadScenario(path string, r io.Reader) (*Scenario, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %s: decode: %v", ErrInvalidScenario, path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s: trailing data after the scenario object", ErrInvalidScenario, path)
	}
	s.Path = path
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadScenario reads a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidScenario, err)
	}
	defer f.Close()
	return ReadScenario(path, f)
}

// LoadScenarios reads every scenario the arguments name: files, or
// directories whose *.json files are read in name order.
func LoadScenarios(args ...string) ([]*Scenario, error) {
	var out []*Scenario
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidScenario, err)
		}
		files := []string{a}
		if st.IsDir() {
			m, err := filepath.Glob(filepath.Join(a, "*.json"))
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalidScenario, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("%w: %s: no *.json scenario files", ErrInvalidScenario, a)
			}
			sort.Strings(m)
			files = m
		}
		for _, f := range files {
			s, err := LoadScenario(f)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// bad formats a validation error naming the scenario and field.
func (s *Scenario) bad(field, format string, args ...any) error {
	who := s.Path
	if who == "" {
		who = s.Name
	}
	return fmt.Errorf("%w: %s: %s: %s", ErrInvalidScenario, who, field, fmt.Sprintf(format, args...))
}

func finiteNonNeg(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// Validate checks everything that can be checked without reading the files
// the scenario names, and names the first bad field.
func (s *Scenario) Validate() error {
	if s.Version != ScenarioVersion {
		return s.bad("version", "got %d, this build reads %d", s.Version, ScenarioVersion)
	}
	if s.Name == "" {
		return s.bad("name", "empty")
	}
	if s.Model.Arch == "" && s.Model.Manifest == "" {
		return s.bad("model", "set arch (%v), manifest, or both", archNames())
	}
	if s.Model.Arch != "" && archByName(s.Model.Arch) == nil {
		return s.bad("model.arch", "unknown architecture %q (known: %v)", s.Model.Arch, archNames())
	}
	for i, b := range s.Model.AllowedBits {
		if !model.IsValidBits(b) {
			return s.bad(fmt.Sprintf("model.allowed_bits[%d]", i), "unknown precision %d (supported: %v)", b, model.ValidBits)
		}
	}
	for _, p := range []struct {
		name string
		spec ProfileSpec
	}{{"device", s.Device}, {"cloud", s.Cloud}} {
		if err := s.validateProfileSpec(p.name, p.spec); err != nil {
			return err
		}
	}
	if err := s.validateAccuracySpec(); err != nil {
		return err
	}
	if err := s.Objective.Validate(); err != nil {
		return s.bad("objective", "%v", err)
	}
	if err := s.validateTruth(); err != nil {
		return err
	}
	l := s.Link
	if l.Trace == "" {
		return s.bad("link.trace", "empty: name a bandwidth trace file (relative to the scenario file)")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"link.scale", l.Scale}, {"link.rtt_ms", l.RTTMs}, {"link.request_interval_ms", l.RequestIntervalMs}, {"link.min_mbps", l.MinMbps},
		{"measurement.bandwidth_noise", s.Measurement.BandwidthNoise}, {"measurement.bandwidth_ewma", s.Measurement.BandwidthEWMA},
		{"measurement.rtt_noise", s.Measurement.RTTNoise},
		{"noise.device", s.Noise.Device}, {"noise.network", s.Noise.Network}, {"noise.rtt", s.Noise.RTT},
		{"noise.queue", s.Noise.Queue}, {"noise.cloud", s.Noise.Cloud},
		{"accuracy_signal_rate", s.AccuracySignalRate}} {
		if !finiteNonNeg(f.v) {
			return s.bad(f.name, "%g is not a finite non-negative number", f.v)
		}
	}
	if s.Measurement.BandwidthEWMA > 1 {
		return s.bad("measurement.bandwidth_ewma", "%g is above 1", s.Measurement.BandwidthEWMA)
	}
	if s.AccuracySignalRate > 1 {
		return s.bad("accuracy_signal_rate", "%g is above 1", s.AccuracySignalRate)
	}
	if s.Requests <= 0 {
		return s.bad("requests", "%d: need at least one request", s.Requests)
	}
	return s.validateFleet()
}

func (s *Scenario) validateProfileSpec(name string, p ProfileSpec) error {
	if (p.File == "") == (p.Derive == nil) {
		return s.bad(name, "set exactly one of file or derive")
	}
	if d := p.Derive; d != nil {
		if d.DeviceClass == "" {
			return s.bad(name+".derive.device_class", "empty")
		}
		if len(d.GFLOPS) == 0 {
			return s.bad(name+".derive.gflops", "empty: give a throughput per layer type or a default")
		}
		for k, v := range d.GFLOPS {
			if !finiteNonNeg(v) || v == 0 {
				return s.bad(name+".derive.gflops."+k, "%g is not a positive number", v)
			}
		}
		for _, f := range []struct {
			n string
			v float64
		}{{"op_overhead_ms", d.OpOverheadMs}, {"pack_ns_per_element", d.PackNsPerElement}, {"p95_ratio", d.P95Ratio}} {
			if !finiteNonNeg(f.v) {
				return s.bad(name+".derive."+f.n, "%g is not a finite non-negative number", f.v)
			}
		}
		if d.P95Ratio != 0 && d.P95Ratio < 1 {
			return s.bad(name+".derive.p95_ratio", "%g is below 1", d.P95Ratio)
		}
	}
	return nil
}

func (s *Scenario) validateAccuracySpec() error {
	a := s.Accuracy
	if (a.File == "") == (a.Derive == nil) {
		return s.bad("accuracy", "set exactly one of file or derive")
	}
	if d := a.Derive; d != nil {
		if !(d.Baseline > 0 && d.Baseline <= 1) {
			return s.bad("accuracy.derive.baseline", "%g is outside (0, 1]", d.Baseline)
		}
		for _, m := range []struct {
			n  string
			m  map[string]float64
			hi float64
		}{{"drop_by_bits", d.DropByBits, 1}, {"input_drop_by_bits", d.InputDropByBits, 1}, {"compression_by_bits", d.CompressionByBits, 1}} {
			for k, v := range m.m {
				b, err := strconv.Atoi(k)
				if err != nil || !model.IsValidBits(b) {
					return s.bad("accuracy.derive."+m.n+"."+k, "%q is not a precision (supported: %v)", k, model.ValidBits)
				}
				if !finiteNonNeg(v) || v > m.hi || (m.n == "compression_by_bits" && v == 0) {
					return s.bad("accuracy.derive."+m.n+"."+k, "%g is outside [0, %g]", v, m.hi)
				}
			}
		}
		if !finiteNonNeg(d.EarlySensitivity) {
			return s.bad("accuracy.derive.early_sensitivity", "%g is not a finite non-negative number", d.EarlySensitivity)
		}
		if d.Samples < 0 {
			return s.bad("accuracy.derive.samples", "negative (%d)", d.Samples)
		}
	}
	return nil
}

func (s *Scenario) validateTruth() error {
	t := s.Truth
	for _, f := range []struct {
		name string
		v    float64
	}{{"truth.device_slowdown", t.DeviceSlowdown}, {"truth.cloud_slowdown", t.CloudSlowdown},
		{"truth.link_efficiency", t.LinkEfficiency}, {"truth.cloud_queue_ms", t.CloudQueueMs}} {
		if !finiteNonNeg(f.v) {
			return s.bad(f.name, "%g is not a finite non-negative number", f.v)
		}
	}
	for _, bl := range []struct {
		name string
		f    []BlockFactor
	}{{"truth.device_blocks", t.DeviceBlocks}, {"truth.cloud_blocks", t.CloudBlocks}} {
		for i, b := range bl.f {
			if b.Block < 0 {
				return s.bad(fmt.Sprintf("%s[%d].block", bl.name, i), "negative (%d)", b.Block)
			}
			if !finiteNonNeg(b.Factor) || b.Factor == 0 {
				return s.bad(fmt.Sprintf("%s[%d].factor", bl.name, i), "%g is not a positive number", b.Factor)
			}
		}
	}
	if a := t.Accuracy; a != nil {
		for k, v := range a.OffsetByBits {
			if b, err := strconv.Atoi(k); err != nil || !model.IsValidBits(b) {
				return s.bad("truth.accuracy.offset_by_bits."+k, "%q is not a precision", k)
			}
			if math.IsNaN(v) || math.Abs(v) > 1 {
				return s.bad("truth.accuracy.offset_by_bits."+k, "%g is outside [-1, 1]", v)
			}
		}
		for i, o := range a.Offsets {
			if math.IsNaN(o.Delta) || math.Abs(o.Delta) > 1 {
				return s.bad(fmt.Sprintf("truth.accuracy.offsets[%d].delta", i), "%g is outside [-1, 1]", o.Delta)
			}
			if !model.IsValidBits(o.Bits) {
				return s.bad(fmt.Sprintf("truth.accuracy.offsets[%d].bits", i), "unknown precision %d", o.Bits)
			}
			if o.Split < 0 {
				return s.bad(fmt.Sprintf("truth.accuracy.offsets[%d].split", i), "negative (%d)", o.Split)
			}
		}
	}
	prev := -1
	for i, c := range t.Changes {
		f := fmt.Sprintf("truth.changes[%d]", i)
		if c.At <= prev || c.At < 0 {
			return s.bad(f+".at", "%d: changes must be at increasing, non-negative request counts", c.At)
		}
		prev = c.At
		n := 0
		for _, v := range []struct {
			name string
			p    *float64
		}{{"device_slowdown", c.DeviceSlowdown}, {"cloud_slowdown", c.CloudSlowdown}, {"link_efficiency", c.LinkEfficiency}, {"cloud_queue_ms", c.CloudQueueMs}} {
			if v.p == nil {
				continue
			}
			n++
			if !finiteNonNeg(*v.p) || (*v.p == 0 && v.name != "cloud_queue_ms") {
				return s.bad(f+"."+v.name, "%g is not a positive number", *v.p)
			}
		}
		if n == 0 {
			return s.bad(f, "changes nothing: set at least one factor")
		}
	}
	for i, w := range t.Waves {
		f := fmt.Sprintf("truth.waves[%d]", i)
		switch w.Factor {
		case FactorDeviceSlowdown, FactorCloudSlowdown, FactorLinkEfficiency, FactorCloudQueueMs:
		default:
			return s.bad(f+".factor", "unknown factor %q (want %s, %s, %s or %s)", w.Factor, FactorDeviceSlowdown, FactorCloudSlowdown, FactorLinkEfficiency, FactorCloudQueueMs)
		}
		if w.Start < 0 {
			return s.bad(f+".start", "negative (%d)", w.Start)
		}
		if w.Length <= 0 {
			return s.bad(f+".length", "%d: must be positive", w.Length)
		}
		if !finiteNonNeg(w.Peak) || (w.Factor != FactorCloudQueueMs && w.Peak == 0) {
			return s.bad(f+".peak", "%g is not a positive number", w.Peak)
		}
	}
	return nil
}

// resolve makes a path in the scenario relative to its file.
func (s *Scenario) resolve(p string) string {
	if filepath.IsAbs(p) || s.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(s.Path), p)
}

// openErr explains a missing file the scenario names.
func (s *Scenario) openErr(field, p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return s.bad(field, "%s does not exist (paths are relative to the scenario file %s; the bandwidth traces live in ../shared/traces beside the repository, i.e. \"../../shared/traces/...\" from scenarios/)", p, s.Path)
	}
	return s.bad(field, "%v", err)
}

// Exact reports whether the true costs are what the policies' profiles
// predict: no slowdown, full link efficiency, no block factors, no change
// or wave of those. Queueing is reported to the policies and does not
// count; the accuracy truth is CalibrationExact's.
func (s *Scenario) Exact() bool {
	t := s.Truth
	one := func(v float64) bool { return v == 0 || v == 1 }
	if !one(t.DeviceSlowdown) || !one(t.CloudSlowdown) || !one(t.LinkEfficiency) {
		return false
	}
	for _, b := range append(append([]BlockFactor(nil), t.DeviceBlocks...), t.CloudBlocks...) {
		if b.Factor != 1 {
			return false
		}
	}
	for _, w := range t.Waves {
		if w.Factor != FactorCloudQueueMs {
			return false
		}
	}
	for _, c := range t.Changes {
		if c.DeviceSlowdown != nil || c.CloudSlowdown != nil || c.LinkEfficiency != nil {
			return false
		}
	}
	return true
}

// CalibrationExact reports whether the true accuracy is the calibration
// table the policies see.
func (s *Scenario) CalibrationExact() bool { return s.Truth.Accuracy == nil }
