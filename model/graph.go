package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dynoml/dyno/model/onnxpb"
)

// Graph is an ONNX model analysed for splitting: its nodes in topological
// order with dead code removed, the static shape and FLOPs of every tensor
// and node, and its single-tensor cut points.
//
// A Graph is read-only after AnalyseONNX and may be shared between
// goroutines.
type Graph struct {
	model *onnxpb.ModelProto
	// nodes are the live nodes in topological order.
	nodes    []*onnxpb.NodeProto
	inits    map[string]*onnxpb.TensorProto
	producer map[string]int // tensor -> index in nodes
	input    string
	output   string
	// dynamic marks tensors that depend on the input; the rest are
	// constants (initializers and what is computed from them only).
	dynamic map[string]bool
	info    map[string]*tinfo
	flops   []int64 // per node
	// uncounted marks the nodes whose FLOPs dyno does not know (an
	// operator without a FLOP count); their flops are 0.
	uncounted []bool
	// cost is what a default split spreads: a node's FLOPs, or for an
	// uncounted node the elements it writes (an estimate).
	cost []int64
	// measured reports that tensor shapes come from a ShapeProber;
	// varies marks the tensors whose measured shape depends on the
	// input's values.
	measured bool
	varies   map[string]bool
	// outer caches, per node, the tensors its subgraphs read (reads).
	outer map[*onnxpb.NodeProto][]string
	// notes are what the analysis assumed (a symbolic batch taken as 1).
	notes []string
	opset int64
	cuts  []CutPoint
	// domChain is the dominator chain of tensors from the input to the
	// output, and seg the chain segment of every node (see segments):
	// computed once by findCuts, read by Split.
	domChain []string
	seg      []int
}

// GraphOptions adjusts the analysis.
type GraphOptions struct {
	// InputShape replaces the input's shape from the file, for models
	// exported with symbolic dimensions. A symbolic batch dimension (the
	// first) is taken as 1 without it (and Notes says so).
	InputShape []int64
	// Output chooses the graph output to split towards, for models with
	// several outputs; the nodes that feed only the others are dropped.
	// "" requires a single output.
	Output string
	// Prober measures the shape and element type of every tensor by
	// running the model once (ONNX Runtime: executor/ort.Prober). With it
	// any operator the prober runs is accepted: dyno's own inference then
	// only counts FLOPs where it knows the operator. Without it, every
	// operator must be one dyno's shape inference knows (SupportedOps).
	Prober ShapeProber
}

// CutPoint is a tensor through which every path from the input to the
// output passes: the graph can be cut there into two parts that exchange
// only this tensor.
type CutPoint struct {
	Tensor Tensor
	// FLOPsBefore is the work of every node that computes it (a lower
	// bound where FLOPsPartial).
	FLOPsBefore int64
	// FLOPsPartial reports that some node before the cut has no FLOP
	// count in dyno (an operator it does not count).
	FLOPsPartial bool
	// CostBefore is what a default split spreads evenly: FLOPs where
	// known, output elements for the uncounted nodes.
	CostBefore int64
	// Op is the operator that produces the tensor.
	Op string
	// Activation reports that the tensor's only consumer is an
	// element-wise operator (an activation, batch normalisation) whose
	// output is also a cut point: by default dyno cuts after it instead.
	Activation bool
}

