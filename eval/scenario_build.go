package eval

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

// World is a scenario with every file read and both cost models built: the
// one the policies see and the true one the simulator draws from.
type World struct {
	Scenario *Scenario
	Manifest *model.Manifest
	// Seen is the cost model of the profiles and calibration the policies
	// see; True is the truth's (block factors and true accuracy applied;
	// slowdowns, link efficiency and queue are applied per request).
	Seen, True *costmodel.Model
	// Layers describes every block by layer type (for the Neurosurgeon
	// and ANS baselines).
	Layers [][]bandit.LayerStats
	Trace  *Trace
	// Fleet are the fleet members' traces, in the scenario's order.
	Fleet []*Trace
}

func archByName(name string) *model.Arch {
	switch name {
	case "resnet50":
		return model.ResNet50()
	case "mobilenetv2":
		return model.MobileNetV2()
	}
	return nil
}

func archNames() []string { return []string{"resnet50", "mobilenetv2"} }

// Build reads the files the scenario names and builds its world.
func (s *Scenario) Build() (*World, error) {
	w := &World{Scenario: s}
	if s.Model.Manifest != "" {
		p := s.resolve(s.Model.Manifest)
		m, err := model.LoadManifest(p)
		if err != nil {
			return nil, s.openErr("model.manifest", p, err)
		}
		w.Manifest = m
		w.Layers = make([][]bandit.LayerStats, m.K())
		for i, b := range m.Blocks {
			w.Layers[i] = []bandit.LayerStats{{Kind: "conv", Count: 1, FLOPs: float64(b.FLOPs)}}
		}
	}
	if s.Model.Arch != "" {
		arch := archByName(s.Model.Arch)
		m, err := arch.Manifest()
		if err != nil {
			return nil, s.bad("model.arch", "%v", err)
		}
		if w.Manifest == nil {
			w.Manifest = m
		} else if w.Manifest.Name != m.Name || w.Manifest.K() != m.K() {
			return nil, s.bad("model.arch", "%s (%d blocks) does not match the manifest %s (%d blocks)", m.Name, m.K(), w.Manifest.Name, w.Manifest.K())
		}
		if w.Layers, err = archLayers(arch, m.K()); err != nil {
			return nil, s.bad("model.arch", "%v", err)
		}
	}
	if len(s.Model.AllowedBits) > 0 {
		w.Manifest.AllowedBits = append([]int(nil), s.Model.AllowedBits...)
		if err := w.Manifest.Validate(); err != nil {
			return nil, s.bad("model.allowed_bits", "%v", err)
		}
	}
	dev, err := s.profile("device", s.Device, costmodel.RoleDevice, w)
	if err != nil {
		return nil, err
	}
	cloud, err := s.profile("cloud", s.Cloud, costmodel.RoleCloud, w)
	if err != nil {
		return nil, err
	}
	acc, err := s.accuracy(w)
	if err != nil {
		return nil, err
	}
	if w.Seen, err = costmodel.New(w.Manifest, dev, cloud, acc); err != nil {
		return nil, s.bad("model", "the profiles and accuracy table do not fit the model: %v", err)
	}
	k := w.Manifest.K()
	tdev, err := s.scaleBlocks("truth.device_blocks", dev, s.Truth.DeviceBlocks, k)
	if err != nil {
		return nil, err
	}
	tcloud, err := s.scaleBlocks("truth.cloud_blocks", cloud, s.Truth.CloudBlocks, k)
	if err != nil {
		return nil, err
	}
	tacc, err := s.trueAccuracy(acc, k)
	if err != nil {
		return nil, err
	}
	if w.True, err = costmodel.New(w.Manifest, tdev, tcloud, tacc); err != nil {
		return nil, s.bad("truth", "%v", err)
	}
	feasible := false
	for i := range w.True.Arms() {
		if ok, _ := w.True.Eligible(i, s.Objective, nil); ok {
			feasible = true
			break
		}
	}
	if !feasible {
		return nil, s.bad("objective.accuracy_floor", "%.4f: no arm's true accuracy meets it (full precision is %.4f), so the oracle has nothing to choose", s.Objective.AccuracyFloor, tacc.Baseline)
	}
	p := s.resolve(s.Link.Trace)
	if w.Trace, err = LoadTrace(p); err != nil {
		return nil, s.openErr("link.trace", p, err)
	}
	for i, m := range s.Fleet {
		p := s.resolve(m.Link.Trace)
		t, err := LoadTrace(p)
		if err != nil {
			return nil, s.openErr(fmt.Sprintf("fleet[%d].link.trace", i), p, err)
		}
		w.Fleet = append(w.Fleet, t)
	}
	return w, nil
}

