package model

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dynoml/dyno/model/onnxpb"
)

// Errors of ONNX reading, shape inference and splitting. Every error of this
// package's ONNX code wraps exactly one of them; test with errors.Is.
var (
	// ErrCorrupt: the bytes are not an ONNX model (truncated, not
	// protobuf, or a graph that refers to tensors nobody produces).
	ErrCorrupt = errors.New("model: corrupt ONNX model")
	// ErrUnsupported: a valid ONNX model that dyno does not handle
	// (external or sparse data, several inputs or outputs, subgraphs,
	// operators without shape inference here).
	ErrUnsupported = errors.New("model: unsupported ONNX model")
	// ErrNoCutPoint: the graph has no single-tensor cut point between its
	// input and its output, or a requested cut is not one.
	ErrNoCutPoint = errors.New("model: no cut point")
)

// MaxONNXBytes bounds the files ReadONNX accepts: protobuf cannot encode a
// message above 2 GiB, which is also where ONNX switches to external data.
const MaxONNXBytes = 2<<30 - 1

// ReadONNX reads and decodes an ONNX file; errors name the file.
func ReadONNX(path string) (*onnxpb.ModelProto, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: read ONNX: %w", err)
	}
	if st.Size() > MaxONNXBytes {
		return nil, fmt.Errorf("%w: %s: %d bytes is above the 2 GiB protobuf limit (models that large use external data, which dyno does not read)", ErrUnsupported, path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: read ONNX: %w", err)
	}
	m, err := DecodeONNX(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// DecodeONNX decodes the bytes of an ONNX file and checks what dyno needs of
// it: a graph, self-contained tensor data. A decoding failure names the byte
// offset and the field path where the bytes stop making sense, e.g.
// "at byte 1234 in graph.initializer[3].raw_data: unexpected EOF".
func DecodeONNX(data []byte) (*onnxpb.ModelProto, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrCorrupt)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		md := m.ProtoReflect().Descriptor()
		if off, where, why := locateWireError(data, 0, md, ""); off >= 0 {
			return nil, fmt.Errorf("%w: at byte %d of %d in %s: %s", ErrCorrupt, off, len(data), where, why)
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := checkModel(m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkModel rejects what decodes as protobuf but is not an ONNX model dyno
// can use. Protobuf decodes many random byte strings without error (unknown
// fields are kept), so an empty graph is the usual sign of a non-ONNX file.
func checkModel(m *onnxpb.ModelProto) error {
	g := m.GetGraph()
	if g == nil {
		return fmt.Errorf("%w: no graph (field 7 of ModelProto) in the file: not an ONNX model", ErrCorrupt)
	}
	if m.GetIrVersion() <= 0 {
		return fmt.Errorf("%w: ir_version is %d: not an ONNX model", ErrCorrupt, m.GetIrVersion())
	}
	if len(g.GetNode()) == 0 {
		return fmt.Errorf("%w: graph %q has no nodes", ErrCorrupt, g.GetName())
	}
	for i, t := range g.GetInitializer() {
		if err := checkTensorData(t, fmt.Sprintf("graph.initializer[%d] %q", i, t.GetName())); err != nil {
			return err
		}
	}
	if n := len(g.GetSparseInitializer()); n > 0 {
		return fmt.Errorf("%w: graph has %d sparse initializer(s) (first %q); dyno reads dense tensors only", ErrUnsupported, n, g.GetSparseInitializer()[0].GetValues().GetName())
	}
	for i, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			where := fmt.Sprintf("graph.node[%d] %q (%s) attribute %q", i, n.GetName(), n.GetOpType(), a.GetName())
			if a.T != nil {
				if err := checkTensorData(a.T, where); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkTensorData rejects tensors whose data lives outside the file.
func checkTensorData(t *onnxpb.TensorProto, where string) error {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(t.GetExternalData()) > 0 {
		loc := ""
		for _, e := range t.GetExternalData() {
			if e.GetKey() == "location" {
				loc = e.GetValue()
			}
		}
		return fmt.Errorf("%w: %s keeps its data in an external file %q; dyno reads self-contained ONNX files only (re-save the model with all tensors inside it, e.g. onnx.save(m, f, save_as_external_data=False), under 2 GiB)", ErrUnsupported, where, loc)
	}
	if t.GetSegment() != nil {
		return fmt.Errorf("%w: %s is a segment of a larger tensor; segmented tensors are not supported", ErrUnsupported, where)
	}
	return nil
}

// locateWireError walks the protobuf wire format of b against the message
// descriptor md and returns the absolute offset, field path and reason of the
// first malformed field, or -1 if the wire format is sound.
func locateWireError(b []byte, base int, md protoreflect.MessageDescriptor, path string) (int, string, string) {
	counts := map[protowire.Number]int{}
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return base + off, orRoot(path), "bad field tag: " + protowire.ParseError(n).Error()
		}
		name := "#" + strconv.Itoa(int(num))
		var fd protoreflect.FieldDescriptor
		if md != nil {
			fd = md.Fields().ByNumber(num)
		}
		if fd != nil {
			name = string(fd.Name())
			if fd.IsList() {
				name += "[" + strconv.Itoa(counts[num]) + "]"
				counts[num]++
			}
		}
		if path != "" {
			name = path + "." + name
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			// A truncated message field: look inside what is there for
			// the innermost field the data stops in.
			if fd != nil && typ == protowire.BytesType && fd.Kind() == protoreflect.MessageKind {
				if size, vn := protowire.ConsumeVarint(b[off+n:]); vn > 0 {
					rest := b[off+n+vn:]
					if o, p, why := locateWireError(rest, base+off+n+vn, fd.Message(), name); o >= 0 {
						return o, p, why
					}
					return base + len(b), name, fmt.Sprintf("unexpected EOF: the field declares %d bytes, %d remain (the file is truncated)", size, len(rest))
				}
			}
			return base + off, name, protowire.ParseError(m).Error()
		}
		if fd != nil && typ == protowire.BytesType && (fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind) {
			v, vn := protowire.ConsumeBytes(b[off+n:])
			if o, p, why := locateWireError(v, base+off+n+(vn-len(v)), fd.Message(), name); o >= 0 {
				return o, p, why
			}
		}
		off += n + m
	}
	return -1, "", ""
}

func orRoot(path string) string {
	if path == "" {
		return "ModelProto"
	}
	return path
}

// EncodeONNX serialises a model deterministically (the same model gives the
// same bytes, so file hashes can stamp builds).
func EncodeONNX(m *onnxpb.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("model: encode ONNX: %w", err)
	}
	if len(b) > MaxONNXBytes {
		return nil, fmt.Errorf("%w: encoded model is %d bytes, above the 2 GiB protobuf limit", ErrUnsupported, len(b))
	}
	return b, nil
}

// WriteONNX encodes m into path, through a temporary file and a rename so a
// reader never sees half a model.
func WriteONNX(path string, m *onnxpb.ModelProto) error {
	b, err := EncodeONNX(m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeFileAtomic(path, b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("model: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("model: write %s: %w", path, err)
	}
	return nil
}