// AnalyseONNX checks a decoded model, orders its graph, infers the shape and
// FLOPs of every node and finds the cut points. Errors wrap ErrCorrupt or
// ErrUnsupported and name the node or tensor at fault.
func AnalyseONNX(m *onnxpb.ModelProto, opt GraphOptions) (*Graph, error) {
	if err := checkModel(m); err != nil {
		return nil, err
	}
	g := &Graph{
		model:    m,
		inits:    map[string]*onnxpb.TensorProto{},
		producer: map[string]int{},
		dynamic:  map[string]bool{},
		info:     map[string]*tinfo{},
		varies:   map[string]bool{},
		outer:    map[*onnxpb.NodeProto][]string{},
	}
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			g.opset = o.GetVersion()
		}
	}
	if g.opset == 0 {
		return nil, fmt.Errorf("%w: the model imports no version of the default ONNX operator set", ErrCorrupt)
	}
	gp := m.GetGraph()
	for i, t := range gp.GetInitializer() {
		where := fmt.Sprintf("graph.initializer[%d] %q", i, t.GetName())
		if t.GetName() == "" {
			return nil, fmt.Errorf("%w: %s has no name", ErrCorrupt, where)
		}
		if _, dup := g.inits[t.GetName()]; dup {
			return nil, fmt.Errorf("%w: %s: duplicate initializer name", ErrCorrupt, where)
		}
		if err := checkTensorSize(t, where); err != nil {
			return nil, err
		}
		g.inits[t.GetName()] = t
	}
	var inputs []*onnxpb.ValueInfoProto
	for _, vi := range gp.GetInput() {
		if _, isInit := g.inits[vi.GetName()]; !isInit {
			inputs = append(inputs, vi)
		}
	}
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%w: the graph has %d inputs %v besides its initializers; dyno splits single-input models (the cloud-only arm sends the one input tensor; fold constant inputs into initializers or export one input)", ErrUnsupported, len(inputs), valueNames(inputs))
	}
	outs := valueNames(gp.GetOutput())
	switch {
	case opt.Output != "":
		if !slices.Contains(outs, opt.Output) {
			return nil, fmt.Errorf("%w: the graph has no output %q (--output); its outputs are %v", ErrUnsupported, opt.Output, outs)
		}
		g.output = opt.Output
	case len(outs) != 1:
		return nil, fmt.Errorf("%w: the graph has %d outputs %v; dyno splits single-output models (the last block returns one tensor): choose the one the application reads with --output NAME (the rest of the graph that only feeds the others is dropped), or concatenate the heads into one in the model", ErrUnsupported, len(outs), outs)
	default:
		g.output = outs[0]
	}
	g.input = inputs[0].GetName()
	in, notes, err := inputInfo(inputs[0], opt.InputShape)
	if err != nil {
		return nil, err
	}
	g.notes = notes
	g.info[g.input] = in
	g.dynamic[g.input] = true
	if err := g.order(); err != nil {
		return nil, err
	}
	var measured map[string]Probed
	if opt.Prober != nil {
		if measured, err = g.probe(opt.Prober); err != nil {
			return nil, err
		}
		g.measured = true
	}
	if err := g.infer(measured); err != nil {
		return nil, err
	}
	if !g.dynamic[g.output] {
		return nil, fmt.Errorf("%w: output %q does not depend on input %q", ErrUnsupported, g.output, g.input)
	}
	out := g.info[g.output]
	if out == nil {
		return nil, fmt.Errorf("%w: output %q is not a tensor (ONNX Runtime returned none for it: a sequence or a map?)", ErrUnsupported, g.output)
	}
	if out.dtype != dtFloat {
		return nil, fmt.Errorf("%w: output %q is %s; the executors return float32 outputs, so the model's output must be FLOAT (cast it in the model)", ErrUnsupported, g.output, dtypeName(out.dtype))
	}
	g.cuts = g.findCuts()
	return g, nil
}

// Notes lists what the analysis assumed, such as a symbolic batch
// dimension taken as 1.
func (g *Graph) Notes() []string { return slices.Clone(g.notes) }

// Measured reports whether tensor shapes were measured by a ShapeProber.
func (g *Graph) Measured() bool { return g.measured }

func valueNames(vs []*onnxpb.ValueInfoProto) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.GetName())
	}
	return out
}

