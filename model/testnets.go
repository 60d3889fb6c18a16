package model

import (
	"fmt"
	"math"

	"github.com/dynoml/dyno/model/onnxpb"
)

// TestNets are small models written the way exporters write real networks,
// with operators dyno's own shape inference does not know: the splitter
// measures them with ONNX Runtime (GraphOptions.Prober). They are not built
// by `make models`; `dynoctl model zoo --name unet` writes one.
func TestNets() []ZooModel {
	return []ZooModel{
		{
			Name:        "unet",
			Description: "a small U-Net, 3x32x32 to a 2x32x32 map: skips joined by Concat, upsampling by ConvTranspose and Resize, HardSigmoid output (opset 13)",
			Build:       UNet,
		},
		{
			Name:        "lnnet",
			Description: "a sequence model, 16x32 to 10 classes: LayerNorm as PyTorch exports it (ReduceMean, Sub, Pow, Sqrt, Div) and as the opset-17 operator, Slice/Gather/Shape arithmetic, HardSigmoid gating, weights in Constant nodes (opset 17)",
			Build:       LNNet,
		},
		{
			Name:        "dbnet",
			Description: "a text-detector-like net, 3x64x64 to a 1x64x64 probability map: a backbone of three stages, a feature-pyramid neck (Resize-upsampled top-down Adds and a Concat of every level), a ConvTranspose head, Sigmoid (opset 11)",
			Build:       DBNet,
		},
		{
			Name:        "seqrec",
			Description: "a text-recogniser-like net, 1x32x64 image to 16 time steps x 12 classes: convolutions, a Transpose/Reshape to a sequence, a per-step classifier (opset 11)",
			Build:       SeqRec,
		},
	}
}

// Constant adds a Constant node holding t and returns its output's name,
// which is t's name.
func (b *Builder) Constant(t *onnxpb.TensorProto) string {
	name := t.GetName()
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name:   ptr(name),
		OpType: ptr("Constant"),
		Output: []string{name},
		Attribute: []*onnxpb.AttributeProto{{
			Name: ptr("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t,
		}},
	})
	return name
}

// Op adds a node with any number of named outputs.
func (b *Builder) Op(op, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name: ptr(name), OpType: ptr(op), Input: inputs, Output: outputs, Attribute: attrs,
	})
}

// ModelOpset wraps the graph in a model of the given default opset.
func (b *Builder) ModelOpset(doc string, opset int64) *onnxpb.ModelProto {
	m := b.Model(doc)
	m.OpsetImport[0].Version = ptr(opset)
	m.IrVersion = ptr(irFor(opset))
	return m
}

// irFor is the IR version released with an opset.
func irFor(opset int64) int64 {
	switch {
	case opset <= 10:
		return 5
	case opset == 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	}
	return 9
}

// UNet is a small U-Net: two levels down (MaxPool, strided Conv), up by
// ConvTranspose and by Resize, each level's skip joined by Concat, a 1x1
// head and HardSigmoid. Everything between the first level's output and
// the head lies under a skip, so no single tensor cuts it.
func UNet(seed uint64) (*onnxpb.ModelProto, error) {
	w := newWeights(seed)
	b := NewBuilder("unet")
	b.Input("image", 1, 3, 32, 32)
	conv := func(name, x string, inC, outC, k, stride int64) string {
		wt := b.Init(FloatTensor(name+".weight", []int64{outC, inC, k, k}, w.normal(outC*inC*k*k, math.Sqrt(2/float64(inC*k*k)))))
		bias := b.Init(FloatTensor(name+".bias", []int64{outC}, w.normal(outC, 0.01)))
		return b.Node("Conv", name, []string{x, wt, bias}, ConvAttrs(k, stride, k/2)...)
	}
	relu := func(x string) string { return b.Node("Relu", x+".relu", []string{x}) }
	e1 := relu(conv("enc1", "image", 3, 8, 3, 1))                         // 8x32x32
	d1 := b.Node("MaxPool", "down1", []string{e1}, ConvAttrs(2, 2, 0)...) // 8x16x16
	e2 := relu(conv("enc2", d1, 8, 16, 3, 1))                             // 16x16x16
	d2 := relu(conv("down2", e2, 16, 16, 3, 2))                           // 16x8x8
	mid := relu(conv("mid", d2, 16, 16, 3, 1))                            // 16x8x8
	upW := b.Init(FloatTensor("up2.weight", []int64{16, 16, 2, 2}, w.normal(16*16*4, math.Sqrt(1.0/16))))
	upB := b.Init(FloatTensor("up2.bias", []int64{16}, w.normal(16, 0.01)))
	u2 := b.Node("ConvTranspose", "up2", []string{mid, upW, upB}, AttrInts("kernel_shape", 2, 2), AttrInts("strides", 2, 2)) // 16x16x16
	c2 := b.Node("Concat", "skip2", []string{u2, e2}, AttrInt("axis", 1))                                                    // 32x16x16
	f2 := relu(conv("dec2", c2, 32, 8, 3, 1))                                                                                // 8x16x16
	scales := b.Init(FloatTensor("up1.scales", []int64{4}, []float32{1, 1, 2, 2}))
	u1 := b.Node("Resize", "up1", []string{f2, "", scales}, &onnxpb.AttributeProto{Name: ptr("mode"), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte("nearest")})
	c1 := b.Node("Concat", "skip1", []string{u1, e1}, AttrInt("axis", 1)) // 16x32x32
	f1 := relu(conv("dec1", c1, 16, 8, 3, 1))
	h := conv("head", f1, 8, 2, 1, 1)
	b.Node("HardSigmoid", "mask", []string{h}, AttrFloat("alpha", 0.2), AttrFloat("beta", 0.5))
	b.Output("mask", 1, 2, 32, 32)
	return b.ModelOpset(fmt.Sprintf("small U-Net with seeded weights (seed %d)", seed), 13), nil
}

