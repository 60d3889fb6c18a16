package model_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

func tinyBytes(t testing.TB) []byte {
	t.Helper()
	m, _ := tinynet(t)
	b, err := model.EncodeONNX(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	b := tinyBytes(t)
	m, err := model.DecodeONNX(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := model.EncodeONNX(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatal("decode then encode changed the bytes")
	}
}

func TestDecodeONNXErrors(t *testing.T) {
	good := tinyBytes(t)
	mutate := func(f func(m *onnxpb.ModelProto)) []byte {
		m, err := model.DecodeONNX(good)
		if err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name      string
		data      []byte
		target    error
		fragments []string
	}{
		{"empty", nil, model.ErrCorrupt, []string{"empty"}},
		{"text", []byte("this is not an ONNX model at all\n"), model.ErrCorrupt, []string{"at byte"}},
		{"truncated in an initializer", good[:len(good)*2/3], model.ErrCorrupt, []string{"at byte", "graph.initializer["}},
		{"truncated by one byte", good[:len(good)-1], model.ErrCorrupt, []string{"at byte"}},
		{"truncated header", good[:3], model.ErrCorrupt, nil},
		{"no graph", mutate(func(m *onnxpb.ModelProto) { m.Graph = nil }), model.ErrCorrupt, []string{"no graph"}},
		{"no ir version", mutate(func(m *onnxpb.ModelProto) { m.IrVersion = nil }), model.ErrCorrupt, []string{"ir_version"}},
		{"external data", mutate(func(m *onnxpb.ModelProto) {
			w := m.Graph.Initializer[0]
			w.RawData = nil
			w.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("weights.bin")}}
		}), model.ErrUnsupported, []string{"stem.conv.weight", "weights.bin", "external"}},
		{"sparse initializer", mutate(func(m *onnxpb.ModelProto) {
			m.Graph.SparseInitializer = []*onnxpb.SparseTensorProto{{Values: &onnxpb.TensorProto{Name: proto.String("sp")}}}
		}), model.ErrUnsupported, []string{"sparse", "sp"}},
		{"segment", mutate(func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[1].Segment = &onnxpb.TensorProto_Segment{Begin: proto.Int64(0), End: proto.Int64(4)}
		}), model.ErrUnsupported, []string{"stem.conv.bias", "segment"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.DecodeONNX(tc.data)
			wantErr(t, err, tc.target, tc.fragments...)
		})
	}
}

func TestReadONNXNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cut.onnx")
	good := tinyBytes(t)
	if err := os.WriteFile(p, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := model.ReadONNX(p)
	wantErr(t, err, model.ErrCorrupt, p, "at byte")
	_, err = model.ReadONNX(filepath.Join(dir, "missing.onnx"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v, want os.ErrNotExist", err)
	}
}

func TestWriteONNXIsAtomic(t *testing.T) {
	m, _ := tinynet(t)
	p := filepath.Join(t.TempDir(), "m.onnx")
	if err := model.WriteONNX(p, m); err != nil {
		t.Fatal(err)
	}
	got, err := model.ReadONNX(p)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) {
		t.Fatal("written model reads back different")
	}
	left, _ := filepath.Glob(p + ".tmp*")
	if len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestFloatTensorRoundTrip(t *testing.T) {
	in := []float32{0, -1.5, 3.25, 1e-7}
	v, err := model.FloatValues(model.FloatTensor("w", []int64{2, 2}, in))
	if err != nil {
		t.Fatal(err)
	}
	if !equalF32(v, in) {
		t.Fatalf("got %v, want %v", v, in)
	}
	// Typed float_data storage reads the same.
	v, err = model.FloatValues(&onnxpb.TensorProto{Name: proto.String("w"), Dims: []int64{4}, DataType: proto.Int32(1), FloatData: in})
	if err != nil || !equalF32(v, in) {
		t.Fatalf("float_data: got %v, %v", v, err)
	}
	_, err = model.FloatValues(&onnxpb.TensorProto{Name: proto.String("w"), Dims: []int64{5}, DataType: proto.Int32(1), FloatData: in})
	wantErr(t, err, model.ErrCorrupt, "4 values", "need 5")
	if !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("error %q does not name the tensor", err)
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