// inputInfo reads the input's element type and static shape, and notes
// what it assumed.
func inputInfo(vi *onnxpb.ValueInfoProto, override []int64) (*tinfo, []string, error) {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return nil, nil, fmt.Errorf("%w: input %q is not a tensor", ErrUnsupported, vi.GetName())
	}
	if et := tt.GetElemType(); et != dtFloat {
		hint := ""
		if !isFloatType(et) {
			hint = " (integer inputs such as token ids or indices cannot be sent by the cloud-only arm, which packs the input as float32; move the embedding or lookup into the model behind a FLOAT input)"
		}
		return nil, nil, fmt.Errorf("%w: input %q is %s; dyno sends float32 activations, so the input must be FLOAT%s", ErrUnsupported, vi.GetName(), dtypeName(et), hint)
	}
	dims := tt.GetShape().GetDim()
	if override != nil {
		if tt.GetShape() != nil && len(dims) != len(override) {
			return nil, nil, fmt.Errorf("%w: input %q has rank %d, the given input shape %v (--input-shape) has rank %d", ErrUnsupported, vi.GetName(), len(dims), override, len(override))
		}
		for i, d := range override {
			if d <= 0 {
				return nil, nil, fmt.Errorf("%w: input shape %v (--input-shape): dimension %d is not positive", ErrUnsupported, override, i)
			}
			if i < len(dims) && dims[i].GetDimParam() == "" && dims[i].GetDimValue() > 0 && dims[i].GetDimValue() != d {
				return nil, nil, fmt.Errorf("%w: input %q: dimension %d is %d in the model, the given input shape (--input-shape) says %d", ErrUnsupported, vi.GetName(), i, dims[i].GetDimValue(), d)
			}
		}
		return &tinfo{dtype: dtFloat, shape: slices.Clone(override)}, nil, nil
	}
	if tt.GetShape() == nil {
		return nil, nil, fmt.Errorf("%w: input %q has no shape; give its static shape with --input-shape (e.g. --input-shape 1,3,224,224)", ErrUnsupported, vi.GetName())
	}
	shape := make([]int64, len(dims))
	var notes []string
	for i, d := range dims {
		switch {
		case d.GetDimValue() > 0:
			shape[i] = d.GetDimValue()
		case i == 0 && len(dims) > 1:
			shape[i] = 1 // a symbolic batch: dyno runs one request at a time
			notes = append(notes, fmt.Sprintf("input %q: dimension 0 is symbolic (%q), taken as batch 1 (dyno runs one request at a time; --input-shape sets every dimension)", vi.GetName(), d.GetDimParam()))
		default:
			example := slices.Clone(shape)
			for j := i; j < len(dims); j++ {
				if v := dims[j].GetDimValue(); v > 0 {
					example[j] = v
				} else {
					example[j] = 0
				}
			}
			return nil, nil, fmt.Errorf("%w: input %q: dimension %d is symbolic (%q); dyno needs static shapes: give the size the model runs at with --input-shape (here %s, with each 0 replaced), or export with a fixed input size", ErrUnsupported, vi.GetName(), i, d.GetDimParam(), shapeFlag(example))
		}
	}
	return &tinfo{dtype: dtFloat, shape: shape}, notes, nil
}

// shapeFlag formats a shape as --input-shape takes it.
func shapeFlag(shape []int64) string {
	var parts []string
	for _, d := range shape {
		parts = append(parts, fmt.Sprint(d))
	}
	return "--input-shape " + strings.Join(parts, ",")
}

func nodeLabel(n *onnxpb.NodeProto) string {
	if n.GetName() != "" {
		return fmt.Sprintf("node %q (%s)", n.GetName(), n.GetOpType())
	}
	out := ""
	if len(n.GetOutput()) > 0 {
		out = n.GetOutput()[0]
	}
	return fmt.Sprintf("unnamed %s node producing %q", n.GetOpType(), out)
}