// layerKind names an op's layer type.
func layerKind(op model.Op) string {
	switch op.Kind {
	case model.OpConv:
		if op.Group > 1 {
			return "dwconv"
		}
		return "conv"
	case model.OpMaxPool:
		return "pool"
	case model.OpAdd:
		return "add"
	case model.OpGAP:
		return "gap"
	case model.OpFC:
		return "fc"
	}
	return "other"
}

// archLayers groups an architecture's ops by block and layer type.
func archLayers(a *model.Arch, k int) ([][]bandit.LayerStats, error) {
	stats, err := a.Infer()
	if err != nil {
		return nil, err
	}
	out := make([][]bandit.LayerStats, k)
	for _, st := range stats {
		kind := layerKind(st.Op)
		l := out[st.Unit]
		found := false
		for j := range l {
			if l[j].Kind == kind {
				l[j].Count++
				l[j].FLOPs += float64(st.FLOPs)
				found = true
			}
		}
		if !found {
			l = append(l, bandit.LayerStats{Kind: kind, Count: 1, FLOPs: float64(st.FLOPs)})
		}
		out[st.Unit] = l
	}
	return out, nil
}

// profile reads or derives one profile.
func (s *Scenario) profile(field string, spec ProfileSpec, role costmodel.Role, w *World) (*costmodel.Profile, error) {
	if spec.File != "" {
		p := s.resolve(spec.File)
		prof, err := costmodel.LoadProfile(p)
		if err != nil {
			return nil, s.openErr(field+".file", p, err)
		}
		if prof.Role != role {
			return nil, s.bad(field+".file", "%s is a %s profile, a %s profile is needed", p, prof.Role, role)
		}
		return prof, nil
	}
	d := spec.Derive
	ratio := d.P95Ratio
	if ratio == 0 {
		ratio = 1.1
	}
	prof := &costmodel.Profile{
		Version: costmodel.ProfileVersion, Model: w.Manifest.Name, DeviceClass: d.DeviceClass, Role: role,
		Host: "derived", Source: "derived by the simulator from FLOPs and per-layer-type throughput",
		PackNsPerElement: d.PackNsPerElement,
	}
	for i, layers := range w.Layers {
		var ms float64
		for _, l := range layers {
			g, ok := d.GFLOPS[l.Kind]
			if !ok {
				g, ok = d.GFLOPS["default"]
			}
			if !ok {
				return nil, s.bad(field+".derive.gflops", "no throughput for layer type %q of block %d and no \"default\"", l.Kind, i)
			}
			ms += l.FLOPs/(g*1e9)*1e3 + float64(l.Count)*d.OpOverheadMs
		}
		prof.Blocks = append(prof.Blocks, costmodel.BlockTiming{MedianMs: ms, P95Ms: ms * ratio})
	}
	if err := prof.Validate(w.Manifest.K()); err != nil {
		return nil, s.bad(field+".derive", "%v", err)
	}
	return prof, nil
}

// scaleBlocks applies block factors to a copy of a profile.
func (s *Scenario) scaleBlocks(field string, p *costmodel.Profile, f []BlockFactor, k int) (*costmodel.Profile, error) {
	out := *p
	out.Blocks = append([]costmodel.BlockTiming(nil), p.Blocks...)
	for i, b := range f {
		if b.Block >= k {
			return nil, s.bad(fmt.Sprintf("%s[%d].block", field, i), "%d is outside 0..%d", b.Block, k-1)
		}
		out.Blocks[b.Block].MedianMs *= b.Factor
		out.Blocks[b.Block].P95Ms *= b.Factor
	}
	return &out, nil
}

