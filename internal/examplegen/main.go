// Command examplegen writes the shipped example inputs of the cost model
// (examples/): the manifests of ResNet-50 and MobileNetV2 at 224x224 from
// their architecture tables, per-block profiles of three device classes and
// a cloud GPU derived from published throughput figures, and illustrative
// accuracy tables. `make examples` runs it; a test checks the committed files
// are what it writes.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

// Hardware is the catalogue of example device classes. Peak figures are the
// vendors' published ones; utilisation is an assumption for batch-1 CNN
// inference, stated in each source line.
var Hardware = []costmodel.Hardware{
	{
		Class: "jetson-xavier-nx", Role: costmodel.RoleDevice,
		PeakGFLOPS: 1690, Utilisation: 0.25, MemGBps: 51.2, BytesPerValue: 2, OpOverheadMs: 0.03, PackNsPerElement: 8,
		Source: "NVIDIA Jetson Xavier NX datasheet: 384 CUDA cores at 1.1 GHz (1.69 TFLOPS FP16 without tensor cores), 51.2 GB/s LPDDR4x; 25% of peak assumed at batch 1 (TensorRT FP16)",
	},
	{
		Class: "phone-high", Role: costmodel.RoleDevice,
		PeakGFLOPS: 2000, Utilisation: 0.10, MemGBps: 68, BytesPerValue: 2, OpOverheadMs: 0.10, PackNsPerElement: 6,
		Source: "flagship phone GPU (Snapdragon 8 Gen 2 class, about 2 TFLOPS FP16 as commonly reported), LPDDR5X 8533 MT/s x 64 bit = 68 GB/s; 10% of peak assumed through a mobile GPU delegate",
	},
	{
		Class: "phone-low", Role: costmodel.RoleDevice,
		PeakGFLOPS: 32, Utilisation: 0.30, MemGBps: 7.5, BytesPerValue: 4, OpOverheadMs: 0.02, PackNsPerElement: 20,
		Source: "low-end phone CPU: 4 Arm Cortex-A53 at 2.0 GHz, 64-bit NEON datapath = 4 FP32 FLOP/cycle/core (32 GFLOPS), LPDDR3-1866 x 32 bit = 7.5 GB/s; 30% of peak assumed (FP32 CPU inference)",
	},
	{
		Class: "cloud-t4", Role: costmodel.RoleCloud,
		PeakGFLOPS: 65000, Utilisation: 0.05, MemGBps: 320, BytesPerValue: 2, OpOverheadMs: 0.01, PackNsPerElement: 2,
		Source: "NVIDIA T4 datasheet: 65 TFLOPS FP16 (tensor cores), 320 GB/s GDDR6; 5% of peak assumed at batch 1, which puts ResNet-50 near the 2 ms NVIDIA reports for batch-1 TensorRT FP16",
	},
}

// baselineTop1 is the published ImageNet top-1 of the reference weights.
var baselineTop1 = map[string]float64{
	"resnet50":    0.7613, // torchvision ResNet50_Weights.IMAGENET1K_V1
	"mobilenetv2": 0.7188, // torchvision MobileNet_V2_Weights.IMAGENET1K_V1
}

// dropPP is the assumed top-1 loss in percentage points of quantising one
// intermediate activation at a mid-network split, shaped after published
// post-training activation quantisation results: 8 bits is nearly free,
// 4 bits costs a couple of points, 2 bits is ruinous.
var dropPP = map[int]float64{16: 0, 8: 0.1, 6: 0.4, 4: 2.0, 3: 6.0, 2: 20.0}

// inputDropPP is the same for the input image (split 0): it is 8-bit data,
// so 8 and 16 bits lose nothing and fewer bits lose more than mid-network.
var inputDropPP = map[int]float64{16: 0, 8: 0, 6: 0.3, 4: 3.0, 3: 10.0, 2: 30.0}

// Accuracy returns the illustrative accuracy table of m: the loss shrinks
// towards the end of the network, where activations are more redundant.
func Accuracy(m *model.Manifest) *costmodel.AccuracyTable {
	base := baselineTop1[m.Name]
	t := &costmodel.AccuracyTable{
		Version: costmodel.AccuracyVersion, Model: m.Name, Metric: "top1-imagenet", Baseline: base,
		Source: "illustrative: published top-1 of the reference weights minus an assumed loss per precision and depth; run `dyno-executor calibrate` for a measured table",
	}
	k := m.K()
	for s := 0; s < k; s++ {
		for _, b := range m.AllowedBits {
			if b == 32 {
				continue
			}
			d := inputDropPP[b]
			if s > 0 {
				d = dropPP[b] * (1.2 - 0.4*float64(s)/float64(k))
			}
			acc := math.Max(0, base-d/100)
			t.Entries = append(t.Entries, costmodel.AccuracyEntry{
				Split: s, Bits: b,
				Accuracy:  round4(acc),
				Agreement: round4(math.Max(0, 1-1.5*d/100)),
			})
		}
	}
	return t
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

func main() {
	out := flag.String("out", "examples", "folder to write into")
	flag.Parse()
	if err := Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "examplegen:", err)
		os.Exit(1)
	}
}

// Write writes every example file under dir.
func Write(dir string) error {
	for _, arch := range []*model.Arch{model.ResNet50(), model.MobileNetV2()} {
		m, err := arch.Manifest()
		if err != nil {
			return err
		}
		d := filepath.Join(dir, arch.Name)
		if err := os.MkdirAll(filepath.Join(d, "profiles"), 0o755); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(d, "model.json"), m); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(d, "accuracy.json"), Accuracy(m)); err != nil {
			return err
		}
		for _, hw := range Hardware {
			p, err := costmodel.DeriveProfile(arch, hw)
			if err != nil {
				return err
			}
			if err := writeJSON(filepath.Join(d, "profiles", hw.Class+".json"), p); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := costmodel.WriteJSON(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