// LNNet is a sequence model as PyTorch exports it at opset 17: a
// projection whose weights are Constant nodes, LayerNorm decomposed into
// ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul and Add, a
// HardSigmoid gate (x * hardsigmoid(x)), the LayerNormalization operator,
// the first half of the sequence taken by Slice with an end computed from
// Shape, Gather and Div, flattened by a Reshape whose target is computed
// from Shape, and a classifier.
func LNNet(seed uint64) (*onnxpb.ModelProto, error) {
	w := newWeights(seed)
	const T, D, C = 16, 32, 10
	b := NewBuilder("lnnet")
	b.Input("tokens", 1, T, D)
	w1 := b.Constant(FloatTensor("proj.weight", []int64{D, D}, w.normal(D*D, math.Sqrt(1.0/D))))
	b1 := b.Constant(FloatTensor("proj.bias", []int64{D}, w.normal(D, 0.01)))
	x := b.Node("MatMul", "proj.mm", []string{"tokens", w1})
	x = b.Node("Add", "proj", []string{x, b1})
	// LayerNorm, decomposed.
	axes := []*onnxpb.AttributeProto{AttrInts("axes", -1), AttrInt("keepdims", 1)}
	mean := b.Node("ReduceMean", "ln1.mean", []string{x}, axes...)
	d := b.Node("Sub", "ln1.sub", []string{x, mean})
	two := b.Constant(FloatTensor("ln1.two", nil, []float32{2}))
	sq := b.Node("Pow", "ln1.pow", []string{d, two})
	v := b.Node("ReduceMean", "ln1.var", []string{sq}, axes...)
	eps := b.Init(FloatTensor("ln1.eps", nil, []float32{1e-5}))
	v = b.Node("Add", "ln1.addeps", []string{v, eps})
	sd := b.Node("Sqrt", "ln1.sqrt", []string{v})
	n := b.Node("Div", "ln1.div", []string{d, sd})
	g1 := b.Init(FloatTensor("ln1.weight", []int64{D}, w.uniform(D, 0.8, 1.2)))
	be1 := b.Init(FloatTensor("ln1.bias", []int64{D}, w.uniform(D, -0.1, 0.1)))
	n = b.Node("Mul", "ln1.scale", []string{n, g1})
	ln1 := b.Node("Add", "ln1", []string{n, be1})
	// Gate: x * hardsigmoid(x), two paths joined by Mul.
	hs := b.Node("HardSigmoid", "gate.hs", []string{ln1}, AttrFloat("alpha", 1.0/6), AttrFloat("beta", 0.5))
	gated := b.Node("Mul", "gate", []string{ln1, hs})
	w2 := b.Constant(FloatTensor("mix.weight", []int64{D, D}, w.normal(D*D, math.Sqrt(2.0/D))))
	x = b.Node("MatMul", "mix", []string{gated, w2})
	g2 := b.Init(FloatTensor("ln2.weight", []int64{D}, w.uniform(D, 0.8, 1.2)))
	be2 := b.Init(FloatTensor("ln2.bias", []int64{D}, w.uniform(D, -0.1, 0.1)))
	ln2 := b.Node("LayerNormalization", "ln2", []string{x, g2, be2}, AttrInt("axis", -1), AttrFloat("epsilon", 1e-5))
	// The first half of the sequence: end = Shape(ln2)[1] / 2.
	shape := b.Node("Shape", "half.shape", []string{ln2})
	i1 := b.Init(Int64Tensor("half.i1", nil, []int64{1}))
	steps := b.Node("Gather", "half.steps", []string{shape, i1}, AttrInt("axis", 0))
	two64 := b.Init(Int64Tensor("half.two", nil, []int64{2}))
	half := b.Node("Div", "half.n", []string{steps, two64})
	zero := b.Init(Int64Tensor("half.zero", []int64{1}, []int64{0}))
	ax := b.Init(Int64Tensor("half.axes", []int64{1}, []int64{1}))
	end := b.Node("Unsqueeze", "half.end", []string{half, zero})
	sl := b.Node("Slice", "half", []string{ln2, zero, end, ax})
	// Flatten with a computed target: [Shape(sl)[0], -1].
	shp := b.Node("Shape", "flat.shape", []string{sl})
	i0 := b.Init(Int64Tensor("flat.i0", []int64{1}, []int64{0}))
	batch := b.Node("Gather", "flat.batch", []string{shp, i0}, AttrInt("axis", 0))
	minus := b.Init(Int64Tensor("flat.rest", []int64{1}, []int64{-1}))
	target := b.Node("Concat", "flat.target", []string{batch, minus}, AttrInt("axis", 0))
	flat := b.Node("Reshape", "flat", []string{sl, target})
	wc := b.Constant(FloatTensor("cls.weight", []int64{T / 2 * D, C}, w.normal(T/2*D*C, math.Sqrt(1.0/(T/2*D)))))
	bc := b.Init(FloatTensor("cls.bias", []int64{C}, w.normal(C, 0.01)))
	x = b.Node("MatMul", "cls.mm", []string{flat, wc})
	b.Node("Add", "logits", []string{x, bc})
	b.Output("logits", 1, C)
	return b.ModelOpset(fmt.Sprintf("LayerNorm sequence model with seeded weights (seed %d)", seed), 17), nil
}

