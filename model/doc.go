// Package model owns what dyno knows about a network before it runs: the
// manifest (model.json) of a CNN cut into a chain of blocks, the layer-level
// architecture tables of the standard models, ONNX reading, cut-point search
// and block writing, the model zoo and the small reference classifier.
//
// It does not time anything (that is the executor's profiling) and does not
// predict costs (that is costmodel).
package model
