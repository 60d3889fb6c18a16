package model_test

import (
	"slices"
	"testing"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

func zeros(dims ...int64) *onnxpb.TensorProto {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return model.FloatTensor("", dims, make([]float32, n))
}

func named(t *onnxpb.TensorProto, name string) *onnxpb.TensorProto {
	t.Name = &name
	return t
}

func TestShapeInference(t *testing.T) {
	conv := func(w []int64, bias bool, a ...*onnxpb.AttributeProto) func(b *model.Builder) {
		return func(b *model.Builder) {
			in := []string{"x", b.Init(named(zeros(w...), "w"))}
			if bias {
				in = append(in, b.Init(named(zeros(w[0]), "b")))
			}
			b.Node("Conv", "y", in, a...)
		}
	}
	node := func(op string, inits []*onnxpb.TensorProto, a ...*onnxpb.AttributeProto) func(b *model.Builder) {
		return func(b *model.Builder) {
			in := []string{"x"}
			for _, t := range inits {
				in = append(in, b.Init(t))
			}
			b.Node(op, "y", in, a...)
		}
	}
	for _, tc := range []struct {
		name  string
		in    []int64
		add   func(b *model.Builder)
		out   []int64
		flops int64
	}{
		{"conv 3x3 pad 1 with bias", []int64{1, 3, 32, 32}, conv([]int64{8, 3, 3, 3}, true, model.ConvAttrs(3, 1, 1)...),
			[]int64{1, 8, 32, 32}, 2*8*32*32*27 + 8*32*32},
		{"conv stride 2 no pad", []int64{1, 3, 32, 32}, conv([]int64{8, 3, 3, 3}, false, model.AttrInts("strides", 2, 2)),
			[]int64{1, 8, 15, 15}, 2 * 8 * 15 * 15 * 27},
		{"depthwise conv", []int64{1, 8, 16, 16}, conv([]int64{8, 1, 3, 3}, false, append(model.ConvAttrs(3, 1, 1), model.AttrInt("group", 8))...),
			[]int64{1, 8, 16, 16}, 2 * 8 * 16 * 16 * 9},
		{"dilated conv", []int64{1, 1, 16, 16}, conv([]int64{1, 1, 3, 3}, false, model.AttrInts("dilations", 2, 2)),
			[]int64{1, 1, 12, 12}, 2 * 144 * 9},
		{"conv SAME_UPPER stride 2", []int64{1, 1, 15, 15}, conv([]int64{2, 1, 3, 3}, false, &onnxpb.AttributeProto{Name: ptr("auto_pad"), S: []byte("SAME_UPPER")}, model.AttrInts("strides", 2, 2)),
			[]int64{1, 2, 8, 8}, 2 * 2 * 64 * 9},
		{"maxpool floor", []int64{1, 1, 5, 5}, node("MaxPool", nil, model.AttrInts("kernel_shape", 2, 2), model.AttrInts("strides", 2, 2)),
			[]int64{1, 1, 2, 2}, 4 * 3},
		{"maxpool ceil", []int64{1, 1, 5, 5}, node("MaxPool", nil, model.AttrInts("kernel_shape", 2, 2), model.AttrInts("strides", 2, 2), model.AttrInt("ceil_mode", 1)),
			[]int64{1, 1, 3, 3}, 9 * 3},
		{"maxpool 3x3 s2 p1", []int64{1, 64, 112, 112}, node("MaxPool", nil, model.ConvAttrs(3, 2, 1)...),
			[]int64{1, 64, 56, 56}, 64 * 56 * 56 * 8},
		{"average pool", []int64{1, 2, 4, 4}, node("AveragePool", nil, model.ConvAttrs(2, 2, 0)...),
			[]int64{1, 2, 2, 2}, 8 * 4},
		{"global average pool", []int64{1, 8, 7, 7}, node("GlobalAveragePool", nil), []int64{1, 8, 1, 1}, 8 * 49},
		{"relu is free", []int64{1, 8}, node("Relu", nil), []int64{1, 8}, 0},
		{"batch norm", []int64{1, 2, 3, 3}, node("BatchNormalization", []*onnxpb.TensorProto{named(zeros(2), "s"), named(zeros(2), "b"), named(zeros(2), "m"), named(zeros(2), "v")}),
			[]int64{1, 2, 3, 3}, 2 * 18},
		{"add broadcast", []int64{1, 8, 4, 4}, node("Add", []*onnxpb.TensorProto{named(zeros(8, 1, 1), "c")}), []int64{1, 8, 4, 4}, 128},
		{"flatten axis 2", []int64{1, 2, 3, 4}, node("Flatten", nil, model.AttrInt("axis", 2)), []int64{2, 12}, 0},
		{"gemm transB bias", []int64{1, 64}, node("Gemm", []*onnxpb.TensorProto{named(zeros(10, 64), "w"), named(zeros(10), "b")}, model.AttrInt("transB", 1)),
			[]int64{1, 10}, 2*640 + 10},
		{"gemm transA", []int64{64, 1}, node("Gemm", []*onnxpb.TensorProto{named(zeros(64, 10), "w")}, model.AttrInt("transA", 1)),
			[]int64{1, 10}, 2 * 640},
		{"matmul broadcast", []int64{2, 3, 4}, node("MatMul", []*onnxpb.TensorProto{named(zeros(4, 5), "w")}), []int64{2, 3, 5}, 2 * 2 * 3 * 5 * 4},
		{"matmul vector", []int64{4}, node("MatMul", []*onnxpb.TensorProto{named(zeros(4, 5), "w")}), []int64{5}, 2 * 5 * 4},
		{"reshape 0 and -1", []int64{1, 16, 4, 4}, node("Reshape", []*onnxpb.TensorProto{model.Int64Tensor("s", []int64{2}, []int64{0, -1})}), []int64{1, 256}, 0},
		{"transpose", []int64{1, 2, 3}, node("Transpose", nil, model.AttrInts("perm", 0, 2, 1)), []int64{1, 3, 2}, 0},
		{"reduce mean", []int64{1, 8, 4, 4}, node("ReduceMean", nil, model.AttrInts("axes", 2, 3), model.AttrInt("keepdims", 0)), []int64{1, 8}, 128},
		{"concat with itself", []int64{1, 3, 4, 4}, func(b *model.Builder) {
			b.Node("Concat", "y", []string{"x", "x"}, model.AttrInt("axis", 1))
		}, []int64{1, 6, 4, 4}, 0},
		{"view(x.size(0), -1) as PyTorch exports it", []int64{1, 16, 4, 4}, func(b *model.Builder) {
			b.Node("Shape", "shape", []string{"x"})
			b.Init(model.Int64Tensor("zero", nil, []int64{0}))
			b.Node("Gather", "n", []string{"shape", "zero"}, model.AttrInt("axis", 0))
			b.Init(model.Int64Tensor("axes", []int64{1}, []int64{0}))
			b.Node("Unsqueeze", "n1", []string{"n", "axes"})
			b.Init(model.Int64Tensor("minus1", []int64{1}, []int64{-1}))
			b.Node("Concat", "target", []string{"n1", "minus1"}, model.AttrInt("axis", 0))
			b.Node("Reshape", "y", []string{"x", "target"})
		}, []int64{1, 256}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := model.AnalyseONNX(oneNode(tc.in, tc.add), model.GraphOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Output().Shape; !slices.Equal(got, tc.out) {
				t.Errorf("shape %v, want %v", got, tc.out)
			}
			if got := g.TotalFLOPs(); got != tc.flops {
				t.Errorf("FLOPs %d, want %d", got, tc.flops)
			}
		})
	}
}

func TestConstantNode(t *testing.T) {
	m := oneNode([]int64{2, 6}, func(b *model.Builder) {
		b.Node("Constant", "target", nil, &onnxpb.AttributeProto{Name: ptr("value"), T: model.Int64Tensor("", []int64{3}, []int64{3, 2, 2})})
		b.Node("Reshape", "y", []string{"x", "target"})
	})
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Output().Shape; !slices.Equal(got, []int64{3, 2, 2}) {
		t.Fatalf("shape %v", got)
	}
}

func ptr[T any](v T) *T { return &v }
