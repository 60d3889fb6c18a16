// Package model owns what dyno knows about a network before it runs: the
// manifest (model.json) of a CNN cut into a chain of blocks, the layer-level
// architecture tables of the standard models, ONNX reading, cut-point search
// and block writing, the model zoo and the small reference classifier
// (subpackage mnist).
//
// ONNX files are read and written with the generated types of model/onnxpb
// (onnx.go); AnalyseONNX orders a graph, infers every tensor's static shape
// and every node's FLOPs (infer.go) and finds the single-tensor cut points
// as the dominators of the output (cut.go); Graph.Split writes one
// self-contained ONNX model per block and the manifest (split.go). The zoo
// (zoo.go) generates ResNet-50 and MobileNetV2 from the architecture tables
// with seeded weights through the same Builder (build.go). docs/models.md is
// the user's guide, with what a FLOP counts.
//
// It does not time anything (that is the executor's profiling) and does not
// predict costs (that is costmodel).
package model
