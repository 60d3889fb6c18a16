// Package model owns what dyno knows about a network before it runs: the
// manifest (model.json) of a CNN cut into a chain of blocks, the layer-level
// architecture tables of the standard models, ONNX reading, cut-point search
// and block writing, the model zoo and the small reference classifier
// (subpackage mnist).
//
// ONNX files are read and written with the generated types of model/onnxpb
// (onnx.go); AnalyseONNX orders a graph and finds the single-tensor cut
// points as the dominators of the output, from the topology alone (cut.go,
// subgraph.go for control flow), so no operator is refused for being
// unknown. The shapes and element types of the tensors are measured by a
// ShapeProber the caller supplies (probe.go; executor/ort.Prober runs ONNX
// Runtime), or, without one, inferred by dyno's own shape inference for
// the operators it knows (infer.go); FLOPs are counted where dyno knows the
// operator and marked uncounted elsewhere (flops.go). Graph.Split writes one
// self-contained ONNX model per block and the manifest (split.go), and
// refuses to overwrite the profiles of another split. The zoo (zoo.go)
// generates ResNet-50 and MobileNetV2 from the architecture tables with
// seeded weights through the same Builder (build.go), and test nets written
// the way exporters write real networks (testnets.go). docs/models.md is
// the user's guide, with what a FLOP counts.
//
// It does not run a model (ONNX Runtime is the executor's), does not time
// anything (that is the executor's profiling) and does not predict costs
// (that is costmodel).
package model
