package model_test

import (
	"testing"

	"github.com/dynoml/dyno/model"
)

// FuzzDecodeONNX feeds arbitrary bytes through everything the splitter does
// with a user's file: decoding, analysis, splitting. None of it may panic;
// errors are expected.
func FuzzDecodeONNX(f *testing.F) {
	good := tinyBytes(f)
	f.Add(good)
	for _, n := range []int{0, 1, 3, 17, len(good) / 3, len(good) / 2, len(good) - 1} {
		f.Add(good[:n])
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0xff
	f.Add(flipped)
	m := oneNode([]int64{1, 16, 4, 4}, func(b *model.Builder) {
		b.Node("Shape", "shape", []string{"x"})
		b.Init(model.Int64Tensor("zero", nil, []int64{0}))
		b.Node("Gather", "n", []string{"shape", "zero"})
		b.Init(model.Int64Tensor("axes", []int64{1}, []int64{0}))
		b.Node("Unsqueeze", "n1", []string{"n", "axes"})
		b.Init(model.Int64Tensor("minus1", []int64{1}, []int64{-1}))
		b.Node("Concat", "target", []string{"n1", "minus1"}, model.AttrInt("axis", 0))
		b.Node("Reshape", "r", []string{"x", "target"})
		b.Node("Relu", "y", []string{"r"})
	})
	if b, err := model.EncodeONNX(m); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.DecodeONNX(data)
		if err != nil {
			return
		}
		g, err := model.AnalyseONNX(m, model.GraphOptions{})
		if err != nil {
			return
		}
		g.Stretches()
		g.UncountedOps()
		for _, opt := range []model.SplitOptions{{}, {Raw: true, All: true}, {MaxCuts: 2}} {
			s, err := g.Split(opt)
			if err != nil {
				continue
			}
			if err := s.Manifest.Validate(); err != nil {
				t.Fatalf("split gave an invalid manifest: %v", err)
			}
		}
	})
}
