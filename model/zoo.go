package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/dynoml/dyno/model/onnxpb"
)

// ZooModel is a standard architecture the zoo can generate with seeded
// weights.
type ZooModel struct {
	Name        string
	Description string
	// Build generates the ONNX model.
	Build func(seed uint64) (*onnxpb.ModelProto, error)
	// Cuts are the tensors the zoo splits at (the architecture's units);
	// nil means the default split (every cut point after activations).
	Cuts []string
	// Arch is the architecture table the model is generated from, if any.
	Arch func() *Arch
}

// Zoo lists the models `dynoctl model zoo` builds.
func Zoo() []ZooModel {
	return []ZooModel{
		archZoo(ResNet50, "ResNet-50 v1.5, 224x224, 1000 classes: 4.1 G multiply-adds, 25.5 M parameters"),
		archZoo(MobileNetV2, "MobileNetV2 1.0, 224x224, 1000 classes: 300 M multiply-adds, 3.5 M parameters"),
		{
			Name:        "tinynet",
			Description: "a small CNN with batch normalisation, a residual and a two-branch block, 32x32, 10 classes: for fast tests",
			Build:       TinyNet,
		},
	}
}

// ZooByName finds a zoo model.
func ZooByName(name string) (ZooModel, error) {
	var names []string
	for _, z := range append(Zoo(), TestNets()...) {
		if z.Name == name {
			return z, nil
		}
		names = append(names, z.Name)
	}
	return ZooModel{}, fmt.Errorf("model: no zoo model %q (have %v)", name, names)
}

func archZoo(mk func() *Arch, desc string) ZooModel {
	a := mk()
	var cuts []string
	for _, u := range a.Units[:len(a.Units)-1] {
		cuts = append(cuts, u.Ops[len(u.Ops)-1].Name)
	}
	return ZooModel{
		Name:        a.Name,
		Description: desc,
		Build:       func(seed uint64) (*onnxpb.ModelProto, error) { return ArchONNX(mk(), seed) },
		Cuts:        cuts,
		Arch:        mk,
	}
}

// weights draws seeded initial weights.
type weights struct{ rng *rand.Rand }

func newWeights(seed uint64) *weights {
	return &weights{rng: rand.New(rand.NewPCG(seed, 0x64796e6f))} // "dyno"
}

// normal returns n values from N(0, std^2).
func (w *weights) normal(n int64, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(w.rng.NormFloat64() * std)
	}
	return out
}

// uniform returns n values from U(lo, hi).
func (w *weights) uniform(n int64, lo, hi float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(lo + (hi-lo)*w.rng.Float64())
	}
	return out
}

// Residual branches end in a convolution scaled down by this factor, so the
// sums of a deep residual network without batch normalisation stay in range
// (the idea of Fixup and zero-init residuals, not zero so the branches
// still matter).
const residualGain = 0.3

