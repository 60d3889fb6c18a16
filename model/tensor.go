package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/dynoml/dyno/model/onnxpb"
)

// ONNX element types dyno names (TensorProto.DataType).
const (
	dtFloat   = int32(onnxpb.TensorProto_FLOAT)
	dtInt32   = int32(onnxpb.TensorProto_INT32)
	dtInt64   = int32(onnxpb.TensorProto_INT64)
	dtFloat16 = int32(onnxpb.TensorProto_FLOAT16)
	dtDouble  = int32(onnxpb.TensorProto_DOUBLE)
	dtBF16    = int32(onnxpb.TensorProto_BFLOAT16)
)

// elemSize is the byte size of one element of a fixed-size ONNX type, 0 for
// strings and unknown types.
func elemSize(dt int32) int {
	switch onnxpb.TensorProto_DataType(dt) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 4
	case onnxpb.TensorProto_UINT8, onnxpb.TensorProto_INT8, onnxpb.TensorProto_BOOL:
		return 1
	case onnxpb.TensorProto_UINT16, onnxpb.TensorProto_INT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return 2
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_UINT64, onnxpb.TensorProto_COMPLEX64:
		return 8
	case onnxpb.TensorProto_COMPLEX128:
		return 16
	}
	return 0
}

func isFloatType(dt int32) bool {
	return dt == dtFloat || dt == dtFloat16 || dt == dtDouble || dt == dtBF16
}

func dtypeName(dt int32) string {
	if n, ok := onnxpb.TensorProto_DataType_name[dt]; ok {
		return n
	}
	return fmt.Sprintf("type %d", dt)
}

// numElements multiplies dims, rejecting negative dimensions and overflow.
func numElements(dims []int64) (int64, error) {
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("dims[%d] = %d is negative", i, d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("dims %v overflow", dims)
		}
		n *= d
	}
	return n, nil
}

// checkTensorSize verifies that a tensor holds as many elements as its dims
// say, so later reads cannot run past its data.
func checkTensorSize(t *onnxpb.TensorProto, where string) error {
	n, err := numElements(t.GetDims())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, where, err)
	}
	dt := t.GetDataType()
	if raw := t.GetRawData(); t.RawData != nil {
		sz := elemSize(dt)
		if sz == 0 {
			return fmt.Errorf("%w: %s: raw data of element type %s", ErrUnsupported, where, dtypeName(dt))
		}
		if int64(len(raw)) != n*int64(sz) {
			return fmt.Errorf("%w: %s: %d bytes of raw data, but dims %v of %s need %d", ErrCorrupt, where, len(raw), t.GetDims(), dtypeName(dt), n*int64(sz))
		}
		return nil
	}
	var have int
	switch onnxpb.TensorProto_DataType(dt) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_COMPLEX64:
		have = len(t.GetFloatData())
	case onnxpb.TensorProto_INT64:
		have = len(t.GetInt64Data())
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_COMPLEX128:
		have = len(t.GetDoubleData())
	case onnxpb.TensorProto_UINT32, onnxpb.TensorProto_UINT64:
		have = len(t.GetUint64Data())
	case onnxpb.TensorProto_STRING:
		have = len(t.GetStringData())
	case onnxpb.TensorProto_UNDEFINED:
		return fmt.Errorf("%w: %s: element type UNDEFINED", ErrCorrupt, where)
	default:
		have = len(t.GetInt32Data())
	}
	if dt == int32(onnxpb.TensorProto_COMPLEX64) || dt == int32(onnxpb.TensorProto_COMPLEX128) {
		n *= 2 // real and imaginary parts
	}
	if int64(have) != n {
		return fmt.Errorf("%w: %s: %d values, but dims %v need %d", ErrCorrupt, where, have, t.GetDims(), n)
	}
	return nil
}

// floatData returns the values of a FLOAT tensor.
func floatData(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != dtFloat {
		return nil, fmt.Errorf("tensor %q is %s, not FLOAT", t.GetName(), dtypeName(t.GetDataType()))
	}
	if t.RawData != nil {
		raw := t.GetRawData()
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	return append([]float32(nil), t.GetFloatData()...), nil
}

// intData returns the values of an INT64 or INT32 tensor as int64.
func intData(t *onnxpb.TensorProto) ([]int64, error) {
	switch t.GetDataType() {
	case dtInt64:
		if t.RawData != nil {
			raw := t.GetRawData()
			out := make([]int64, len(raw)/8)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return out, nil
		}
		return append([]int64(nil), t.GetInt64Data()...), nil
	case dtInt32:
		if t.RawData != nil {
			raw := t.GetRawData()
			out := make([]int64, len(raw)/4)
			for i := range out {
				out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			}
			return out, nil
		}
		out := make([]int64, len(t.GetInt32Data()))
		for i, v := range t.GetInt32Data() {
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %s, not an integer tensor", t.GetName(), dtypeName(t.GetDataType()))
}

// FloatTensor builds a FLOAT initializer with little-endian raw data.
func FloatTensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: &name, Dims: append([]int64{}, dims...), DataType: ptr(dtFloat), RawData: raw}
}

// Int64Tensor builds an INT64 initializer.
func Int64Tensor(name string, dims []int64, data []int64) *onnxpb.TensorProto {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &onnxpb.TensorProto{Name: &name, Dims: append([]int64{}, dims...), DataType: ptr(dtInt64), RawData: raw}
}

// FloatValues returns the values of a FLOAT tensor (raw or typed storage).
func FloatValues(t *onnxpb.TensorProto) ([]float32, error) {
	if err := checkTensorSize(t, fmt.Sprintf("tensor %q", t.GetName())); err != nil {
		return nil, err
	}
	return floatData(t)
}

func ptr[T any](v T) *T { return &v }
