package model_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

// tinynet returns the zoo's small model, analysed.
func tinynet(t testing.TB) (*onnxpb.ModelProto, *model.Graph) {
	t.Helper()
	m, err := model.TinyNet(1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m, g
}

// wantErr checks that err wraps target and mentions every fragment.
func wantErr(t *testing.T, err, target error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("error %q does not wrap %v", err, target)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

// oneNode builds a graph with input "x" of the given shape, the nodes
// added by add, and output "y".
func oneNode(inShape []int64, add func(b *model.Builder)) *onnxpb.ModelProto {
	b := model.NewBuilder("test")
	b.Input("x", inShape...)
	add(b)
	b.Output("y")
	return b.Model("test graph")
}

func cutNames(cs []model.CutPoint) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Tensor.Name)
	}
	return out
}
