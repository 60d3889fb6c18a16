package bandit_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

// synthModel builds a cost model of a synthetic chain of `blocks` blocks
// with the given precisions (32 must be among them): activations shrink
// along the chain, compute is spread over it, the device is about 40 times
// slower than the cloud. It has blocks*len(bits)+1 arms.
func synthModel(tb testing.TB, blocks int, bits []int) *costmodel.Model {
	tb.Helper()
	m := &model.Manifest{
		Version: model.ManifestVersion, Name: "synth", Input: model.NewTensor("input", 1, 3, 224, 224),
		AllowedBits: bits, Classes: 1000,
	}
	dev := &costmodel.Profile{Version: costmodel.ProfileVersion, Model: "synth", DeviceClass: "phone", Role: costmodel.RoleDevice, Host: "derived"}
	cloud := &costmodel.Profile{Version: costmodel.ProfileVersion, Model: "synth", DeviceClass: "gpu", Role: costmodel.RoleCloud, Host: "derived"}
	acc := &costmodel.AccuracyTable{Version: costmodel.AccuracyVersion, Model: "synth", Metric: "label-accuracy", Baseline: 0.76, Samples: 20000}
	drop := map[int]float64{16: 0, 8: 0.001, 6: 0.004, 4: 0.02, 3: 0.06, 2: 0.2}
	for i := 0; i < blocks; i++ {
		c := int64(64 << (i * 4 / blocks))
		hw := int64(112 >> (i * 4 / blocks))
		m.Blocks = append(m.Blocks, model.Block{
			Name: fmt.Sprintf("b%d", i), Output: model.NewTensor(fmt.Sprintf("t%d", i), 1, c, hw, hw),
			FLOPs: 4e8 + int64(i)*1e7, Params: 1e5,
		})
		ms := float64(m.Blocks[i].FLOPs) / 1e9 * 100
		dev.Blocks = append(dev.Blocks, costmodel.BlockTiming{MedianMs: ms, P95Ms: 1.2 * ms})
		cloud.Blocks = append(cloud.Blocks, costmodel.BlockTiming{MedianMs: ms / 40, P95Ms: 1.2 * ms / 40})
	}
	for s := 0; s < blocks; s++ {
		for _, b := range bits {
			if b == 32 {
				continue
			}
			acc.Entries = append(acc.Entries, costmodel.AccuracyEntry{Split: s, Bits: b, Accuracy: 0.76 - drop[b], Agreement: 1 - drop[b]})
		}
	}
	cm, err := costmodel.New(m, dev, cloud, acc)
	if err != nil {
		tb.Fatal(err)
	}
	return cm
}

// mobileNet builds the MobileNetV2 cost model from the architecture table
// with roofline profiles of a low-end phone and a T4 and a synthetic
// calibration (141 arms).
func mobileNet(tb testing.TB) *costmodel.Model {
	tb.Helper()
	arch := model.MobileNetV2()
	m, err := arch.Manifest()
	if err != nil {
		tb.Fatal(err)
	}
	dev, err := costmodel.DeriveProfile(arch, costmodel.Hardware{Class: "phone-low", Role: costmodel.RoleDevice,
		PeakGFLOPS: 32, Utilisation: 0.3, MemGBps: 7.5, BytesPerValue: 4, OpOverheadMs: 0.05, Source: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	cloud, err := costmodel.DeriveProfile(arch, costmodel.Hardware{Class: "t4", Role: costmodel.RoleCloud,
		PeakGFLOPS: 65000, Utilisation: 0.05, MemGBps: 320, BytesPerValue: 2, OpOverheadMs: 0.01, Source: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	acc := &costmodel.AccuracyTable{Version: costmodel.AccuracyVersion, Model: m.Name, Metric: "label-accuracy", Baseline: 0.7188, Samples: 50000}
	drop := map[int]float64{16: 0, 8: 0.001, 6: 0.004, 4: 0.02, 3: 0.06, 2: 0.2}
	for s := 0; s < m.K(); s++ {
		for _, b := range m.AllowedBits {
			if b != 32 {
				acc.Entries = append(acc.Entries, costmodel.AccuracyEntry{Split: s, Bits: b, Accuracy: 0.7188 - drop[b], Agreement: 1 - drop[b]})
			}
		}
	}
	cm, err := costmodel.New(m, dev, cloud, acc)
	if err != nil {
		tb.Fatal(err)
	}
	return cm
}

// truthStages are the stages an executor would measure for arm i: the cost
// model's prediction under cond with the device `slow` times slower.
func truthStages(cm *costmodel.Model, i int, cond costmodel.Conditions, slow float64) costmodel.Stages {
	c := cond
	c.DeviceSlowdown = slow
	return cm.Predict(i, c)
}

func approx(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
