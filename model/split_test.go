package model_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

func TestSplitSelection(t *testing.T) {
	_, g := tinynet(t)
	for _, tc := range []struct {
		name string
		opt  model.SplitOptions
		want []string // block outputs
	}{
		{"default: every cut after activations", model.SplitOptions{},
			[]string{"stem.relu", "stem.pool", "res.relu", "mix.relu6", "mix.pool", "head.gap", "head.flat", "head.fc1", "head.fc1.relu", "logits"}},
		{"raw, all: every cut", model.SplitOptions{Raw: true, All: true},
			[]string{"stem.conv", "stem.bn", "stem.relu", "stem.pool", "res.add", "res.relu", "mix.cat", "mix.relu6", "mix.pool", "head.gap", "head.flat", "head.fc1", "head.fc1.add", "head.fc1.relu", "logits"}},
		{"at names, out of order, with the output", model.SplitOptions{At: []string{"mix.pool", "logits", "stem.pool", "stem.pool"}},
			[]string{"stem.pool", "mix.pool", "logits"}},
		{"at a cut before an activation", model.SplitOptions{At: []string{"res.add"}}, []string{"res.add", "logits"}},
		{"every third", model.SplitOptions{Every: 3}, []string{"res.relu", "head.gap", "head.fc1.relu", "logits"}},
		{"at most two, even FLOPs", model.SplitOptions{MaxCuts: 2}, []string{"stem.pool", "res.relu", "logits"}},
		{"raw by default: at most DefaultMaxCuts, spread by cost", model.SplitOptions{Raw: true},
			[]string{"stem.conv", "stem.bn", "stem.relu", "stem.pool", "res.add", "res.relu", "mix.cat", "mix.relu6", "mix.pool", "head.gap", "head.flat", "logits"}},
		{"more cuts than there are", model.SplitOptions{MaxCuts: 100},
			[]string{"stem.relu", "stem.pool", "res.relu", "mix.relu6", "mix.pool", "head.gap", "head.flat", "head.fc1", "head.fc1.relu", "logits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := g.Split(tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range s.Manifest.Blocks {
				got = append(got, b.Output.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("blocks end at\n got %v\nwant %v", got, tc.want)
			}
			checkSplit(t, g, s)
		})
	}
}

// checkSplit verifies the invariants of a split: the blocks chain up, each
// is a valid model with exactly the initializers it uses, and FLOPs and
// parameters add up to the whole graph's.
func checkSplit(t *testing.T, g *model.Graph, s *model.Split) {
	t.Helper()
	m := s.Manifest
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.TotalFLOPs() != g.TotalFLOPs() {
		t.Errorf("blocks' FLOPs add up to %d, the graph has %d", m.TotalFLOPs(), g.TotalFLOPs())
	}
	if m.TotalParams() != g.TotalParams() {
		t.Errorf("blocks' params add up to %d, the graph has %d", m.TotalParams(), g.TotalParams())
	}
	in := m.Input
	for i, bm := range s.Blocks {
		b := m.Blocks[i]
		gp := bm.GetGraph()
		if len(gp.GetInput()) != 1 || gp.GetInput()[0].GetName() != in.Name {
			t.Errorf("block %d: input %v, want %s", i+1, gp.GetInput(), in.Name)
		}
		if len(gp.GetOutput()) != 1 || gp.GetOutput()[0].GetName() != b.Output.Name {
			t.Errorf("block %d: output %v, want %s", i+1, gp.GetOutput(), b.Output.Name)
		}
		used := map[string]bool{}
		produced := map[string]bool{in.Name: true}
		for _, n := range gp.GetNode() {
			for _, x := range n.GetInput() {
				if x != "" && !produced[x] {
					used[x] = true
				}
			}
			for _, o := range n.GetOutput() {
				produced[o] = true
			}
		}
		inits := map[string]bool{}
		for _, it := range gp.GetInitializer() {
			inits[it.GetName()] = true
			if !used[it.GetName()] {
				t.Errorf("block %d carries initializer %s it does not use", i+1, it.GetName())
			}
		}
		for x := range used {
			if !inits[x] {
				t.Errorf("block %d reads %s, which is neither its input, its own tensor nor its initializer", i+1, x)
			}
		}
		// Each block is a model of its own: it encodes, decodes and
		// analyses to the manifest's figures.
		data, err := model.EncodeONNX(bm)
		if err != nil {
			t.Fatal(err)
		}
		back, err := model.DecodeONNX(data)
		if err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		bg, err := model.AnalyseONNX(back, model.GraphOptions{})
		if err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		if bg.TotalFLOPs() != b.FLOPs || bg.TotalParams() != b.Params || !slices.Equal(bg.Output().Shape, b.Output.Shape) {
			t.Errorf("block %d analyses to %d FLOPs, %d params, %v; the manifest says %d, %d, %v", i+1,
				bg.TotalFLOPs(), bg.TotalParams(), bg.Output().Shape, b.FLOPs, b.Params, b.Output.Shape)
		}
		in = b.Output
	}
	if in.Name != g.Output().Name {
		t.Errorf("the last block ends at %s, the model at %s", in.Name, g.Output().Name)
	}
}