// ArchONNX generates the ONNX model of an architecture table with seeded
// weights: He-normal convolutions (variance 2/fan-in before a ReLU, 1/fan-in
// otherwise, the last convolution of a residual branch scaled by 0.3),
// small random biases, batch normalisation folded into the biases as in the
// table. A unit's output tensor is named after its last op, so the model can
// be split at its units.
func ArchONNX(a *Arch, seed uint64) (*onnxpb.ModelProto, error) {
	stats, err := a.Infer()
	if err != nil {
		return nil, err
	}
	w := newWeights(seed)
	b := NewBuilder(a.Name)
	b.Input("input", 1, a.Input[0], a.Input[1], a.Input[2])
	// Residual branch ends: the first input of every Add.
	branchEnd := map[string]bool{}
	prev := "input"
	for _, st := range stats {
		if st.Op.Kind == OpAdd {
			branchEnd[resolve(st.Op.Inputs, 0, prev)] = true
		}
		prev = st.Op.Name
	}
	relu6 := false
	prev = "input"
	var out Shape
	for _, st := range stats {
		op := st.Op
		x := resolve(op.Inputs, 0, prev)
		pre := op.Name
		if op.Act != ActNone {
			pre = op.Name + ".pre"
		}
		switch op.Kind {
		case OpConv:
			g := int64(max(op.Group, 1))
			inC, k := st.In[0].C, int64(op.Kernel)
			fanIn := float64(inC / g * k * k)
			gain := 1.0
			if op.Act != ActNone {
				gain = 2
			}
			std := math.Sqrt(gain / fanIn)
			if branchEnd[op.Name] {
				std *= residualGain
			}
			wt := b.Init(FloatTensor(op.Name+".weight", []int64{int64(op.OutC), inC / g, k, k}, w.normal(int64(op.OutC)*inC/g*k*k, std)))
			bias := b.Init(FloatTensor(op.Name+".bias", []int64{int64(op.OutC)}, w.normal(int64(op.OutC), 0.01)))
			b.Node("Conv", pre, []string{x, wt, bias}, append(ConvAttrs(k, int64(op.Stride), int64(op.Pad)), AttrInt("group", g))...)
		case OpMaxPool:
			b.Node("MaxPool", pre, []string{x}, ConvAttrs(int64(op.Kernel), int64(op.Stride), int64(op.Pad))...)
		case OpAdd:
			b.Node("Add", pre, []string{x, resolve(op.Inputs, 1, prev)})
		case OpGAP:
			pooled := b.Node("GlobalAveragePool", op.Name+".pool", []string{x})
			b.Node("Flatten", pre, []string{pooled}, AttrInt("axis", 1))
		case OpFC:
			inF := st.In[0].Elements()
			wt := b.Init(FloatTensor(op.Name+".weight", []int64{int64(op.OutC), inF}, w.normal(int64(op.OutC)*inF, math.Sqrt(1/float64(inF)))))
			bias := b.Init(FloatTensor(op.Name+".bias", []int64{int64(op.OutC)}, w.normal(int64(op.OutC), 0.01)))
			b.Node("Gemm", pre, []string{x, wt, bias}, AttrInt("transB", 1))
		default:
			return nil, fmt.Errorf("model: arch %s: op %s: no ONNX form for kind %d", a.Name, op.Name, op.Kind)
		}
		switch op.Act {
		case ActReLU:
			b.Node("Relu", op.Name, []string{pre})
		case ActReLU6:
			if !relu6 {
				b.Init(FloatTensor("relu6.min", nil, []float32{0}))
				b.Init(FloatTensor("relu6.max", nil, []float32{6}))
				relu6 = true
			}
			b.Node("Clip", op.Name, []string{pre, "relu6.min", "relu6.max"})
		}
		prev, out = op.Name, st.Out
	}
	if out.H == 1 && out.W == 1 {
		b.Output(prev, 1, out.C)
	} else {
		b.Output(prev, 1, out.C, out.H, out.W)
	}
	return b.Model(fmt.Sprintf("%s with seeded weights (seed %d); %s", a.Name, seed, a.Source)), nil
}

// resolve names input i of an op: "" or absent means the previous op.
func resolve(inputs []string, i int, prev string) string {
	if i >= len(inputs) || inputs[i] == "" {
		return prev
	}
	return inputs[i]
}

