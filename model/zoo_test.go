package model_test

import (
	"fmt"
	"testing"

	"github.com/dynoml/dyno/model"
)

// The published figures of the zoo's architectures, at 224x224 with 1000
// classes: ResNet-50 (He et al. 2016) 4.1 G multiply-adds and 25.5 M
// parameters; MobileNetV2 1.0 (Sandler et al. 2018) 300 M multiply-adds and
// 3.4-3.5 M parameters.
func TestZooFigures(t *testing.T) {
	for _, tc := range []struct {
		name             string
		macsLo, macsHi   float64
		paramLo, paramHi float64
		blocks           int
		// Largest activation a split sends (elements).
		maxElements int64
	}{
		{"resnet50", 4.05e9, 4.15e9, 25.4e6, 25.6e6, 18, 802816},
		{"mobilenetv2", 0.295e9, 0.310e9, 3.4e6, 3.5e6, 20, 401408},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z, err := model.ZooByName(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			am, err := z.Arch().Manifest()
			if err != nil {
				t.Fatal(err)
			}
			macs := float64(am.TotalFLOPs()) / 2
			params := float64(am.TotalParams())
			t.Logf("%s: %.4g G multiply-adds (%.4g GFLOPs), %.4g M params, %d blocks", tc.name, macs/1e9, 2*macs/1e9, params/1e6, am.K())
			if macs < tc.macsLo || macs > tc.macsHi {
				t.Errorf("%.4g multiply-adds outside [%.4g, %.4g]", macs, tc.macsLo, tc.macsHi)
			}
			if params < tc.paramLo || params > tc.paramHi {
				t.Errorf("%.4g params outside [%.4g, %.4g]", params, tc.paramLo, tc.paramHi)
			}
			if am.K() != tc.blocks {
				t.Errorf("%d blocks, want %d", am.K(), tc.blocks)
			}
			var mx int64
			for s := 1; s < am.K(); s++ {
				mx = max(mx, am.Elements(s))
			}
			if mx != tc.maxElements {
				t.Errorf("largest activation %d elements, want %d", mx, tc.maxElements)
			}
		})
	}
}

// Splitting a generated zoo model at its units gives the architecture
// table's manifest: the same blocks, shapes, FLOPs and parameters.
func TestZooSplitMatchesArchitecture(t *testing.T) {
	for _, z := range model.Zoo() {
		if z.Arch == nil {
			continue
		}
		t.Run(z.Name, func(t *testing.T) {
			m, s, err := model.ZooSplit(z, 1)
			if err != nil {
				t.Fatal(err)
			}
			am, err := z.Arch().Manifest()
			if err != nil {
				t.Fatal(err)
			}
			got := s.Manifest
			if got.K() != am.K() {
				t.Fatalf("%d blocks, the architecture has %d", got.K(), am.K())
			}
			if fmt.Sprint(got.Input.Shape) != fmt.Sprint(am.Input.Shape) {
				t.Errorf("input %v, want %v", got.Input.Shape, am.Input.Shape)
			}
			for i := range am.Blocks {
				g, w := got.Blocks[i], am.Blocks[i]
				if g.FLOPs != w.FLOPs || g.Params != w.Params || fmt.Sprint(g.Output.Shape) != fmt.Sprint(w.Output.Shape) || g.Output.Name != w.Output.Name {
					t.Errorf("block %d (%s): %s %v %d FLOPs %d params; architecture: %s %v %d FLOPs %d params",
						i+1, w.Name, g.Output.Name, g.Output.Shape, g.FLOPs, g.Params, w.Output.Name, w.Output.Shape, w.FLOPs, w.Params)
				}
			}
			if got.Classes != 1000 {
				t.Errorf("classes %d", got.Classes)
			}
			// Every weight of the model lands in exactly one block (the
			// scalar ReLU6 bounds are copied into each block that clips).
			seen := map[string]int{}
			for _, b := range s.Blocks {
				for _, it := range b.GetGraph().GetInitializer() {
					seen[it.GetName()]++
				}
			}
			for _, it := range m.GetGraph().GetInitializer() {
				n := seen[it.GetName()]
				if n == 0 || (n > 1 && len(it.GetDims()) > 0) {
					t.Errorf("initializer %s is in %d blocks", it.GetName(), n)
				}
			}
		})
	}
}

func TestZooIsSeeded(t *testing.T) {
	a, err := model.TinyNet(7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := model.TinyNet(7)
	c, _ := model.TinyNet(8)
	ab, _ := model.EncodeONNX(a)
	bb, _ := model.EncodeONNX(b)
	cb, _ := model.EncodeONNX(c)
	if string(ab) != string(bb) {
		t.Error("the same seed gave different models")
	}
	if string(ab) == string(cb) {
		t.Error("different seeds gave the same model")
	}
	if _, err := model.ZooByName("vgg"); err == nil {
		t.Error("unknown zoo model: no error")
	}
}
