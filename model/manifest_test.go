package model_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/dynoml/dyno/model"
)

// TestArchitectureFigures checks the architecture tables against the
// published figures: ResNet-50 has 4.1 G multiply-adds and 25.6 M parameters
// (torchvision, with batch norm; ours folds it into a conv bias), MobileNetV2
// 300 M multiply-adds and 3.4-3.5 M parameters (Sandler et al., Table 4;
// torchvision 3.5 M).
func TestArchitectureFigures(t *testing.T) {
	cases := []struct {
		arch          *model.Arch
		blocks        int
		gmacs, mparam float64
		lastSpatial   []int64
	}{
		{model.ResNet50(), 18, 4.09, 25.56, []int64{1, 2048, 7, 7}},
		{model.MobileNetV2(), 20, 0.300, 3.50, []int64{1, 1280, 7, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.arch.Name, func(t *testing.T) {
			m, err := tc.arch.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.K() != tc.blocks {
				t.Errorf("%d blocks, want %d", m.K(), tc.blocks)
			}
			// FLOPs count 2 per multiply-add plus bias, add and pooling
			// ops, so half of them is a little over the MAC count.
			gmacs := float64(m.TotalFLOPs()) / 2 / 1e9
			if math.Abs(gmacs-tc.gmacs)/tc.gmacs > 0.03 {
				t.Errorf("%.3f G multiply-adds, published %.3f", gmacs, tc.gmacs)
			}
			mparams := float64(m.TotalParams()) / 1e6
			if math.Abs(mparams-tc.mparam)/tc.mparam > 0.02 {
				t.Errorf("%.3f M parameters, published %.3f", mparams, tc.mparam)
			}
			if got := m.Blocks[m.K()-2].Output.Shape; !equal(got, tc.lastSpatial) {
				t.Errorf("last feature map %v, want %v", got, tc.lastSpatial)
			}
			if got := m.Blocks[m.K()-1].Output.Elements; got != 1000 {
				t.Errorf("%d outputs, want 1000 classes", got)
			}
			if m.Elements(0) != 3*224*224 {
				t.Errorf("input elements %d", m.Elements(0))
			}
		})
	}
}

func equal(a, b []int64) bool {
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

func TestManifestRoundTripAndValidation(t *testing.T) {
	m, err := model.ResNet50().Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := model.WriteManifest(&buf, m); err != nil {
		t.Fatal(err)
	}
	back, err := model.ReadManifest(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if back.K() != m.K() || back.TotalFLOPs() != m.TotalFLOPs() || back.Input.Elements != m.Input.Elements {
		t.Fatalf("round trip changed the manifest")
	}
	good := buf.String()
	cases := []struct{ name, from, to, want string }{
		{"unknown bits", `"allowed_bits": [`, `"allowed_bits": [5, `, "allowed_bits[0]: unknown precision 5"},
		{"unknown field", `"blocks": [`, `"blocks": [], "x": [`, `unknown field "x"`},
		{"bad dimension", `"shape": [`, `"shape": [0, `, "is not a positive dimension"},
		{"negative flops", `"flops": 238436352`, `"flops": -1`, "blocks[0].flops: negative"},
		{"wrong version", `"version": 1`, `"version": 9`, "version: got 9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, tc.from, tc.to, 1)
			if doc == good {
				t.Fatalf("mutation %q did not apply", tc.from)
			}
			_, err := model.ReadManifest(strings.NewReader(doc))
			if err == nil || !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalidManifest saying %q", err, tc.want)
			}
		})
	}
	if _, err := model.ReadManifest(strings.NewReader(good[:len(good)/2])); err == nil {
		t.Fatal("truncated manifest accepted")
	}
	empty := *m
	empty.Blocks = nil
	doc, err := json.Marshal(&empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.ReadManifest(bytes.NewReader(doc)); !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), "blocks: empty") {
		t.Fatalf("no blocks: err %v, want ErrInvalidManifest saying blocks: empty", err)
	}
}
