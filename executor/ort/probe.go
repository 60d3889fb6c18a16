package ort

import (
	"fmt"
	"math/rand/v2"
	"slices"

	onnx "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

// Prober measures the tensors of a model by running it through ONNX
// Runtime: it implements model.ShapeProber for the splitter, so the shapes
// and element types of cut tensors come from the runtime that will run the
// blocks, for any operator it runs.
type Prober struct {
	// Seed draws the sample inputs (standard normal); 0 means 1.
	Seed uint64
	// Threads is ONNX Runtime's intra-op thread count; 0 is its default.
	Threads int
}

var _ model.ShapeProber = Prober{}

// Probe runs the model on two sample inputs and reports the tensors it
// produced. A tensor whose shape differs between the two (data-dependent,
// as after NonZero) is reported with the first shape and Varies set.
//
// The element types come from the session's output information; the
// shapes from a copy of the model whose outputs are [1, Shape(t)...] for
// every tensor t (the binding cannot return a 0-dimensional tensor, and
// shapes are all that is needed, not the values).
func (p Prober) Probe(data []byte, input string, shape []int64, tensors []string) (map[string]model.Probed, error) {
	seed := p.Seed
	if seed == 0 {
		seed = 1
	}
	if err := Init(""); err != nil {
		return nil, err
	}
	_, outs, err := onnx.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("%w: ONNX Runtime cannot load the model: %v", model.ErrUnsupported, err)
	}
	dtype := map[string]int32{}
	for _, o := range outs {
		if o.OrtValueType == onnx.ONNXTypeTensor {
			dtype[o.Name] = int32(o.DataType)
		}
	}
	var names []string
	for _, t := range tensors {
		if _, ok := dtype[t]; ok {
			names = append(names, t)
		}
	}
	shapes, dims, err := shapeModel(data, names)
	if err != nil {
		return nil, err
	}
	r, err := NewRunner(shapes, "model", input, dims, Options{Threads: p.Threads})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", model.ErrUnsupported, err)
	}
	defer r.Close()
	n := int(prodShape(shape))
	var first map[string]model.Probed
	for k := range uint64(2) {
		got := map[string]model.Probed{}
		var bad error
		err := r.run(shape, sampleInput(n, seed+k), func(i int, v onnx.Value) {
			t, ok := v.(*onnx.Tensor[int64])
			if !ok || len(t.GetData()) == 0 {
				bad = fmt.Errorf("ort: the shape of %q came back as %T", names[i], v)
				return
			}
			got[names[i]] = model.Probed{DType: dtype[names[i]], Shape: slices.Clone(t.GetData()[1:])}
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("%w: ONNX Runtime cannot run the model on a %v float32 input: %v", model.ErrUnsupported, shape, err)
		}
		if first == nil {
			first = got
			continue
		}
		for name, a := range first {
			if b, ok := got[name]; !ok || !slices.Equal(a.Shape, b.Shape) {
				a.Varies = true
				first[name] = a
			}
		}
	}
	return first, nil
}

// shapeModel returns the model with its outputs replaced by
// Concat([1], Shape(t)) for every tensor t, and those outputs' names.
func shapeModel(data []byte, tensors []string) ([]byte, []string, error) {
	m, err := model.DecodeONNX(data)
	if err != nil {
		return nil, nil, err
	}
	gp := m.GetGraph()
	one := "dyno.probe.one"
	gp.Initializer = append(gp.Initializer, model.Int64Tensor(one, []int64{1}, []int64{1}))
	gp.Output = nil
	var outs []string
	for i, t := range tensors {
		sh := fmt.Sprintf("dyno.probe.%d.shape", i)
		dims := fmt.Sprintf("dyno.probe.%d.dims", i)
		gp.Node = append(gp.Node,
			&onnxpb.NodeProto{OpType: proto.String("Shape"), Name: proto.String(sh), Input: []string{t}, Output: []string{sh}},
			&onnxpb.NodeProto{OpType: proto.String("Concat"), Name: proto.String(dims), Input: []string{one, sh}, Output: []string{dims},
				Attribute: []*onnxpb.AttributeProto{model.AttrInt("axis", 0)}})
		gp.Output = append(gp.Output, &onnxpb.ValueInfoProto{Name: proto.String(dims)})
		outs = append(outs, dims)
	}
	b, err := model.EncodeONNX(m)
	return b, outs, err
}

func prodShape(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}

// sampleInput is n standard normal values from seed.
func sampleInput(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x70726f6265)) // "probe"
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// Runner runs a whole model (any number of outputs, any element types,
// symbolic dimensions allowed) on a float32 input of a shape given per run.
// It is what `dynoctl model check` compares a split against. Runs are not
// safe for concurrent use.
type Runner struct {
	name    string
	outputs []string
	s       *onnx.DynamicAdvancedSession
}

// NewRunner opens a serialised model for the named input and outputs;
// name labels errors.
func NewRunner(data []byte, name, input string, outputs []string, opt Options) (*Runner, error) {
	if err := Init(""); err != nil {
		return nil, err
	}
	so, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	defer so.Destroy()
	for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := so.AddSessionConfigEntry(k, "0"); err != nil {
			return nil, fmt.Errorf("ort: %s: %w", name, err)
		}
	}
	if opt.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opt.Threads); err != nil {
			return nil, fmt.Errorf("ort: %s: %w", name, err)
		}
	}
	s, err := onnx.NewDynamicAdvancedSessionWithONNXData(data, []string{input}, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: create session: %w", name, err)
	}
	return &Runner{name: name, outputs: slices.Clone(outputs), s: s}, nil
}

// run runs the model on x of the given shape and calls each for every
// output before releasing it.
func (r *Runner) run(shape []int64, x []float32, each func(i int, v onnx.Value)) error {
	in, err := onnx.NewTensor(onnx.NewShape(shape...), x)
	if err != nil {
		return fmt.Errorf("ort: %s: input: %w", r.name, err)
	}
	defer in.Destroy()
	outs := make([]onnx.Value, len(r.outputs))
	if err := r.s.Run([]onnx.Value{in}, outs); err != nil {
		// The binding may leave half-made values behind after a failed
		// run; they are not destroyed (a small leak on an error path).
		return fmt.Errorf("ort: %s: run: %w", r.name, err)
	}
	defer func() {
		for _, v := range outs {
			v.Destroy()
		}
	}()
	for i, v := range outs {
		each(i, v)
	}
	return nil
}

// Run runs the model on x of the given shape and returns every output as
// float32 values; an output of another type is an error.
func (r *Runner) Run(shape []int64, x []float32) ([][]float32, error) {
	out := make([][]float32, len(r.outputs))
	var bad error
	err := r.run(shape, x, func(i int, v onnx.Value) {
		t, ok := v.(*onnx.Tensor[float32])
		if !ok {
			if bad == nil {
				bad = fmt.Errorf("ort: %s: output %q is not a float32 tensor", r.name, r.outputs[i])
			}
			return
		}
		out[i] = slices.Clone(t.GetData())
	})
	if err != nil {
		return nil, err
	}
	return out, bad
}

// Close releases the session.
func (r *Runner) Close() error {
	if r.s == nil {
		return nil
	}
	err := r.s.Destroy()
	r.s = nil
	return err
}