// order checks that every tensor has one source, sorts the nodes
// topologically (keeping the file's order where it is free) and drops the
// nodes the output does not depend on.
func (g *Graph) order() error {
	all := g.model.GetGraph().GetNode()
	prod := map[string]int{}
	for i, n := range all {
		for _, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			if j, dup := prod[o]; dup {
				return fmt.Errorf("%w: tensor %q is produced by both %s and %s", ErrCorrupt, o, nodeLabel(all[j]), nodeLabel(n))
			}
			if _, isInit := g.inits[o]; isInit || o == g.input {
				return fmt.Errorf("%w: %s overwrites %q, which is a graph input or initializer", ErrCorrupt, nodeLabel(n), o)
			}
			prod[o] = i
		}
	}
	// Live nodes: those the output depends on.
	live := make([]bool, len(all))
	if _, ok := prod[g.output]; !ok {
		if g.output == g.input {
			return fmt.Errorf("%w: the output is the input: the graph computes nothing", ErrUnsupported)
		}
		return fmt.Errorf("%w: output %q is produced by no node", ErrCorrupt, g.output)
	}
	stack := []string{g.output}
	seen := map[string]bool{g.output: true}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		i, ok := prod[t]
		if !ok {
			continue
		}
		live[i] = true
		for _, in := range g.reads(all[i]) {
			if in == "" || seen[in] {
				continue
			}
			seen[in] = true
			if _, ok := prod[in]; !ok {
				if _, isInit := g.inits[in]; !isInit && in != g.input {
					return fmt.Errorf("%w: %s reads %q, which no node, initializer or graph input provides", ErrCorrupt, nodeLabel(all[i]), in)
				}
			}
			stack = append(stack, in)
		}
	}
	// Kahn's algorithm over live nodes, smallest file index first.
	indeg := make([]int, len(all))
	users := map[int][]int{}
	for i, n := range all {
		if !live[i] {
			continue
		}
		deps := map[int]bool{}
		for _, in := range g.reads(n) {
			if j, ok := prod[in]; ok && in != "" && !deps[j] {
				deps[j] = true
				indeg[i]++
				users[j] = append(users[j], i)
			}
		}
	}
	var ready []int
	for i := range all {
		if live[i] && indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		slices.Sort(ready)
		i := ready[0]
		ready = ready[1:]
		g.producerAdd(all[i])
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	for i := range all {
		if live[i] && indeg[i] > 0 {
			return fmt.Errorf("%w: %s is part of a cycle; an ONNX graph must be acyclic", ErrCorrupt, nodeLabel(all[i]))
		}
	}
	return nil
}

func (g *Graph) producerAdd(n *onnxpb.NodeProto) {
	for _, o := range n.GetOutput() {
		if o != "" {
			g.producer[o] = len(g.nodes)
		}
	}
	g.nodes = append(g.nodes, n)
}

// infer runs shape inference in topological order and counts FLOPs. With
// measured shapes (a ShapeProber ran the model) the measurement wins: an
// operator dyno does not know, or one it infers differently, keeps the
// measured shapes and has its FLOPs marked unknown. Without them an
// operator dyno cannot infer is an error.
func (g *Graph) infer(measured map[string]Probed) error {
	g.flops = make([]int64, len(g.nodes))
	g.uncounted = make([]bool, len(g.nodes))
	g.cost = make([]int64, len(g.nodes))
	for i, n := range g.nodes {
		ins := make([]*tinfo, len(n.GetInput()))
		dyn := false
		known := true
		for j, name := range n.GetInput() {
			if name == "" {
				continue
			}
			dyn = dyn || g.dynamic[name]
			ti, err := g.tensorInfo(name)
			if err != nil {
				if measured == nil {
					return fmt.Errorf("%s input %d: %w", nodeLabel(n), j, err)
				}
				known = false
				continue
			}
			ins[j] = ti
		}
		for _, name := range g.reads(n)[len(n.GetInput()):] {
			dyn = dyn || g.dynamic[name]
		}
		var outs []*tinfo
		var flops int64
		var err error
		switch {
		case n.GetDomain() != "" && n.GetDomain() != "ai.onnx":
			err = fmt.Errorf("%w: %s is in operator domain %q; dyno's own shape inference knows the default ONNX operators only (split with ONNX Runtime measuring the shapes: dynoctl model split does)", ErrUnsupported, nodeLabel(n), n.GetDomain())
		case known:
			outs, flops, err = inferNode(n, ins, g.opset)
		}
		if err != nil && measured == nil {
			return err
		}
		counted := known && err == nil
		for j, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			g.dynamic[o] = dyn
			var ti *tinfo
			if counted && j < len(outs) {
				ti = outs[j]
			}
			if p, ok := measured[o]; ok {
				if p.Varies {
					g.varies[o] = true
				}
				if ti == nil || ti.dtype != p.DType || !slices.Equal(ti.shape, p.Shape) {
					if ti != nil {
						counted = false // dyno's inference disagrees: trust the measurement
					}
					ti = &tinfo{dtype: p.DType, shape: slices.Clone(p.Shape)}
				}
			}
			if ti != nil {
				g.info[o] = ti
			}
		}
		if !counted {
			flops = 0
			if f, ok := flopCounts[n.GetOpType()]; ok && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") {
				flops, counted = f(n, ins, g.outInfos(n))
			}
		}
		g.flops[i] = flops
		g.uncounted[i] = !counted
		g.cost[i] = flops
		if !counted {
			for _, o := range g.outInfos(n) {
				if o != nil {
					g.cost[i] += o.elements()
				}
			}
		}
	}
	return nil
}

