package model

import "fmt"

// OpKind is a layer type of an architecture table.
type OpKind int

// The layer types the architecture tables use. Batch normalisation is folded
// into the convolution that precedes it (a conv with a bias), as deployed
// inference graphs do.
const (
	OpConv    OpKind = iota + 1 // 2-D convolution with bias, optional activation
	OpMaxPool                   // max pooling
	OpAdd                       // element-wise sum of two tensors (residual)
	OpGAP                       // global average pooling to 1x1, then flatten
	OpFC                        // fully connected (Gemm) with bias
)

// Activation follows a conv or FC layer.
type Activation int

// Activations.
const (
	ActNone Activation = iota
	ActReLU
	ActReLU6
)

// Op is one layer. Inputs name earlier ops' outputs ("" means the
// previous op's output; "input" is the network input).
type Op struct {
	Kind   OpKind
	Name   string
	Inputs []string
	// Conv and pooling geometry; OutC is also the FC width.
	OutC, Kernel, Stride, Pad, Group int
	Act                              Activation
}

// Unit is a named run of ops whose output is a single-tensor cut point of the
// network: the natural blocks of an architecture (a stem, one residual block,
// a head).
type Unit struct {
	Name string
	Ops  []Op
}

// Arch is a layer-level architecture table.
type Arch struct {
	Name    string
	Input   []int64 // C, H, W (batch 1)
	Classes int
	Units   []Unit
	Source  string
}

// Shape is the C, H, W of a feature map (H = W = 1 after pooling to a vector).
type Shape struct{ C, H, W int64 }

// Elements is C*H*W.
func (s Shape) Elements() int64 { return s.C * s.H * s.W }

// OpStats is the result of shape inference for one op.
type OpStats struct {
	Op      Op
	In      []Shape
	Out     Shape
	FLOPs   int64
	Params  int64
	Unit    int
	OutName string
}

// Infer runs shape inference over the table and returns one entry per op.
func (a *Arch) Infer() ([]OpStats, error) {
	shapes := map[string]Shape{"input": {a.Input[0], a.Input[1], a.Input[2]}}
	prev := "input"
	var out []OpStats
	for ui, u := range a.Units {
		for _, op := range u.Ops {
			names := op.Inputs
			if len(names) == 0 {
				names = []string{prev}
			}
			var in []Shape
			for _, n := range names {
				if n == "" {
					n = prev
				}
				s, ok := shapes[n]
				if !ok {
					return nil, fmt.Errorf("model: arch %s: op %s reads unknown tensor %q", a.Name, op.Name, n)
				}
				in = append(in, s)
			}
			st := OpStats{Op: op, In: in, Unit: ui, OutName: op.Name}
			x := in[0]
			switch op.Kind {
			case OpConv:
				g := int64(max(op.Group, 1))
				k, s, p := int64(op.Kernel), int64(op.Stride), int64(op.Pad)
				if x.C%g != 0 || int64(op.OutC)%g != 0 {
					return nil, fmt.Errorf("model: arch %s: op %s: channels not divisible by group", a.Name, op.Name)
				}
				st.Out = Shape{int64(op.OutC), (x.H+2*p-k)/s + 1, (x.W+2*p-k)/s + 1}
				macs := st.Out.Elements() * (x.C / g) * k * k
				st.FLOPs = 2*macs + st.Out.Elements() // multiply-adds plus the bias
				st.Params = int64(op.OutC)*(x.C/g)*k*k + int64(op.OutC)
			case OpMaxPool:
				k, s, p := int64(op.Kernel), int64(op.Stride), int64(op.Pad)
				st.Out = Shape{x.C, (x.H+2*p-k)/s + 1, (x.W+2*p-k)/s + 1}
				st.FLOPs = st.Out.Elements() * (k*k - 1)
			case OpAdd:
				if len(in) != 2 || in[0] != in[1] {
					return nil, fmt.Errorf("model: arch %s: op %s: add needs two equal shapes, got %v", a.Name, op.Name, in)
				}
				st.Out = x
				st.FLOPs = x.Elements()
			case OpGAP:
				st.Out = Shape{x.C, 1, 1}
				st.FLOPs = x.Elements()
			case OpFC:
				st.Out = Shape{int64(op.OutC), 1, 1}
				st.FLOPs = 2*x.Elements()*int64(op.OutC) + int64(op.OutC)
				st.Params = x.Elements()*int64(op.OutC) + int64(op.OutC)
			default:
				return nil, fmt.Errorf("model: arch %s: op %s: unknown kind %d", a.Name, op.Name, op.Kind)
			}
			if _, dup := shapes[op.Name]; dup {
				return nil, fmt.Errorf("model: arch %s: duplicate op name %s", a.Name, op.Name)
			}
			shapes[op.Name] = st.Out
			prev = op.Name
			out = append(out, st)
		}
	}
	return out, nil
}

// Manifest derives the block manifest of the architecture, one block per
// unit, with FLOPs and parameters summed over the unit's ops.
func (a *Arch) Manifest() (*Manifest, error) {
	stats, err := a.Infer()
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Version:     ManifestVersion,
		Name:        a.Name,
		Input:       NewTensor("input", 1, a.Input[0], a.Input[1], a.Input[2]),
		AllowedBits: append([]int(nil), ValidBits...),
		Classes:     a.Classes,
		Source:      a.Source,
	}
	for ui, u := range a.Units {
		b := Block{Name: u.Name}
		var last OpStats
		for _, st := range stats {
			if st.Unit != ui {
				continue
			}
			b.FLOPs += st.FLOPs
			b.Params += st.Params
			last = st
		}
		if last.Out.H == 1 && last.Out.W == 1 && (last.Op.Kind == OpFC || last.Op.Kind == OpGAP) {
			b.Output = NewTensor(last.OutName, 1, last.Out.C)
		} else {
			b.Output = NewTensor(last.OutName, 1, last.Out.C, last.Out.H, last.Out.W)
		}
		m.Blocks = append(m.Blocks, b)
	}
	return m, m.Validate()
}