func TestSplitErrors(t *testing.T) {
	_, g := tinynet(t)
	for _, tc := range []struct {
		name      string
		opt       model.SplitOptions
		fragments []string
	}{
		{"inside a residual block", model.SplitOptions{At: []string{"res.conv1"}}, []string{`"res.conv1"`, "bypasses"}},
		{"inside a branch", model.SplitOptions{At: []string{"mix.b.relu"}}, []string{`"mix.b.relu"`, "bypasses"}},
		{"unknown tensor", model.SplitOptions{At: []string{"nope"}}, []string{`no tensor "nope"`}},
		{"a weight", model.SplitOptions{At: []string{"stem.conv.weight"}}, []string{"constant"}},
		{"the input", model.SplitOptions{At: []string{"input"}}, []string{"input"}},
		{"only the output", model.SplitOptions{At: []string{"logits"}}, []string{"single block"}},
		{"every beyond the count", model.SplitOptions{Every: 50}, []string{"selects none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Split(tc.opt)
			wantErr(t, err, model.ErrNoCutPoint, tc.fragments...)
		})
	}
	if _, err := g.Split(model.SplitOptions{Every: 2, MaxCuts: 3}); err == nil {
		t.Error("Every with MaxCuts: no error")
	}
}

func TestNoCutPoint(t *testing.T) {
	// Two parallel paths from the input that meet only at the output.
	m := oneNode([]int64{1, 8}, func(b *model.Builder) {
		b.Node("Relu", "a", []string{"x"})
		b.Node("Sigmoid", "s", []string{"x"})
		b.Node("Tanh", "c", []string{"s"})
		b.Node("Add", "y", []string{"a", "c"})
	})
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.CutPoints()) != 0 {
		t.Fatalf("cut points %v, want none", cutNames(g.CutPoints()))
	}
	_, err = g.Split(model.SplitOptions{})
	wantErr(t, err, model.ErrNoCutPoint, `input "x"`, `output "y"`, "parallel paths")
}

func TestConstantsAreCopiedIntoEachBlock(t *testing.T) {
	// A shape computed by Constant nodes is needed on both sides of a cut:
	// each block gets its own copy.
	m := oneNode([]int64{1, 4, 2, 2}, func(b *model.Builder) {
		b.Node("Constant", "shape", nil, &onnxpb.AttributeProto{Name: ptr("value"), T: model.Int64Tensor("", []int64{2}, []int64{1, 16})})
		b.Node("Reshape", "flat", []string{"x", "shape"})
		b.Node("Relu", "r", []string{"flat"})
		b.Node("Reshape", "y", []string{"r", "shape"})
	})
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := g.Split(model.SplitOptions{At: []string{"flat"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, bm := range s.Blocks {
		var ops []string
		for _, n := range bm.GetGraph().GetNode() {
			ops = append(ops, n.GetOpType())
		}
		if !slices.Contains(ops, "Constant") {
			t.Errorf("block %d (%v) lacks the Constant it reads", i+1, ops)
		}
	}
	checkSplit(t, g, s)
}

func TestSplitWrite(t *testing.T) {
	m, g := tinynet(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "tinynet.onnx")
	if err := model.WriteONNX(src, m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	s, err := model.SplitFile(src, out, model.GraphOptions{}, model.SplitOptions{Raw: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest.Original != "../tinynet.onnx" && s.Manifest.Original != src {
		t.Errorf("original %q, want the absolute path %q", s.Manifest.Original, src)
	}
	// Profiles and an accuracy table of this split: a different split
	// into the same folder refuses, the same split does not.
	for _, f := range []string{"profiles/host.json", "profiles/host-cloud.json", "accuracy.json"} {
		p := filepath.Join(out, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := model.SplitFile(src, out, model.GraphOptions{}, model.SplitOptions{Raw: true}, false); err != nil {
		t.Fatalf("the same split again: %v", err)
	}
	_, err = model.SplitFile(src, out, model.GraphOptions{}, model.SplitOptions{MaxCuts: 2}, false)
	wantErr(t, err, model.ErrStale, "accuracy.json", "host-cloud.json", "--force")
	// The same architecture with other weights: same manifest, other
	// blocks, so the results are stale too.
	m2, err := model.TinyNet(2)
	if err != nil {
		t.Fatal(err)
	}
	src2 := filepath.Join(dir, "tinynet2.onnx")
	if err := model.WriteONNX(src2, m2); err != nil {
		t.Fatal(err)
	}
	_, err = model.SplitFile(src2, out, model.GraphOptions{}, model.SplitOptions{Raw: true, Name: "tinynet"}, false)
	wantErr(t, err, model.ErrStale, "accuracy.json")
	if _, err := os.Stat(filepath.Join(out, "accuracy.json")); err != nil {
		t.Fatalf("a refused split removed the accuracy table: %v", err)
	}
	if s.Manifest.Name != "tinynet" || s.Manifest.Classes != 10 {
		t.Errorf("name %q classes %d", s.Manifest.Name, s.Manifest.Classes)
	}
	// A coarser split of the same folder removes the blocks it no longer has.
	s, err = model.SplitFile(src, out, model.GraphOptions{}, model.SplitOptions{MaxCuts: 2}, true)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, "profiles", "*.json")); len(left) > 0 {
		t.Errorf("--force left the stale profiles %v", left)
	}
	files, _ := filepath.Glob(filepath.Join(out, "blocks", "*.onnx"))
	if len(files) != 3 {
		t.Errorf("blocks/ holds %v, want 3 files", files)
	}
	mf, err := model.LoadManifest(filepath.Join(out, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if mf.K() != 3 || mf.TotalFLOPs() != g.TotalFLOPs() {
		t.Errorf("manifest has %d blocks and %d FLOPs", mf.K(), mf.TotalFLOPs())
	}
	for _, b := range mf.Blocks {
		if _, err := os.Stat(filepath.Join(out, b.File)); err != nil {
			t.Error(err)
		}
	}
	if got := model.NameFromPath("models/resnet50/model.onnx"); got != "resnet50" {
		t.Errorf("NameFromPath: %q", got)
	}
}
