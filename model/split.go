package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dynoml/dyno/model/onnxpb"
)

// DefaultMaxCuts is how many cut points a split keeps when no option
// chooses: a big graph has hundreds of cut points, and every block costs
// a session run (a 210-block split ran 58% slower device-only than 11
// blocks), so by default the blocks are at most DefaultMaxCuts+1, spread
// evenly by cost.
const DefaultMaxCuts = 11

// SplitOptions chooses where to cut. At most one of At, Every, MaxCuts
// and All may be set; with none, the model is cut at up to DefaultMaxCuts
// cut points spread by cost (after activations unless Raw).
type SplitOptions struct {
	// Name is the model's name in the manifest; "" uses the graph's name.
	Name string
	// At cuts exactly at these tensors (the output may be listed and is
	// implied). Each must be a cut point.
	At []string
	// Every keeps every Nth candidate cut point (N > 1).
	Every int
	// MaxCuts keeps at most K cut points, chosen so the blocks' cost
	// (FLOPs, estimated where uncounted) is as even as the cut points
	// allow.
	MaxCuts int
	// All cuts at every candidate cut point.
	All bool
	// Raw also offers the cut points just before an element-wise
	// activation; by default a block ends after the activation.
	Raw bool
	// AllowedBits are the precisions the manifest allows; nil means all.
	AllowedBits []int
	// Source is written into the manifest; "" describes the split.
	Source string
	// Original is written into the manifest (see Manifest.Original).
	Original string
}

// Split is a model cut into blocks: the manifest and one self-contained ONNX
// model per block, in order.
type Split struct {
	Manifest *Manifest
	Blocks   []*onnxpb.ModelProto
	// Chose says how the cut points were chosen (printed by the CLI).
	Chose string
}

// BlockFile is the path of block i (0-based) relative to model.json.
func BlockFile(i int) string { return fmt.Sprintf("blocks/block%02d.onnx", i+1) }

// errUsage marks contradictory options.
var errUsage = errors.New("model: bad split options")

// Candidates returns the cut points a split chooses among (with Every or
// MaxCuts, or all of them by default): every cut point with raw, else those
// not just before an element-wise activation.
func (g *Graph) Candidates(raw bool) []CutPoint {
	var out []CutPoint
	for _, c := range g.cuts {
		if raw || !c.Activation {
			out = append(out, c)
		}
	}
	return out
}

// Select returns the cut points a split with these options cuts at, and
// a sentence saying how they were chosen.
func (g *Graph) Select(opt SplitOptions) ([]CutPoint, string, error) {
	sel, err := g.selectCuts(opt)
	if err != nil {
		return nil, "", err
	}
	cands := g.Candidates(opt.Raw)
	var how string
	byCost := false
	switch {
	case len(opt.At) > 0:
		how = fmt.Sprintf("the %d cut point(s) named", len(sel))
	case opt.Every > 1:
		how = fmt.Sprintf("every %d-th of %d candidate cut points: %d", opt.Every, len(cands), len(sel))
	case opt.MaxCuts > 0:
		how = fmt.Sprintf("%d of %d candidate cut points (at most %d, spread by cost)", len(sel), len(cands), opt.MaxCuts)
		byCost = opt.MaxCuts < len(cands)
	case opt.All || len(cands) <= DefaultMaxCuts:
		how = fmt.Sprintf("all %d candidate cut points", len(sel))
	default:
		how = fmt.Sprintf("%d of %d candidate cut points, spread by cost (the default caps a split at %d cuts; --max K, --at or --all choose otherwise)", len(sel), len(cands), DefaultMaxCuts)
		byCost = true
	}
	if byCost && g.partial() {
		how += "; cost is FLOPs where dyno counts them, output elements for " + strings.Join(g.UncountedOps(), " ")
	}
	return sel, how, nil
}

// partial reports that some node's FLOPs are uncounted.
func (g *Graph) partial() bool { return slices.Contains(g.uncounted, true) }

