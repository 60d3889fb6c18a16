package ort

import (
	"errors"
	"fmt"
	"strings"

	onnx "github.com/yalue/onnxruntime_go"
)

// Provider names an ONNX Runtime execution provider a session runs on.
type Provider string

// Providers.
const (
	// ProviderCPU is ONNX Runtime's default CPU provider; every build has it.
	ProviderCPU Provider = "cpu"
	// ProviderCUDA runs on an NVIDIA GPU through CUDA and cuDNN. It needs a
	// GPU build of the library (onnxruntime-linux-x64-gpu-1.24.x.tgz of
	// the ONNX Runtime releases) with its libonnxruntime_providers_cuda.so
	// and libonnxruntime_providers_shared.so beside it.
	ProviderCUDA Provider = "cuda"
	// ProviderTensorRT runs through TensorRT (ops it lacks fall back to
	// CUDA, then CPU). It needs the GPU build with
	// libonnxruntime_providers_tensorrt.so and the TensorRT libraries.
	ProviderTensorRT Provider = "tensorrt"
)

// Providers lists the providers a session can ask for.
var Providers = []Provider{ProviderCPU, ProviderCUDA, ProviderTensorRT}

// ErrNoProvider is returned when a provider is unknown, or when the loaded
// library cannot give it (a CPU-only build asked for CUDA, say).
var ErrNoProvider = errors.New("ort: execution provider not available")

// ParseProvider reads a provider name ("" is the CPU).
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return ProviderCPU, nil
	case ProviderCPU, ProviderCUDA, ProviderTensorRT:
		return p, nil
	}
	return "", fmt.Errorf("%w: %q is none of cpu, cuda, tensorrt", ErrNoProvider, s)
}

// appendProvider adds p to session options; the CPU provider needs nothing.
func appendProvider(so *onnx.SessionOptions, p Provider, device int) error {
	switch p {
	case "", ProviderCPU:
		return nil
	case ProviderCUDA:
		o, err := onnx.NewCUDAProviderOptions()
		if err != nil {
			return missing(p, err)
		}
		defer o.Destroy()
		if err := o.Update(map[string]string{"device_id": fmt.Sprint(device)}); err != nil {
			return missing(p, err)
		}
		if err := so.AppendExecutionProviderCUDA(o); err != nil {
			return missing(p, err)
		}
		return nil
	case ProviderTensorRT:
		o, err := onnx.NewTensorRTProviderOptions()
		if err != nil {
			return missing(p, err)
		}
		defer o.Destroy()
		if err := o.Update(map[string]string{"device_id": fmt.Sprint(device)}); err != nil {
			return missing(p, err)
		}
		if err := so.AppendExecutionProviderTensorRT(o); err != nil {
			return missing(p, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %q is none of cpu, cuda, tensorrt", ErrNoProvider, p)
}

// missing explains a provider the library could not give: which library
// was loaded, what it said, and what a GPU build needs.
func missing(p Provider, cause error) error {
	v, path := Version()
	need := "libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside it, and CUDA and cuDNN 9 installed"
	if p == ProviderTensorRT {
		need = "libonnxruntime_providers_tensorrt.so, libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside it, and CUDA, cuDNN 9 and TensorRT 10 installed"
	}
	return fmt.Errorf("%w: %s: the ONNX Runtime %s library at %s cannot give it (%v); it needs a GPU build of ONNX Runtime 1.24 "+
		"(onnxruntime-linux-x64-gpu-1.24.x.tgz for CUDA 12, or ..._cuda13 for CUDA 13, from github.com/microsoft/onnxruntime/releases; docs/deploy.md) "+
		"with %s, selected with ORT_LIB=/path/to/lib/libonnxruntime.so.1",
		ErrNoProvider, p, v, path, cause, need)
}
