package ort

import (
	"fmt"
	"math/rand/v2"
	"slices"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/dynoml/dyno/model"
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
func (p Prober) Probe(data []byte, input string, shape []int64, tensors []string) (map[string]model.Probed, error) {
	seed := p.Seed
	if seed == 0 {
		seed = 1
	}
	r, err := NewRunner(data, "model", input, tensors, Options{Threads: p.Threads})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	n := int(prodShape(shape))
	var first map[string]model.Probed
	for k := range uint64(2) {
		got := map[string]model.Probed{}
		err := r.run(shape, sampleInput(n, seed+k), func(i int, v onnx.Value) {
			if v.GetONNXType() != onnx.ONNXTypeTensor {
				return
			}
			got[tensors[i]] = model.Probed{DType: int32(onnx.TensorElementDataType(v.DataType())), Shape: slices.Clone([]int64(v.GetShape()))}
		})
		if err != nil {
			return nil, err
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
	err = r.s.Run([]onnx.Value{in}, outs)
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err != nil {
		return fmt.Errorf("ort: %s: run: %w", r.name, err)
	}
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