// selectCuts applies the options to the graph's cut points.
func (g *Graph) selectCuts(opt SplitOptions) ([]CutPoint, error) {
	set := 0
	for _, b := range []bool{len(opt.At) > 0, opt.Every > 0, opt.MaxCuts > 0, opt.All} {
		if b {
			set++
		}
	}
	if set > 1 {
		return nil, fmt.Errorf("%w: choose one of At, Every, MaxCuts and All", errUsage)
	}
	if opt.Every < 0 || opt.MaxCuts < 0 {
		return nil, fmt.Errorf("%w: Every and MaxCuts must not be negative", errUsage)
	}
	if len(g.cuts) == 0 {
		return nil, fmt.Errorf("%w: no single-tensor cut point between input %q and output %q: every tensor in between lies on one of several parallel paths (or is not float32), so the graph cannot be cut into a chain", ErrNoCutPoint, g.input, g.output)
	}
	if len(opt.At) > 0 {
		pos := map[string]int{}
		for i, c := range g.cuts {
			pos[c.Tensor.Name] = i
		}
		var idx []int
		for _, name := range opt.At {
			if name == g.output {
				continue
			}
			i, ok := pos[name]
			if !ok {
				return nil, g.notACut(name)
			}
			if !slices.Contains(idx, i) {
				idx = append(idx, i)
			}
		}
		slices.Sort(idx)
		var out []CutPoint
		for _, i := range idx {
			out = append(out, g.cuts[i])
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: the cuts %v leave a single block; name at least one cut point", ErrNoCutPoint, opt.At)
		}
		return out, nil
	}
	cands := g.Candidates(opt.Raw)
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: every cut point of the graph lies before an activation; split with Raw to cut there", ErrNoCutPoint)
	}
	switch {
	case opt.Every > 1:
		var out []CutPoint
		for i, c := range cands {
			if (i+1)%opt.Every == 0 {
				out = append(out, c)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: every %d-th of %d cut points selects none", ErrNoCutPoint, opt.Every, len(cands))
		}
		return out, nil
	case opt.MaxCuts > 0:
		return evenCuts(cands, g.totalCost(), opt.MaxCuts), nil
	case !opt.All && len(cands) > DefaultMaxCuts:
		return evenCuts(cands, g.totalCost(), DefaultMaxCuts), nil
	}
	return cands, nil
}

// totalCost is the cost of the nodes that run per request.
func (g *Graph) totalCost() int64 {
	var t int64
	for i, c := range g.cost {
		if g.nodeDynamic(i) {
			t += c
		}
	}
	return t
}

// evenCuts picks at most k cut points whose cost before is closest to
// k evenly spaced targets.
func evenCuts(cands []CutPoint, total int64, k int) []CutPoint {
	if k >= len(cands) {
		return cands
	}
	chosen := map[int]bool{}
	for j := 1; j <= k; j++ {
		target := float64(total) * float64(j) / float64(k+1)
		best, bestD := -1, 0.0
		for i, c := range cands {
			if chosen[i] {
				continue
			}
			d := float64(c.CostBefore) - target
			if d < 0 {
				d = -d
			}
			if best < 0 || d < bestD {
				best, bestD = i, d
			}
		}
		chosen[best] = true
	}
	var out []CutPoint
	for i, c := range cands {
		if chosen[i] {
			out = append(out, c)
		}
	}
	return out
}

// notACut explains why a named tensor cannot be cut at.
func (g *Graph) notACut(name string) error {
	switch {
	case name == g.input:
		return fmt.Errorf("%w: %q is the model's input: split 0 (send the input) needs no cut", ErrNoCutPoint, name)
	case g.info[name] == nil && g.inits[name] == nil:
		return fmt.Errorf("%w: no tensor %q in the graph (or it does not lead to the output)", ErrNoCutPoint, name)
	case !g.dynamic[name]:
		return fmt.Errorf("%w: %q is a constant (an initializer or computed from them), not an activation", ErrNoCutPoint, name)
	case g.varies[name]:
		return fmt.Errorf("%w: %q has a shape that depends on the input's values (it differed between sample inputs); a cut tensor needs a static shape", ErrNoCutPoint, name)
	case g.info[name] == nil:
		return fmt.Errorf("%w: %q is not a tensor ONNX Runtime reported", ErrNoCutPoint, name)
	case g.info[name].dtype != dtFloat:
		return fmt.Errorf("%w: %q is %s; only float32 activations are sent", ErrNoCutPoint, name, dtypeName(g.info[name].dtype))
	}
	return fmt.Errorf("%w: %q is not a single-tensor cut point: some path from the input to the output bypasses it (it lies inside a residual or multi-branch block); list the cut points with `dynoctl model split MODEL.onnx --list`", ErrNoCutPoint, name)
}