// TinyNet is the zoo's small model: 3x32x32 in, 10 classes out, about
// 9 MFLOPs. It holds every structure the splitter must respect (a residual
// block, a two-branch block joined by Concat, batch normalisation, ReLU6 as
// Clip, pooling, a Reshape with a constant shape, MatMul plus Add, Gemm), so
// tests of the whole pipeline run in milliseconds.
func TinyNet(seed uint64) (*onnxpb.ModelProto, error) {
	w := newWeights(seed)
	b := NewBuilder("tinynet")
	b.Input("input", 1, 3, 32, 32)
	conv := func(name, x string, inC, outC, k, stride int64, gain float64) string {
		wt := b.Init(FloatTensor(name+".weight", []int64{outC, inC, k, k}, w.normal(outC*inC*k*k, math.Sqrt(gain/float64(inC*k*k)))))
		bias := b.Init(FloatTensor(name+".bias", []int64{outC}, w.normal(outC, 0.01)))
		return b.Node("Conv", name, []string{x, wt, bias}, ConvAttrs(k, stride, k/2)...)
	}
	x := conv("stem.conv", "input", 3, 16, 3, 1, 2)
	bn := []string{x}
	for _, p := range []struct {
		name   string
		lo, hi float64
	}{{"scale", 0.8, 1.2}, {"shift", -0.1, 0.1}, {"mean", -0.1, 0.1}, {"var", 0.8, 1.2}} {
		bn = append(bn, b.Init(FloatTensor("stem.bn."+p.name, []int64{16}, w.uniform(16, p.lo, p.hi))))
	}
	x = b.Node("BatchNormalization", "stem.bn", bn, AttrFloat("epsilon", 1e-5))
	x = b.Node("Relu", "stem.relu", []string{x})
	stem := b.Node("MaxPool", "stem.pool", []string{x}, ConvAttrs(2, 2, 0)...)

	x = conv("res.conv1", stem, 16, 16, 3, 1, 2)
	x = b.Node("Relu", "res.relu1", []string{x})
	x = conv("res.conv2", x, 16, 16, 3, 1, residualGain*residualGain)
	x = b.Node("Add", "res.add", []string{x, stem})
	res := b.Node("Relu", "res.relu", []string{x})

	left := conv("mix.a", res, 16, 8, 1, 1, 1)
	right := conv("mix.b", res, 16, 8, 3, 1, 2)
	right = b.Node("Relu", "mix.b.relu", []string{right})
	x = b.Node("Concat", "mix.cat", []string{left, right}, AttrInt("axis", 1))
	b.Init(FloatTensor("relu6.min", nil, []float32{0}))
	b.Init(FloatTensor("relu6.max", nil, []float32{6}))
	x = b.Node("Clip", "mix.relu6", []string{x, "relu6.min", "relu6.max"})
	x = b.Node("AveragePool", "mix.pool", []string{x}, ConvAttrs(2, 2, 0)...)

	x = b.Node("GlobalAveragePool", "head.gap", []string{x})
	shape := b.Init(Int64Tensor("head.shape", []int64{2}, []int64{1, 16}))
	x = b.Node("Reshape", "head.flat", []string{x, shape})
	fc1 := b.Init(FloatTensor("head.fc1.weight", []int64{16, 32}, w.normal(16*32, math.Sqrt(2.0/16))))
	x = b.Node("MatMul", "head.fc1", []string{x, fc1})
	fc1b := b.Init(FloatTensor("head.fc1.bias", []int64{32}, w.normal(32, 0.01)))
	x = b.Node("Add", "head.fc1.add", []string{x, fc1b})
	x = b.Node("Relu", "head.fc1.relu", []string{x})
	fc2 := b.Init(FloatTensor("head.fc2.weight", []int64{10, 32}, w.normal(10*32, math.Sqrt(1.0/32))))
	fc2b := b.Init(FloatTensor("head.fc2.bias", []int64{10}, w.normal(10, 0.01)))
	b.Node("Gemm", "logits", []string{x, fc2, fc2b}, AttrInt("transB", 1))
	b.Output("logits", 1, 10)
	return b.Model(fmt.Sprintf("tinynet with seeded weights (seed %d)", seed)), nil
}

// ZooSplit builds zoo model z and splits it at its units: the model and
// its split.
func ZooSplit(z ZooModel, seed uint64) (*onnxpb.ModelProto, *Split, error) {
	return ZooSplitWith(z, seed, GraphOptions{})
}

// ZooSplitWith is ZooSplit with analysis options (a Prober for the test
// nets, whose operators dyno's own shape inference does not all know).
func ZooSplitWith(z ZooModel, seed uint64, gopt GraphOptions) (*onnxpb.ModelProto, *Split, error) {
	m, err := z.Build(seed)
	if err != nil {
		return nil, nil, err
	}
	g, err := AnalyseONNX(m, gopt)
	if err != nil {
		return nil, nil, fmt.Errorf("zoo %s: %w", z.Name, err)
	}
	opt := SplitOptions{Name: z.Name, At: slices.Clone(z.Cuts), Original: "model.onnx"}
	if z.Arch != nil {
		opt.Source = z.Arch().Source + fmt.Sprintf("; seeded weights (seed %d)", seed)
	} else {
		opt.Source = z.Description + fmt.Sprintf("; seeded weights (seed %d)", seed)
	}
	s, err := g.Split(opt)
	if err != nil {
		return nil, nil, fmt.Errorf("zoo %s: %w", z.Name, err)
	}
	return m, s, nil
}

// WriteZoo builds zoo model z into dir: dir/model.onnx, the blocks under
// dir/blocks and dir/model.json.
func WriteZoo(z ZooModel, seed uint64, dir string) (*Split, error) {
	return WriteZooWith(z, seed, dir, GraphOptions{})
}

// WriteZooWith is WriteZoo with analysis options.
func WriteZooWith(z ZooModel, seed uint64, dir string, gopt GraphOptions) (*Split, error) {
	m, s, err := ZooSplitWith(z, seed, gopt)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if err := WriteONNX(filepath.Join(dir, "model.onnx"), m); err != nil {
		return nil, err
	}
	// The zoo regenerates its own folders: results of an earlier
	// generation that no longer match are cleared.
	return s, s.Write(dir, true)
}
