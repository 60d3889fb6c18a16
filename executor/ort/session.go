package ort

import (
	"errors"
	"fmt"
	"os"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// ErrShape is returned when a run is given an input of the wrong size.
var ErrShape = errors.New("ort: input size does not match the model")

// Options configure a session. The zero value uses ONNX Runtime's defaults
// (all cores, full graph optimisation).
type Options struct {
	// Threads is the intra-op thread count; 0 lets ONNX Runtime choose.
	Threads int
	// Spin lets ONNX Runtime's worker threads busy-wait between runs,
	// trading CPU for a little latency. Off by default: on a shared or
	// small machine the spinning threads steal the cores the next run
	// needs.
	Spin bool
	// Provider is the execution provider ("" or ProviderCPU: the CPU).
	Provider Provider
	// Device is the GPU the CUDA and TensorRT providers run on.
	Device int
}

// Session runs one single-input, single-output float32 model (a block or a
// whole model) with static shapes, with its input and output tensors
// allocated once. It is safe for concurrent use: runs are serialised.
type Session struct {
	mu       sync.Mutex
	name     string
	inName   string
	outName  string
	inShape  []int64
	outShape []int64
	in       *onnx.Tensor[float32]
	out      *onnx.Tensor[float32]
	s        *onnx.AdvancedSession
}

// Open loads an ONNX file into a session.
func Open(path string, opt Options) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	s, err := OpenBytes(data, path, opt)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenBytes loads a serialised ONNX model; name labels errors.
func OpenBytes(data []byte, name string, opt Options) (*Session, error) {
	if err := Init(""); err != nil {
		return nil, err
	}
	ins, outs, err := onnx.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: read inputs and outputs: %w", name, err)
	}
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("ort: %s: has %d inputs and %d outputs; a block has one of each", name, len(ins), len(outs))
	}
	for _, io := range []onnx.InputOutputInfo{ins[0], outs[0]} {
		if io.DataType != onnx.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("ort: %s: tensor %q is %v, not float32", name, io.Name, io.DataType)
		}
		for _, d := range io.Dimensions {
			if d <= 0 {
				return nil, fmt.Errorf("ort: %s: tensor %q has a dynamic shape %v; blocks have static shapes", name, io.Name, io.Dimensions)
			}
		}
	}
	s := &Session{
		name:     name,
		inName:   ins[0].Name,
		outName:  outs[0].Name,
		inShape:  append([]int64(nil), ins[0].Dimensions...),
		outShape: append([]int64(nil), outs[0].Dimensions...),
	}
	if s.in, err = onnx.NewEmptyTensor[float32](onnx.NewShape(s.inShape...)); err != nil {
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	if s.out, err = onnx.NewEmptyTensor[float32](onnx.NewShape(s.outShape...)); err != nil {
		s.in.Destroy()
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	so, err := onnx.NewSessionOptions()
	if err != nil {
		s.destroyTensors()
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	defer so.Destroy()
	if !opt.Spin {
		for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			if err := so.AddSessionConfigEntry(k, "0"); err != nil {
				s.destroyTensors()
				return nil, fmt.Errorf("ort: %s: %w", name, err)
			}
		}
	}
	if opt.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opt.Threads); err != nil {
			s.destroyTensors()
			return nil, fmt.Errorf("ort: %s: %w", name, err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			s.destroyTensors()
			return nil, fmt.Errorf("ort: %s: %w", name, err)
		}
	}
	if err := appendProvider(so, opt.Provider, opt.Device); err != nil {
		s.destroyTensors()
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	s.s, err = onnx.NewAdvancedSessionWithONNXData(data, []string{s.inName}, []string{s.outName},
		[]onnx.Value{s.in}, []onnx.Value{s.out}, so)
	if err != nil {
		s.destroyTensors()
		return nil, fmt.Errorf("ort: %s: create session: %w", name, err)
	}
	return s, nil
}

func (s *Session) destroyTensors() {
	s.in.Destroy()
	s.out.Destroy()
}

// InputShape is the static shape of the input.
func (s *Session) InputShape() []int64 { return append([]int64(nil), s.inShape...) }

// OutputShape is the static shape of the output.
func (s *Session) OutputShape() []int64 { return append([]int64(nil), s.outShape...) }

// InputName and OutputName are the tensors' names in the model.
func (s *Session) InputName() string  { return s.inName }
func (s *Session) OutputName() string { return s.outName }

// InputElements is the number of float32 values a run takes.
func (s *Session) InputElements() int { return len(s.in.GetData()) }

// OutputElements is the number of float32 values a run gives.
func (s *Session) OutputElements() int { return len(s.out.GetData()) }

// Run runs the model on x and writes the output into dst, which is grown
// if it is too short; it returns dst.
func (s *Session) Run(dst, x []float32) ([]float32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil, fmt.Errorf("ort: %s: session is closed", s.name)
	}
	in := s.in.GetData()
	if len(x) != len(in) {
		return nil, fmt.Errorf("%w: %s takes %d values (%v), got %d", ErrShape, s.name, len(in), s.inShape, len(x))
	}
	copy(in, x)
	if err := s.s.Run(); err != nil {
		return nil, fmt.Errorf("ort: %s: run: %w", s.name, err)
	}
	out := s.out.GetData()
	if cap(dst) < len(out) {
		dst = make([]float32, len(out))
	}
	dst = dst[:len(out)]
	copy(dst, out)
	return dst, nil
}

// Close releases the session. Closing twice is a no-op.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	s.destroyTensors()
	return err
}