// Split cuts the graph into blocks at the selected cut points and builds the
// manifest and the block models.
func (g *Graph) Split(opt SplitOptions) (*Split, error) {
	sel, how, err := g.Select(opt)
	if err != nil {
		return nil, err
	}
	bits := opt.AllowedBits
	if bits == nil {
		bits = slices.Clone(ValidBits)
	}
	chain, seg := g.domChain, g.seg
	pos := map[string]int{}
	for i, t := range chain {
		pos[t] = i
	}
	// Bounds: the chain index each block ends at.
	var ends []int
	for _, c := range sel {
		ends = append(ends, pos[c.Tensor.Name])
	}
	ends = append(ends, len(chain)-1)
	blockOf := func(s int) int { // block of a node in chain segment s
		b := 0
		for b < len(ends) && ends[b] < s {
			b++
		}
		return b
	}
	members := make([][]int, len(ends))
	for i := range g.nodes {
		if !g.nodeDynamic(i) {
			continue
		}
		b := blockOf(seg[i])
		members[b] = append(members[b], i)
	}
	name := opt.Name
	if name == "" {
		name = g.model.GetGraph().GetName()
	}
	if name == "" {
		name = "model"
	}
	src := opt.Source
	if src == "" {
		src = fmt.Sprintf("dyno split of ONNX graph %q (opset %d) at %d cut point(s)", g.model.GetGraph().GetName(), g.opset, len(sel))
	}
	m := &Manifest{
		Version:     ManifestVersion,
		Name:        name,
		Input:       g.Input(),
		AllowedBits: bits,
		Source:      src,
		Original:    opt.Original,
	}
	out := g.Output()
	if n := out.Elements; n > 1 && (len(out.Shape) == 1 || (len(out.Shape) == 2 && out.Shape[0] == 1)) {
		m.Classes = int(n)
	}
	sp := &Split{Manifest: m, Chose: how}
	in := g.input
	for b, end := range ends {
		outName := chain[end]
		bm, params, err := g.block(fmt.Sprintf("%s.block%02d", name, b+1), in, outName, members[b])
		if err != nil {
			return nil, err
		}
		var flops int64
		mine := map[int]bool{}
		for _, i := range members[b] {
			flops += g.flops[i]
			mine[i] = true
		}
		m.Blocks = append(m.Blocks, Block{
			Name:           outName,
			File:           BlockFile(b),
			Output:         g.tensor(outName),
			FLOPs:          flops,
			Params:         params,
			FLOPsUncounted: g.opsWhere(func(i int) bool { return mine[i] && g.uncounted[i] }),
		})
		sp.Blocks = append(sp.Blocks, bm)
		in = outName
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return sp, nil
}

func (g *Graph) nodeDynamic(i int) bool {
	for _, o := range g.nodes[i].GetOutput() {
		if o != "" && g.dynamic[o] {
			return true
		}
	}
	return false
}

// block builds the model of one block: its dynamic nodes, the constant
// nodes and initializers they use, and its input and output.
func (g *Graph) block(name, in, out string, members []int) (*onnxpb.ModelProto, int64, error) {
	include := map[int]bool{}
	for _, i := range members {
		include[i] = true
	}
	var inits []string
	seenInit := map[string]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		for _, t := range g.reads(g.nodes[i]) {
			if t == "" || t == in {
				continue
			}
			if _, ok := g.inits[t]; ok {
				if !seenInit[t] {
					seenInit[t] = true
					inits = append(inits, t)
				}
				continue
			}
			j, ok := g.producer[t]
			if !ok {
				return fmt.Errorf("%w: block %s: %s reads %q, which nothing provides", ErrCorrupt, name, nodeLabel(g.nodes[i]), t)
			}
			if g.dynamic[t] && !include[j] {
				// Dominance rules this out; reaching it is a bug.
				return fmt.Errorf("model: internal error: block %s: %s reads %q from another block", name, nodeLabel(g.nodes[i]), t)
			}
			if !include[j] {
				include[j] = true
				if err := visit(j); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, i := range members {
		if err := visit(i); err != nil {
			return nil, 0, err
		}
	}
	gp := &onnxpb.GraphProto{Name: ptr(name)}
	var params int64
	for i, n := range g.nodes {
		if include[i] {
			gp.Node = append(gp.Node, n)
			params += constParams(n)
		}
	}
	for _, t := range inits {
		gp.Initializer = append(gp.Initializer, g.inits[t])
	}
	gp.Input = []*onnxpb.ValueInfoProto{valueInfo(in, g.info[in])}
	gp.Output = []*onnxpb.ValueInfoProto{valueInfo(out, g.info[out])}
	src := g.model
	ir := src.GetIrVersion()
	if ir < 4 {
		ir = 4 // initializers need not be listed as inputs from IR 4 on
	}
	bm := &onnxpb.ModelProto{
		IrVersion:       ptr(ir),
		OpsetImport:     src.GetOpsetImport(),
		ProducerName:    ptr("dyno"),
		ProducerVersion: ptr("split"),
		Graph:           gp,
	}
	// Fields this build's ONNX types do not know, among them model-local
	// functions (field 25, which exporters write for custom modules), go
	// with every block: a block may call them.
	if u := src.ProtoReflect().GetUnknown(); len(u) > 0 {
		bm.ProtoReflect().SetUnknown(u)
	}
	return bm, params + g.paramsOf(inits), nil
}

func valueInfo(name string, ti *tinfo) *onnxpb.ValueInfoProto {
	var dims []*onnxpb.TensorShapeProto_Dimension
	for _, d := range ti.shape {
		dims = append(dims, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{
		Name: ptr(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: ptr(ti.dtype),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}

// ErrStale is returned by Write when dir holds profiles or an accuracy
// table of another split, which the new blocks would silently invalidate.
var ErrStale = errors.New("model: folder holds results of another split")

// Stale lists the files in dir that describe another split than s:
// profiles/*.json and accuracy.json, unless dir already holds this very
// split (the same manifest, descriptions aside, and byte-identical block
// files), which leaves them valid.
func (s *Split) Stale(dir string) ([]string, error) {
	if same, err := s.sameAs(dir); err != nil || same {
		return nil, err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.json"))
	if _, err := os.Stat(filepath.Join(dir, "accuracy.json")); err == nil {
		files = append(files, filepath.Join(dir, "accuracy.json"))
	}
	return files, nil
}

// sameAs reports whether dir holds this split already.
func (s *Split) sameAs(dir string) (bool, error) {
	old, err := LoadManifest(filepath.Join(dir, "model.json"))
	if err != nil {
		return false, nil
	}
	a, b := *old, *s.Manifest
	a.Source, a.Original, b.Source, b.Original = "", "", "", ""
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		return false, nil
	}
	for i, bm := range s.Blocks {
		want, err := EncodeONNX(bm)
		if err != nil {
			return false, err
		}
		got, err := os.ReadFile(filepath.Join(dir, s.Manifest.Blocks[i].File))
		if err != nil || string(got) != string(want) {
			return false, nil
		}
	}
	return true, nil
}

// Write writes the blocks under dir/blocks and the manifest as
// dir/model.json, removing block files a previous split left behind. If
// dir holds profiles or an accuracy table of a different split (Stale), it
// refuses with ErrStale, or with force removes them first.
func (s *Split) Write(dir string, force bool) error {
	stale, err := s.Stale(dir)
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		if !force {
			return fmt.Errorf("%w: %s holds %s, measured on the blocks of an earlier split: they would not match the new blocks; remove them, write elsewhere, or pass --force to clear them", ErrStale, dir, strings.Join(stale, ", "))
		}
		for _, f := range stale {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("model: clear stale %s: %w", f, err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "blocks"), 0o755); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	keep := map[string]bool{}
	for i, b := range s.Blocks {
		rel := s.Manifest.Blocks[i].File
		keep[filepath.Base(rel)] = true
		if err := WriteONNX(filepath.Join(dir, rel), b); err != nil {
			return err
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, "blocks", "*.onnx"))
	for _, f := range old {
		if !keep[filepath.Base(f)] {
			os.Remove(f)
		}
	}
	var buf strings.Builder
	if err := WriteManifest(&buf, s.Manifest); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "model.json"), []byte(buf.String()))
}

// SplitFile reads an ONNX file, splits it and writes the blocks and
// model.json into dir (force as for Write).
func SplitFile(path, dir string, gopt GraphOptions, opt SplitOptions, force bool) (*Split, error) {
	m, err := ReadONNX(path)
	if err != nil {
		return nil, err
	}
	g, err := AnalyseONNX(m, gopt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if opt.Name == "" {
		opt.Name = NameFromPath(path)
	}
	if opt.Original == "" {
		opt.Original = OriginalPath(path, dir)
	}
	s, err := g.Split(opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, s.Write(dir, force)
}

// OriginalPath is how a manifest in dir refers to the whole model at path:
// relative when it lies inside dir, else absolute.
func OriginalPath(path, dir string) string {
	ap, err1 := filepath.Abs(path)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return path
	}
	if rel, err := filepath.Rel(ad, ap); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return ap
}

// NameFromPath derives a model name from its file: the base name without
// extension, or the folder's name for models/<name>/model.onnx.
func NameFromPath(path string) string {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if name == "model" {
		if abs, err := filepath.Abs(path); err == nil {
			name = filepath.Base(filepath.Dir(abs))
		}
	}
	return name
}