func conv(name string, outC, k, s int, act Activation, inputs ...string) Op {
	return Op{Kind: OpConv, Name: name, Inputs: inputs, OutC: outC, Kernel: k, Stride: s, Pad: k / 2, Group: 1, Act: act}
}

// ResNet50 is ResNet-50 v1.5 (He et al., CVPR 2016; the stride sits on the
// 3x3 convolution of each downsampling bottleneck, as in torchvision) at
// 224x224 with 1000 classes: 4.1 G multiply-adds, 25.5 M parameters.
func ResNet50() *Arch {
	a := &Arch{Name: "resnet50", Input: []int64{3, 224, 224}, Classes: 1000,
		Source: "ResNet-50 v1.5 architecture (He et al. 2016; torchvision), BN folded into conv bias; FLOPs = 2 x MACs + bias/add/pool ops"}
	a.Units = append(a.Units, Unit{Name: "stem", Ops: []Op{
		{Kind: OpConv, Name: "conv1", OutC: 64, Kernel: 7, Stride: 2, Pad: 3, Group: 1, Act: ActReLU},
		{Kind: OpMaxPool, Name: "pool1", Kernel: 3, Stride: 2, Pad: 1},
	}})
	prev := "pool1"
	for stage, cfg := range []struct{ width, blocks, stride int }{{64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}} {
		for i := 0; i < cfg.blocks; i++ {
			p := fmt.Sprintf("layer%d.%d", stage+1, i)
			s := 1
			if i == 0 {
				s = cfg.stride
			}
			out := cfg.width * 4
			ops := []Op{
				conv(p+".conv1", cfg.width, 1, 1, ActReLU, prev),
				conv(p+".conv2", cfg.width, 3, s, ActReLU),
				conv(p+".conv3", out, 1, 1, ActNone),
			}
			shortcut := prev
			if i == 0 {
				ops = append(ops, conv(p+".downsample", out, 1, s, ActNone, prev))
				shortcut = p + ".downsample"
			}
			ops = append(ops,
				Op{Kind: OpAdd, Name: p + ".add", Inputs: []string{p + ".conv3", shortcut}},
			)
			// The ReLU after the sum is part of the add's output in the
			// table; the zoo emits it as its own node.
			ops[len(ops)-1].Act = ActReLU
			a.Units = append(a.Units, Unit{Name: p, Ops: ops})
			prev = p + ".add"
		}
	}
	a.Units = append(a.Units, Unit{Name: "head", Ops: []Op{
		{Kind: OpGAP, Name: "avgpool"},
		{Kind: OpFC, Name: "fc", OutC: 1000},
	}})
	return a
}

// MobileNetV2 is MobileNetV2 (Sandler et al., CVPR 2018, width 1.0) at
// 224x224 with 1000 classes: 300 M multiply-adds, 3.5 M parameters.
func MobileNetV2() *Arch {
	a := &Arch{Name: "mobilenetv2", Input: []int64{3, 224, 224}, Classes: 1000,
		Source: "MobileNetV2 1.0 architecture (Sandler et al. 2018, Table 2), BN folded into conv bias; FLOPs = 2 x MACs + bias/add/pool ops"}
	a.Units = append(a.Units, Unit{Name: "stem", Ops: []Op{
		{Kind: OpConv, Name: "stem.conv", OutC: 32, Kernel: 3, Stride: 2, Pad: 1, Group: 1, Act: ActReLU6},
	}})
	in, prev, idx := 32, "stem.conv", 0
	for _, cfg := range []struct{ t, c, n, s int }{
		{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
	} {
		for i := 0; i < cfg.n; i++ {
			s := 1
			if i == 0 {
				s = cfg.s
			}
			p := fmt.Sprintf("block%d", idx)
			hidden := in * cfg.t
			var ops []Op
			src := prev
			if cfg.t != 1 {
				ops = append(ops, conv(p+".expand", hidden, 1, 1, ActReLU6, prev))
				src = p + ".expand"
			}
			ops = append(ops,
				Op{Kind: OpConv, Name: p + ".dw", Inputs: []string{src}, OutC: hidden, Kernel: 3, Stride: s, Pad: 1, Group: hidden, Act: ActReLU6},
				conv(p+".project", cfg.c, 1, 1, ActNone),
			)
			out := p + ".project"
			if s == 1 && in == cfg.c {
				ops = append(ops, Op{Kind: OpAdd, Name: p + ".add", Inputs: []string{p + ".project", prev}})
				out = p + ".add"
			}
			a.Units = append(a.Units, Unit{Name: p, Ops: ops})
			in, prev = cfg.c, out
			idx++
		}
	}
	a.Units = append(a.Units,
		Unit{Name: "conv_last", Ops: []Op{conv("conv_last", 1280, 1, 1, ActReLU6, prev)}},
		Unit{Name: "head", Ops: []Op{
			{Kind: OpGAP, Name: "avgpool"},
			{Kind: OpFC, Name: "fc", OutC: 1000},
		}},
	)
	return a
}
