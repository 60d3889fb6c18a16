package model_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

func TestTinyNetCutPoints(t *testing.T) {
	_, g := tinynet(t)
	want := []string{
		"stem.conv", "stem.bn", "stem.relu", "stem.pool", // a chain: every tensor is a cut
		"res.add", "res.relu", // nothing inside the residual block
		"mix.cat", "mix.relu6", "mix.pool", // nothing inside the two branches
		"head.gap", "head.flat", "head.fc1", "head.fc1.add", "head.fc1.relu",
	}
	got := cutNames(g.CutPoints())
	if !slices.Equal(got, want) {
		t.Fatalf("cut points\n got %v\nwant %v", got, want)
	}
	var prev int64
	for _, c := range g.CutPoints() {
		if c.FLOPsBefore < prev {
			t.Errorf("%s: FLOPs before %d decrease from %d", c.Tensor.Name, c.FLOPsBefore, prev)
		}
		prev = c.FLOPsBefore
	}
	if g.TotalFLOPs() <= prev {
		t.Errorf("total FLOPs %d not above the last cut's %d", g.TotalFLOPs(), prev)
	}
	// Activation-fused candidates: the conv, BN, the sum, the concat and
	// the MatMul's Add are followed by element-wise ops that are cuts too.
	var fused []string
	for _, c := range g.CutPoints() {
		if c.Activation {
			fused = append(fused, c.Tensor.Name)
		}
	}
	if w := []string{"stem.conv", "stem.bn", "res.add", "mix.cat", "head.fc1.add"}; !slices.Equal(fused, w) {
		t.Errorf("activation cuts: got %v, want %v", fused, w)
	}
}