// outInfos returns what is known of a node's outputs (nil where nothing).
func (g *Graph) outInfos(n *onnxpb.NodeProto) []*tinfo {
	out := make([]*tinfo, len(n.GetOutput()))
	for j, o := range n.GetOutput() {
		if o != "" {
			out[j] = g.info[o]
		}
	}
	return out
}

// tensorInfo returns the inferred info of a tensor, reading initializers
// lazily.
func (g *Graph) tensorInfo(name string) (*tinfo, error) {
	if ti, ok := g.info[name]; ok {
		return ti, nil
	}
	t, ok := g.inits[name]
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q has no inferred shape", ErrCorrupt, name)
	}
	ti, err := constInfo(t)
	if err != nil {
		return nil, err
	}
	g.info[name] = ti
	return ti, nil
}

// Input is the model's input tensor with its static shape.
func (g *Graph) Input() Tensor { return g.tensor(g.input) }

// Output is the model's output tensor with its static shape.
func (g *Graph) Output() Tensor { return g.tensor(g.output) }

func (g *Graph) tensor(name string) Tensor {
	return NewTensor(name, g.info[name].shape...)
}

// TotalFLOPs is the work of the whole graph (see docs/models.md for what a
// FLOP counts).
func (g *Graph) TotalFLOPs() int64 {
	var t int64
	for _, f := range g.flops {
		t += f
	}
	return t
}

// TotalParams counts the elements of the graph's floating-point
// initializers and of the floating-point tensors held by its live Constant
// nodes (weights as PyTorch sometimes exports them), scalars
// (hyper-parameters such as Clip bounds) excluded.
func (g *Graph) TotalParams() int64 {
	var names []string
	for name := range g.inits {
		names = append(names, name)
	}
	p := g.paramsOf(names)
	for _, n := range g.nodes {
		p += constParams(n)
	}
	return p
}

func (g *Graph) paramsOf(names []string) int64 {
	var p int64
	for _, name := range names {
		if t, ok := g.inits[name]; ok {
			p += tensorParams(t)
		}
	}
	return p
}

// tensorParams counts a floating-point tensor's elements as parameters
// (0 for scalars, single values and other element types).
func tensorParams(t *onnxpb.TensorProto) int64 {
	if !isFloatType(t.GetDataType()) || len(t.GetDims()) == 0 {
		return 0
	}
	n, _ := numElements(t.GetDims())
	if n > 1 {
		return n
	}
	return 0
}

// constParams counts the parameters a Constant node holds.
func constParams(n *onnxpb.NodeProto) int64 {
	if n.GetOpType() != "Constant" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
		return 0
	}
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			if a.T != nil {
				return tensorParams(a.T)
			}
		case "value_floats":
			if k := int64(len(a.GetFloats())); k > 1 {
				return k
			}
		}
	}
	return 0
}

// UncountedOps lists the operators (with their node counts) whose FLOPs
// dyno does not know, e.g. "Resize:2"; empty when every FLOP is counted.
func (g *Graph) UncountedOps() []string {
	return g.opsWhere(func(i int) bool { return g.uncounted[i] })
}

func (g *Graph) opsWhere(keep func(i int) bool) []string {
	counts := map[string]int{}
	for i, n := range g.nodes {
		if keep(i) {
			counts[n.GetOpType()]++
		}
	}
	var out []string
	for k, v := range counts {
		out = append(out, fmt.Sprintf("%s:%d", k, v))
	}
	slices.Sort(out)
	return out
}

// CutPoints lists every single-tensor cut point strictly between the input
// and the output, in order from the input.
func (g *Graph) CutPoints() []CutPoint { return slices.Clone(g.cuts) }

// Nodes is the number of live nodes.
func (g *Graph) Nodes() int { return len(g.nodes) }

// OpCounts counts the live nodes per operator, e.g. for `dynoctl model
// split --list`.
func (g *Graph) OpCounts() string {
	counts := map[string]int{}
	for _, n := range g.nodes {
		counts[n.GetOpType()]++
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", k, counts[k])
	}
	return b.String()
}