// SeqRec is shaped like a text recogniser at opset 11 (as Paddle2ONNX
// writes them): convolutions over a 32x64 line image, pooled to height 1,
// squeezed and transposed to 16 time steps of features, and a per-step
// classifier, giving [1, 16, 12] logits.
func SeqRec(seed uint64) (*onnxpb.ModelProto, error) {
	w := newWeights(seed)
	b := NewBuilder("seqrec")
	b.Input("x", 1, 1, 32, 64)
	conv := func(name, x string, inC, outC int64) string {
		wt := b.Init(FloatTensor(name+".weight", []int64{outC, inC, 3, 3}, w.normal(outC*inC*9, math.Sqrt(2/float64(inC*9)))))
		bias := b.Init(FloatTensor(name+".bias", []int64{outC}, w.normal(outC, 0.01)))
		y := b.Node("Conv", name, []string{x, wt, bias}, ConvAttrs(3, 1, 1)...)
		return b.Node("Relu", name+".relu", []string{y})
	}
	x := conv("c1", "x", 1, 8)
	x = b.Node("MaxPool", "p1", []string{x}, ConvAttrs(2, 2, 0)...) // 8x16x32
	x = conv("c2", x, 8, 16)
	x = b.Node("MaxPool", "p2", []string{x}, ConvAttrs(2, 2, 0)...) // 16x8x16
	x = conv("c3", x, 16, 24)
	x = b.Node("MaxPool", "p3", []string{x}, AttrInts("kernel_shape", 8, 1), AttrInts("strides", 8, 1)) // 24x1x16
	x = b.Node("Squeeze", "seq.squeeze", []string{x}, AttrInts("axes", 2))                              // 1x24x16
	x = b.Node("Transpose", "seq", []string{x}, AttrInts("perm", 0, 2, 1))                              // 1x16x24
	wc := b.Init(FloatTensor("cls.weight", []int64{24, 12}, w.normal(24*12, math.Sqrt(1.0/24))))
	bc := b.Init(FloatTensor("cls.bias", []int64{12}, w.normal(12, 0.01)))
	x = b.Node("MatMul", "cls.mm", []string{x, wc})
	x = b.Node("Add", "cls", []string{x, bc})
	b.Node("Softmax", "probs", []string{x}, AttrInt("axis", 2))
	b.Output("probs", 1, 16, 12)
	return b.ModelOpset(fmt.Sprintf("sequence recogniser with seeded weights (seed %d)", seed), 11), nil
}