func bitsKey(b int) string { return strconv.Itoa(b) }

// accuracy reads or derives the calibrated table.
func (s *Scenario) accuracy(w *World) (*costmodel.AccuracyTable, error) {
	if s.Accuracy.File != "" {
		p := s.resolve(s.Accuracy.File)
		t, err := costmodel.LoadAccuracyTable(p)
		if err != nil {
			return nil, s.openErr("accuracy.file", p, err)
		}
		return t, nil
	}
	d := s.Accuracy.Derive
	k := w.Manifest.K()
	t := &costmodel.AccuracyTable{
		Version: costmodel.AccuracyVersion, Model: w.Manifest.Name, Metric: "label-accuracy",
		Baseline: d.Baseline, Samples: d.Samples,
		Source: "synthetic: derived by the simulator from a drop per precision",
	}
	for sp := 0; sp < k; sp++ {
		for _, b := range w.Manifest.AllowedBits {
			if b == 32 {
				continue
			}
			drop, ok := d.DropByBits[bitsKey(b)]
			if sp == 0 {
				if v, ok0 := d.InputDropByBits[bitsKey(b)]; ok0 {
					drop, ok = v, true
				}
			}
			if !ok {
				return nil, s.bad("accuracy.derive.drop_by_bits", "no drop for %d bits", b)
			}
			if sp > 0 && k > 1 {
				drop *= 1 + d.EarlySensitivity*float64(k-1-sp)/float64(k-1)
			}
			acc := clamp01(d.Baseline - drop)
			rho := d.CompressionByBits[bitsKey(b)]
			t.Entries = append(t.Entries, costmodel.AccuracyEntry{
				Split: sp, Bits: b, Accuracy: acc, Agreement: clamp01(1 - 1.5*drop), CompressionRatio: rho,
			})
		}
	}
	if err := t.Validate(k); err != nil {
		return nil, s.bad("accuracy.derive", "%v", err)
	}
	return t, nil
}

func clamp01(v float64) float64 { return math.Min(math.Max(v, 0), 1) }

// trueAccuracy builds the true table: a file, or the calibrated table with
// offsets.
func (s *Scenario) trueAccuracy(cal *costmodel.AccuracyTable, k int) (*costmodel.AccuracyTable, error) {
	a := s.Truth.Accuracy
	if a == nil {
		return cal, nil
	}
	if a.File != "" {
		p := s.resolve(a.File)
		t, err := costmodel.LoadAccuracyTable(p)
		if err != nil {
			return nil, s.openErr("truth.accuracy.file", p, err)
		}
		return t, nil
	}
	t := *cal
	t.Entries = append([]costmodel.AccuracyEntry(nil), cal.Entries...)
	for i := range t.Entries {
		e := &t.Entries[i]
		e.Accuracy = clamp01(e.Accuracy + a.OffsetByBits[bitsKey(e.Bits)])
	}
	for i, o := range a.Offsets {
		found := false
		for j := range t.Entries {
			e := &t.Entries[j]
			if e.Split == o.Split && e.Bits == o.Bits {
				e.Accuracy = clamp01(e.Accuracy + o.Delta)
				found = true
			}
		}
		if !found {
			return nil, s.bad(fmt.Sprintf("truth.accuracy.offsets[%d]", i), "s%d/b%d has no entry in the calibrated table (splits 0..%d, quantised precisions only)", o.Split, o.Bits, k-1)
		}
	}
	sort.SliceStable(t.Entries, func(i, j int) bool {
		if t.Entries[i].Split != t.Entries[j].Split {
			return t.Entries[i].Split < t.Entries[j].Split
		}
		return t.Entries[i].Bits > t.Entries[j].Bits
	})
	return &t, nil
}
