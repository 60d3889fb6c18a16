package ort_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

// TestAnyModelSplitsAndVerifies is the acceptance test of "bring your own
// ONNX": models written with operators dyno's own shape inference does not
// know (Resize, Slice, LayerNormalization, ...) split at every cut point
// with shapes measured by ONNX Runtime, and the chained blocks give the
// whole model's output to within 1e-4.
func TestAnyModelSplitsAndVerifies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		uncounted []string // operators whose FLOPs are unknown
		params    int64
		stretch   [2]string // a stretch without a cut (From, To)
		minBlocks int
	}{
		{"unet", []string{"Resize:1"}, 10566, [2]string{"enc1.relu", "skip1"}, 5},
		// 4640 parameters sit in Constant nodes, 138 in initializers.
		{"lnnet", nil, 4778, [2]string{"ln1.sub", "ln1.div"}, 12},
		{"seqrec", nil, 5028, [2]string{}, 13},
		{"dbnet", []string{"Resize:4"}, 15788, [2]string{"stage2.relu", "neck.fuse"}, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z, err := model.ZooByName(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			m, err := z.Build(1)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			src := filepath.Join(dir, tc.name+".onnx")
			if err := model.WriteONNX(src, m); err != nil {
				t.Fatal(err)
			}
			g, err := model.AnalyseONNX(m, model.GraphOptions{Prober: ort.Prober{Threads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			if got := g.UncountedOps(); !slices.Equal(got, tc.uncounted) {
				t.Errorf("uncounted operators %v, want %v", got, tc.uncounted)
			}
			if g.TotalParams() != tc.params {
				t.Errorf("%d parameters, want %d", g.TotalParams(), tc.params)
			}
			if tc.stretch[0] != "" {
				found := false
				for _, s := range g.Stretches() {
					if s.From == tc.stretch[0] && s.To == tc.stretch[1] && s.Reason != "" {
						found = true
					}
				}
				if !found {
					t.Errorf("no stretch without a cut from %s to %s in %+v", tc.stretch[0], tc.stretch[1], g.Stretches())
				}
			}
			out := filepath.Join(dir, "split")
			s, err := model.SplitFile(src, out, model.GraphOptions{Prober: ort.Prober{Threads: 1}}, model.SplitOptions{All: true, Raw: true}, false)
			if err != nil {
				t.Fatal(err)
			}
			if s.Manifest.K() < tc.minBlocks {
				t.Errorf("%d blocks, want at least %d", s.Manifest.K(), tc.minBlocks)
			}
			if s.Manifest.TotalParams() < tc.params {
				t.Errorf("blocks hold %d parameters, the model %d", s.Manifest.TotalParams(), tc.params)
			}
			res, err := ort.CheckSplit(ort.CheckConfig{Model: out, Inputs: 4, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range res.Outputs {
				t.Logf("%s: %d blocks, output %s: max abs diff %.3g (max |output| %.3g)", tc.name, s.Manifest.K(), d.Name, d.MaxAbs, d.MaxRef)
				if d.MaxRef == 0 || d.MaxAbs > 1e-4 || d.NonFinite > 0 {
					t.Errorf("output %s: max abs diff %g, max |output| %g, %d non-finite: want a non-zero output within 1e-4", d.Name, d.MaxAbs, d.MaxRef, d.NonFinite)
				}
			}
			// dyno's own inference alone refuses what it does not know.
			if tc.uncounted != nil {
				_, err := model.AnalyseONNX(m, model.GraphOptions{})
				if !errors.Is(err, model.ErrUnsupported) || !strings.Contains(err.Error(), "has no shape inference in dyno") {
					t.Errorf("without a prober: %v, want ErrUnsupported: no shape inference", err)
				}
			}
		})
	}
}

// A symbolic dimension other than the batch is refused with the input, the
// dimension and the flag that fixes it; with the shape given, the model
// splits and the blocks have static shapes.
func TestSymbolicDimensions(t *testing.T) {
	build := func(dims ...string) *onnxpb.ModelProto {
		m, err := model.LNNet(1)
		if err != nil {
			t.Fatal(err)
		}
		d := m.Graph.Input[0].Type.GetTensorType().Shape.Dim
		for i, p := range dims {
			if p != "" {
				d[i].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}
			}
		}
		return m
	}
	p := ort.Prober{Threads: 1}
	_, err := model.AnalyseONNX(build("", "seq"), model.GraphOptions{Prober: p})
	if !errors.Is(err, model.ErrUnsupported) {
		t.Fatalf("symbolic sequence length: %v, want ErrUnsupported", err)
	}
	for _, f := range []string{`"tokens"`, "dimension 1", `"seq"`, "--input-shape 1,0,32"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
	g, err := model.AnalyseONNX(build("batch", "seq"), model.GraphOptions{Prober: p, InputShape: []int64{1, 16, 32}})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Output().Shape; !slices.Equal(got, []int64{1, 10}) {
		t.Errorf("output shape %v", got)
	}
	g, err = model.AnalyseONNX(build("batch"), model.GraphOptions{Prober: p})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Notes(); len(n) != 1 || !strings.Contains(n[0], "batch 1") {
		t.Errorf("notes %q, want the symbolic batch taken as 1", n)
	}
}

// A tensor whose shape depends on the input's values is measured as such
// and never offered as a cut.
func TestDataDependentShapeIsNoCut(t *testing.T) {
	b := model.NewBuilder("nonzero")
	b.Input("x", 1, 64)
	r := b.Node("Relu", "r", []string{"x"})
	nz := b.Node("NonZero", "nz", []string{r})                       // [2, number of positives]
	c := b.Node("Cast", "nzf", []string{nz}, model.AttrInt("to", 1)) // float32, data-dependent shape
	s := b.Node("ReduceSum", "cnt", []string{c}, model.AttrInt("keepdims", 1))
	ones := b.Init(model.FloatTensor("ones", []int64{1, 64}, slices.Repeat([]float32{1}, 64)))
	b.Node("Mul", "y", []string{s, ones})
	b.Output("y", 1, 64)
	g, err := model.AnalyseONNX(b.Model("data-dependent shape"), model.GraphOptions{Prober: ort.Prober{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var cuts []string
	for _, c := range g.CutPoints() {
		cuts = append(cuts, c.Tensor.Name)
	}
	if !slices.Equal(cuts, []string{"r", "cnt"}) {
		t.Errorf("cut points %v, want [r cnt]: the data-dependent nzf is no cut", cuts)
	}
	_, err = g.Split(model.SplitOptions{At: []string{"nzf"}})
	if !errors.Is(err, model.ErrNoCutPoint) || !strings.Contains(err.Error(), "depends on the input's values") {
		t.Errorf("cut at nzf: %v, want ErrNoCutPoint saying why", err)
	}
	st := g.Stretches()
	if len(st) != 1 || st[0].From != "r" || st[0].To != "cnt" || !strings.Contains(st[0].Reason, `"nz" (INT64`) || !strings.Contains(st[0].Reason, "shape depends on the input's values") {
		t.Errorf("stretches %+v, want r -> cnt without a cut, saying why", st)
	}
}

// ifNet is x -> a = 2x -> If(sum(a) > 0, relu(a), -a) -> y = that + 1: the
// branches read a from the enclosing graph without listing it as an input.
func ifNet() *onnxpb.ModelProto {
	branch := func(name, op string) *onnxpb.GraphProto {
		sb := model.NewBuilder(name)
		sb.Node(op, name+".out", []string{"a"})
		sb.Output(name+".out", 1, 8)
		return sb.Model("").Graph
	}
	b := model.NewBuilder("ifnet")
	b.Input("x", 1, 8)
	two := b.Init(model.FloatTensor("two", nil, []float32{2}))
	a := b.Node("Mul", "a", []string{"x", two})
	sum := b.Node("ReduceSum", "sum", []string{a}, model.AttrInt("keepdims", 0))
	zero := b.Init(model.FloatTensor("zero", nil, []float32{0}))
	cond := b.Node("Greater", "cond", []string{sum, zero})
	b.Node("If", "branch", []string{cond},
		&onnxpb.AttributeProto{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: branch("then", "Relu")},
		&onnxpb.AttributeProto{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: branch("else", "Neg")})
	one := b.Init(model.FloatTensor("one", nil, []float32{1}))
	b.Node("Add", "y", []string{"branch", one})
	b.Output("y", 1, 8)
	return b.Model("control flow")
}

// Control flow splits: a subgraph's references to the enclosing graph
// count as inputs, so the cut before the If carries them, and the blocks
// verify.
func TestControlFlowSplits(t *testing.T) {
	m := ifNet()
	if _, err := model.AnalyseONNX(m, model.GraphOptions{}); !errors.Is(err, model.ErrUnsupported) || !strings.Contains(err.Error(), "no shape inference") {
		t.Errorf("without a prober: %v, want ErrUnsupported: no shape inference", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "ifnet.onnx")
	if err := model.WriteONNX(src, m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "split")
	s, err := model.SplitFile(src, out, model.GraphOptions{Prober: ort.Prober{Threads: 1}}, model.SplitOptions{All: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	var ends []string
	for _, b := range s.Manifest.Blocks {
		ends = append(ends, b.Name)
	}
	if !slices.Equal(ends, []string{"a", "branch", "y"}) {
		t.Errorf("blocks end at %v, want [a branch y]", ends)
	}
	res, err := ort.CheckSplit(ort.CheckConfig{Model: out, Inputs: 8, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Outputs[0]; d.MaxAbs > 1e-6 || d.MaxRef == 0 {
		t.Errorf("max abs diff %g (max |output| %g)", d.MaxAbs, d.MaxRef)
	}
}

// TestPyTorchExports splits models torch.onnx.export wrote (the test data
// of the ONNX Runtime binding dyno uses: Constant-node weights, a 100-way
// fan-out joined by Concat, Shape/ConstantOfShape/Where/Expand
// arithmetic) and verifies the blocks.
func TestPyTorchExports(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Fatalf("find the binding's module: %v", err)
	}
	data := filepath.Join(strings.TrimSpace(string(out)), "test_data")
	for _, tc := range []struct {
		file   string
		params int64
		blocks int
	}{
		{"example_big_fanout.onnx", 1600, 2},
		{"example_0_dim_output.onnx", 0, 2},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "split")
			s, err := model.SplitFile(filepath.Join(data, tc.file), dir, model.GraphOptions{Prober: ort.Prober{Threads: 1}}, model.SplitOptions{All: true, Raw: true}, false)
			if err != nil {
				t.Fatal(err)
			}
			if s.Manifest.K() != tc.blocks || s.Manifest.TotalParams() != tc.params {
				t.Errorf("%d blocks, %d params; want %d, %d", s.Manifest.K(), s.Manifest.TotalParams(), tc.blocks, tc.params)
			}
			res, err := ort.CheckSplit(ort.CheckConfig{Model: dir, Inputs: 4, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			d := res.Outputs[0]
			t.Logf("%s: %d blocks, max abs diff %.3g (max |output| %.3g)", tc.file, s.Manifest.K(), d.MaxAbs, d.MaxRef)
			if d.MaxAbs > 1e-4 || d.MaxRef == 0 || d.NonFinite > 0 {
				t.Errorf("max abs diff %g, max |output| %g, %d non-finite", d.MaxAbs, d.MaxRef, d.NonFinite)
			}
		})
	}
}

// A model with two outputs is refused unless one is chosen; splitting
// towards one drops what feeds only the other.
func TestChooseOneOutput(t *testing.T) {
	m, err := model.LNNet(1)
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Output = append(m.Graph.Output, &onnxpb.ValueInfoProto{Name: proto.String("ln1")})
	p := ort.Prober{Threads: 1}
	if _, err := model.AnalyseONNX(m, model.GraphOptions{Prober: p}); !errors.Is(err, model.ErrUnsupported) || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("two outputs: %v, want ErrUnsupported naming --output", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "two.onnx")
	if err := model.WriteONNX(src, m); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		output string
		blocks int
	}{{"logits", 13}, {"ln1", 6}} {
		out := filepath.Join(dir, tc.output)
		s, err := model.SplitFile(src, out, model.GraphOptions{Prober: p, Output: tc.output}, model.SplitOptions{All: true}, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Manifest.K() != tc.blocks {
			t.Errorf("towards %s: %d blocks, want %d", tc.output, s.Manifest.K(), tc.blocks)
		}
		res, err := ort.CheckSplit(ort.CheckConfig{Model: out, Inputs: 2, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if d := res.Outputs[0]; d.Name != tc.output || d.MaxAbs > 1e-4 || d.MaxRef == 0 {
			t.Errorf("towards %s: %+v", tc.output, d)
		}
	}
}