// DBNet is shaped like a differentiable-binarisation text detector at
// opset 11: three strided stages, a feature-pyramid neck in which every
// level is added to the upsampled level above and all levels, upsampled to
// the finest, are concatenated, and a head that upsamples by ConvTranspose
// to a one-channel probability map. The neck joins every stage, so nothing
// from the first stage's output to the Concat is a single-tensor cut.
func DBNet(seed uint64) (*onnxpb.ModelProto, error) {
	w := newWeights(seed)
	b := NewBuilder("dbnet")
	b.Input("image", 1, 3, 64, 64)
	conv := func(name, x string, inC, outC, k, stride int64, relu bool) string {
		wt := b.Init(FloatTensor(name+".weight", []int64{outC, inC, k, k}, w.normal(outC*inC*k*k, math.Sqrt(2/float64(inC*k*k)))))
		bias := b.Init(FloatTensor(name+".bias", []int64{outC}, w.normal(outC, 0.01)))
		y := b.Node("Conv", name, []string{x, wt, bias}, ConvAttrs(k, stride, k/2)...)
		if relu {
			y = b.Node("Relu", name+".relu", []string{y})
		}
		return y
	}
	nearest := &onnxpb.AttributeProto{Name: ptr("mode"), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte("nearest")}
	up := func(name, x string, f float32) string {
		sc := b.Init(FloatTensor(name+".scales", []int64{4}, []float32{1, 1, f, f}))
		roi := b.Init(FloatTensor(name+".roi", []int64{0}, nil))
		return b.Node("Resize", name, []string{x, roi, sc}, nearest)
	}
	x := conv("stem", "image", 3, 8, 3, 2, true) // 8x32x32
	c2 := conv("stage2", x, 8, 16, 3, 2, true)   // 16x16x16
	c3 := conv("stage3", c2, 16, 24, 3, 2, true) // 24x8x8
	c4 := conv("stage4", c3, 24, 32, 3, 2, true) // 32x4x4
	p4 := conv("neck.in4", c4, 32, 16, 1, 1, false)
	p3 := b.Node("Add", "neck.p3", []string{conv("neck.in3", c3, 24, 16, 1, 1, false), up("neck.up4", p4, 2)})
	p2 := b.Node("Add", "neck.p2", []string{conv("neck.in2", c2, 16, 16, 1, 1, false), up("neck.up3", p3, 2)})
	fuse := b.Node("Concat", "neck.fuse", []string{up("neck.out4", conv("neck.o4", p4, 16, 4, 3, 1, false), 4),
		up("neck.out3", conv("neck.o3", p3, 16, 4, 3, 1, false), 2), conv("neck.o2", p2, 16, 4, 3, 1, false)}, AttrInt("axis", 1)) // 12x16x16
	h := conv("head.conv", fuse, 12, 8, 3, 1, true)
	tw := b.Init(FloatTensor("head.up.weight", []int64{8, 4, 2, 2}, w.normal(8*4*4, math.Sqrt(1.0/8))))
	h = b.Node("ConvTranspose", "head.up", []string{h, tw}, AttrInts("kernel_shape", 2, 2), AttrInts("strides", 2, 2)) // 4x32x32
	h = b.Node("Relu", "head.up.relu", []string{h})
	tw2 := b.Init(FloatTensor("head.out.weight", []int64{4, 1, 2, 2}, w.normal(4*4, math.Sqrt(1.0/4))))
	tb2 := b.Init(FloatTensor("head.out.bias", []int64{1}, []float32{0}))
	h = b.Node("ConvTranspose", "head.out", []string{h, tw2, tb2}, AttrInts("kernel_shape", 2, 2), AttrInts("strides", 2, 2)) // 1x64x64
	b.Node("Sigmoid", "prob", []string{h})
	b.Output("prob", 1, 1, 64, 64)
	return b.ModelOpset(fmt.Sprintf("text detector with seeded weights (seed %d)", seed), 11), nil
}
