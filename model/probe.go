package model

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/model/onnxpb"
)

// ShapeProber runs a whole model once and reports what it computed. ONNX
// Runtime is the authority on a model (whatever it runs, dyno splits), so
// the shapes and element types of the tensors a split may cut at are
// measured by it rather than re-derived; the model package never runs a
// model itself, so the caller supplies the prober (executor/ort.Prober is
// the one dyno ships).
type ShapeProber interface {
	// Probe runs the serialised model once on a sample input: the named
	// float32 input with the given static shape, filled with seeded values.
	// It returns the element type and shape of every tensor of tensors that
	// the run produced as a tensor; others (sequences, maps) are left out.
	// The model lists the tensors among its graph outputs. A model the
	// prober cannot load or run is an error wrapping ErrUnsupported; a
	// prober that cannot start (no runtime) returns its own error.
	Probe(model []byte, input string, shape []int64, tensors []string) (map[string]Probed, error)
}

// Probed is a tensor as a prober measured it.
type Probed struct {
	// DType is the ONNX element type (TensorProto.DataType).
	DType int32
	Shape []int64
	// Varies reports that the shape depends on the input's values (it
	// differed between sample inputs): such a tensor cannot be a cut,
	// whose shape must be static.
	Varies bool
}

// probeModel returns the model with every output of the live nodes exposed
// as a graph output, and the names of those outputs.
func (g *Graph) probeModel() ([]byte, []string, error) {
	m := proto.Clone(g.model).(*onnxpb.ModelProto)
	gp := m.GetGraph()
	have := map[string]bool{}
	var names []string
	for _, o := range gp.GetOutput() {
		have[o.GetName()] = true
		names = append(names, o.GetName())
	}
	for _, n := range g.nodes {
		for _, o := range n.GetOutput() {
			if o == "" || have[o] {
				continue
			}
			have[o] = true
			names = append(names, o)
			// A value with a name only: ONNX Runtime infers its type.
			gp.Output = append(gp.Output, &onnxpb.ValueInfoProto{Name: ptr(o)})
		}
	}
	// The input gets the static shape the split uses, so that shapes
	// downstream of a symbolic dimension come out static too.
	for i, vi := range gp.GetInput() {
		if vi.GetName() == g.input {
			gp.Input[i] = valueInfo(g.input, g.info[g.input])
		}
	}
	b, err := EncodeONNX(m)
	if err != nil {
		return nil, nil, err
	}
	return b, names, nil
}

// probe measures every node output with p.
func (g *Graph) probe(p ShapeProber) (map[string]Probed, error) {
	data, names, err := g.probeModel()
	if err != nil {
		return nil, err
	}
	in := g.info[g.input]
	got, err := p.Probe(data, g.input, in.shape, names)
	if err != nil {
		return nil, fmt.Errorf("measure the tensors by running the model once on a %v input: %w", in.shape, err)
	}
	return got, nil
}
