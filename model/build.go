package model

import (
	"github.com/dynoml/dyno/model/onnxpb"
)

// BuilderOpset is the ONNX operator set the builder writes (ONNX Runtime
// 1.24 runs opsets up to 23; 13 is what most exported CNNs use).
const BuilderOpset = 13

// builderIRVersion is the IR version that goes with opset 13.
const builderIRVersion = 7

// Builder assembles an ONNX graph node by node; the zoo and the reference
// classifier write their models through it, so they exercise the same
// reader and splitter as a user's file. It does not check the graph:
// AnalyseONNX does.
type Builder struct {
	g *onnxpb.GraphProto
}

// NewBuilder starts a graph.
func NewBuilder(name string) *Builder {
	return &Builder{g: &onnxpb.GraphProto{Name: ptr(name)}}
}

// Input declares the graph's float32 input.
func (b *Builder) Input(name string, shape ...int64) {
	b.g.Input = append(b.g.Input, valueInfo(name, &tinfo{dtype: dtFloat, shape: shape}))
}

// Output declares a float32 graph output.
func (b *Builder) Output(name string, shape ...int64) {
	b.g.Output = append(b.g.Output, valueInfo(name, &tinfo{dtype: dtFloat, shape: shape}))
}

// Init adds an initializer and returns its name.
func (b *Builder) Init(t *onnxpb.TensorProto) string {
	b.g.Initializer = append(b.g.Initializer, t)
	return t.GetName()
}

// Node adds a node with one output named after the node and returns the
// output's name.
func (b *Builder) Node(op, name string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name:      ptr(name),
		OpType:    ptr(op),
		Input:     inputs,
		Output:    []string{name},
		Attribute: attrs,
	})
	return name
}

// Model wraps the graph in a model with the builder's opset.
func (b *Builder) Model(doc string) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:       ptr(int64(builderIRVersion)),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(BuilderOpset))}},
		ProducerName:    ptr("dyno"),
		ProducerVersion: ptr("builder"),
		DocString:       ptr(doc),
		Graph:           b.g,
	}
}

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INT.Enum(), I: ptr(v)}
}

// AttrInts is an INTS attribute.
func AttrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: ptr(v)}
}

// ConvAttrs are the attributes of a square 2-D convolution or pooling.
func ConvAttrs(kernel, stride, pad int64) []*onnxpb.AttributeProto {
	return []*onnxpb.AttributeProto{
		AttrInts("kernel_shape", kernel, kernel),
		AttrInts("strides", stride, stride),
		AttrInts("pads", pad, pad, pad, pad),
	}
}