func TestAnalyseErrors(t *testing.T) {
	relu := func(b *model.Builder) { b.Node("Relu", "y", []string{"x"}) }
	for _, tc := range []struct {
		name      string
		m         *onnxpb.ModelProto
		opt       model.GraphOptions
		target    error
		fragments []string
	}{
		{"unsupported op", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Node("Relu", "a", []string{"x"})
			b.Node("NonMaxSuppression", "weird", []string{"a"})
			b.Node("Relu", "y", []string{"weird"})
		}), model.GraphOptions{}, model.ErrUnsupported, []string{`"weird"`, "NonMaxSuppression", "no shape inference"}},
		{"dangling input", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Node("Add", "y", []string{"x", "ghost"})
		}), model.GraphOptions{}, model.ErrCorrupt, []string{`"y"`, `"ghost"`}},
		{"cycle", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Node("Add", "a", []string{"x", "y"})
			b.Node("Relu", "y", []string{"a"})
		}), model.GraphOptions{}, model.ErrCorrupt, []string{"cycle"}},
		{"two producers", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Node("Relu", "y", []string{"x"})
			b.Node("Sigmoid", "y", []string{"x"})
		}), model.GraphOptions{}, model.ErrCorrupt, []string{`"y"`, "produced by both"}},
		{"two inputs", func() *onnxpb.ModelProto {
			m := oneNode([]int64{1, 4}, func(b *model.Builder) { b.Node("Add", "y", []string{"x", "z"}) })
			m.Graph.Input = append(m.Graph.Input, proto.Clone(m.Graph.Input[0]).(*onnxpb.ValueInfoProto))
			m.Graph.Input[1].Name = proto.String("z")
			return m
		}(), model.GraphOptions{}, model.ErrUnsupported, []string{"2 inputs", "single-input"}},
		{"integer input", func() *onnxpb.ModelProto {
			m := oneNode([]int64{1, 4}, relu)
			m.Graph.Input[0].Type.GetTensorType().ElemType = proto.Int32(int32(onnxpb.TensorProto_INT64))
			return m
		}(), model.GraphOptions{}, model.ErrUnsupported, []string{`"x"`, "INT64", "integer inputs", "FLOAT"}},
		{"two outputs", func() *onnxpb.ModelProto {
			m := oneNode([]int64{1, 4}, relu)
			m.Graph.Output = append(m.Graph.Output, m.Graph.Output[0])
			return m
		}(), model.GraphOptions{}, model.ErrUnsupported, []string{"2 outputs"}},
		{"symbolic spatial dim", func() *onnxpb.ModelProto {
			m := oneNode([]int64{1, 3, 8, 8}, relu)
			m.Graph.Input[0].Type.GetTensorType().Shape.Dim[2].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "height"}
			return m
		}(), model.GraphOptions{}, model.ErrUnsupported, []string{"dimension 2", "height", "static"}},
		{"input shape of wrong rank", oneNode([]int64{1, 3, 8, 8}, relu), model.GraphOptions{InputShape: []int64{1, 3, 8}}, model.ErrUnsupported, []string{"rank 4"}},
		{"input shape contradicts", oneNode([]int64{1, 3, 8, 8}, relu), model.GraphOptions{InputShape: []int64{1, 3, 9, 8}}, model.ErrUnsupported, []string{"dimension 2 is 8"}},
		{"custom domain", func() *onnxpb.ModelProto {
			m := oneNode([]int64{1, 4}, relu)
			m.Graph.Node[0].Domain = proto.String("com.microsoft")
			return m
		}(), model.GraphOptions{}, model.ErrUnsupported, []string{"com.microsoft"}},
		{"no opset", func() *onnxpb.ModelProto {
			m := oneNode([]int64{1, 4}, relu)
			m.OpsetImport = nil
			return m
		}(), model.GraphOptions{}, model.ErrCorrupt, []string{"operator set"}},
		{"conv channel mismatch", oneNode([]int64{1, 3, 8, 8}, func(b *model.Builder) {
			b.Init(model.FloatTensor("w", []int64{4, 2, 3, 3}, make([]float32, 72)))
			b.Node("Conv", "y", []string{"x", "w"})
		}), model.GraphOptions{}, model.ErrUnsupported, []string{`"y" (Conv)`, "channels 3"}},
		{"reshape to a run-time shape", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Node("ReduceMean", "m", []string{"x"}, model.AttrInt("keepdims", 0))
			b.Node("Cast", "s", []string{"m"}, model.AttrInt("to", 7))
			b.Node("Reshape", "y", []string{"x", "s"})
		}), model.GraphOptions{}, model.ErrUnsupported, []string{`"y" (Reshape)`, "run time"}},
		{"batch norm in training mode", oneNode([]int64{1, 2, 4, 4}, func(b *model.Builder) {
			for _, p := range []string{"s", "b", "m", "v"} {
				b.Init(model.FloatTensor(p, []int64{2}, []float32{1, 1}))
			}
			b.Node("BatchNormalization", "y", []string{"x", "s", "b", "m", "v"}, model.AttrInt("training_mode", 1))
		}), model.GraphOptions{}, model.ErrUnsupported, []string{"eval mode"}},
		{"initializer too short", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Init(model.FloatTensor("w", []int64{4, 4}, make([]float32, 15)))
			b.Node("MatMul", "y", []string{"x", "w"})
		}), model.GraphOptions{}, model.ErrCorrupt, []string{`"w"`, "60 bytes", "need 64"}},
		{"output independent of input", oneNode([]int64{1, 4}, func(b *model.Builder) {
			b.Init(model.FloatTensor("c", []int64{4}, make([]float32, 4)))
			b.Node("Relu", "y", []string{"c"})
		}), model.GraphOptions{}, model.ErrUnsupported, []string{"does not depend"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.AnalyseONNX(tc.m, tc.opt)
			wantErr(t, err, tc.target, tc.fragments...)
		})
	}
}

func TestSymbolicBatchIsOne(t *testing.T) {
	m := oneNode([]int64{1, 3, 8, 8}, func(b *model.Builder) { b.Node("Relu", "y", []string{"x"}) })
	m.Graph.Input[0].Type.GetTensorType().Shape.Dim[0].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Input().Shape; !slices.Equal(got, []int64{1, 3, 8, 8}) {
		t.Fatalf("input shape %v", got)
	}
	m.Graph.Input[0].Type.GetTensorType().Shape.Dim[2].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "h"}
	g, err = model.AnalyseONNX(m, model.GraphOptions{InputShape: []int64{1, 3, 16, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Output().Shape; !slices.Equal(got, []int64{1, 3, 16, 8}) {
		t.Fatalf("output shape with an explicit input shape: %v", got)
	}
}

func TestDeadNodesAreDropped(t *testing.T) {
	m := oneNode([]int64{1, 4}, func(b *model.Builder) {
		b.Node("Sigmoid", "unused", []string{"x"})
		b.Node("Relu", "y", []string{"x"})
	})
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Nodes() != 1 {
		t.Fatalf("%d live nodes, want 1", g.Nodes())
	}
}
