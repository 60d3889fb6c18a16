package profile_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/executor/profile"
	"github.com/dynoml/dyno/model"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tinyDir writes the zoo's tinynet into a temporary folder.
func tinyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	z, err := model.ZooByName("tinynet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.WriteZoo(z, 1, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []float64
		p    float64
		want float64
	}{
		{"median of odd", []float64{3, 1, 2}, 50, 2},
		{"median of even", []float64{4, 1, 3, 2}, 50, 2.5},
		{"p95 of 1..21", func() []float64 {
			var v []float64
			for i := 21; i >= 1; i-- {
				v = append(v, float64(i))
			}
			return v
		}(), 95, 20},
		{"single", []float64{7}, 95, 7},
		{"max", []float64{1, 9, 5}, 100, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := profile.Percentile(tc.v, tc.p); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("got %g, want %g", got, tc.want)
			}
		})
	}
	if !math.IsNaN(profile.Percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
}

func TestProfile(t *testing.T) {
	dir := tinyDir(t)
	for _, tc := range []struct {
		role     costmodel.Role
		slowdown float64
	}{{costmodel.RoleDevice, 0}, {costmodel.RoleCloud, 0}, {costmodel.RoleDevice, 3}} {
		role := tc.role
		t.Run(fmt.Sprintf("%s-slowdown%g", role, tc.slowdown), func(t *testing.T) {
			p, err := profile.Profile(context.Background(), profile.Config{Model: dir, Role: role, Runs: 3, Warmup: 1, Threads: 1, DeviceClass: "test-class", Slowdown: tc.slowdown}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(10); err != nil {
				t.Fatal(err)
			}
			if p.Role != role || p.Model != "tinynet" || p.DeviceClass != "test-class" || p.Host == "" {
				t.Errorf("profile header %+v", p)
			}
			for i, b := range p.Blocks {
				if b.MedianMs <= 0 || b.Runs != 3 {
					t.Errorf("block %d: %+v", i+1, b)
				}
			}
			if inChain := strings.Contains(p.Source, "chain order"); inChain != (tc.slowdown > 1) {
				t.Errorf("slowdown %g: source %q", tc.slowdown, p.Source)
			}
			if p.PackNsPerElement <= 0 {
				t.Errorf("pack ns/element %g", p.PackNsPerElement)
			}
		})
	}
}

func TestProfileConfigErrors(t *testing.T) {
	dir := tinyDir(t)
	for _, tc := range []struct {
		name   string
		cfg    profile.Config
		config bool // refused as a configuration (ErrConfig), before any file is read
	}{
		{"no model", profile.Config{}, true},
		{"bad role", profile.Config{Model: dir, Role: "edge"}, true},
		{"negative runs", profile.Config{Model: dir, Runs: -1}, true},
		{"pack bits", profile.Config{Model: dir, PackBits: 5}, true},
		{"slowdown below 1", profile.Config{Model: dir, Slowdown: 0.5}, true},
		{"slowdown NaN", profile.Config{Model: dir, Slowdown: math.NaN()}, true},
		{"slowdown infinite", profile.Config{Model: dir, Slowdown: math.Inf(1)}, true},
		{"missing model", profile.Config{Model: filepath.Join(dir, "nope")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := profile.Profile(context.Background(), tc.cfg, quiet())
			if err == nil || errors.Is(err, profile.ErrConfig) != tc.config {
				t.Fatalf("err %v; want an error, ErrConfig %v", err, tc.config)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := profile.Profile(ctx, profile.Config{Model: dir, Threads: 1}, quiet()); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestCalibrateRandom(t *testing.T) {
	dir := tinyDir(t)
	tab, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Samples: 3, Threads: 1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Validate(10); err != nil {
		t.Fatal(err)
	}
	if tab.Metric != "top1-agreement" || tab.Baseline != 1 || tab.Samples != 3 {
		t.Errorf("table header %+v", tab)
	}
	if len(tab.Entries) != 10*len(model.ValidBits) {
		t.Fatalf("%d entries, want every split 0..9 at %d precisions", len(tab.Entries), len(model.ValidBits))
	}
	for _, e := range tab.Entries {
		if e.Bits == 32 && (e.Agreement != 1 || e.Accuracy != 1) {
			t.Errorf("lossless arm %+v disagrees", e)
		}
		if e.CompressionRatio <= 0 || e.CompressionRatio > 1 {
			t.Errorf("arm %+v: compression ratio outside (0, 1]", e)
		}
	}
}

func TestCalibrateFileInputs(t *testing.T) {
	dir := tinyDir(t)
	in := filepath.Join(t.TempDir(), "inputs.f32")
	raw := make([]byte, 2*3*32*32*4)
	for i := 0; i < len(raw)/4; i++ {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(i%17)/17))
	}
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tab, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Data: "file:" + in, Bits: []int{32, 8}, Threads: 1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if tab.Samples != 2 || len(tab.Entries) != 20 {
		t.Errorf("%d samples, %d entries", tab.Samples, len(tab.Entries))
	}
	if err := os.WriteFile(in, raw[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  profile.CalibrateConfig
	}{
		{"ragged input file", profile.CalibrateConfig{Model: dir, Data: "file:" + in}},
		{"unknown data", profile.CalibrateConfig{Model: dir, Data: "imagenet"}},
		{"mnist on a 32x32 model", profile.CalibrateConfig{Model: dir, Data: profile.DataMNIST}},
		{"bits the packing lacks", profile.CalibrateConfig{Model: dir, Bits: []int{5}}},
		{"no model", profile.CalibrateConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := profile.Calibrate(context.Background(), tc.cfg, quiet()); !errors.Is(err, profile.ErrConfig) {
				t.Fatalf("err %v, want ErrConfig", err)
			}
		})
	}
}

// TestCalibrateMNIST calibrates the trained classifier on labelled digits:
// lossless arms keep the baseline exactly and 8 bits loses at most a point.
func TestCalibrateMNIST(t *testing.T) {
	dir := orttest.Model(t, "mnist")
	tab, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Data: profile.DataMNIST, Samples: 300, Bits: []int{32, 8, 2}, Threads: 1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if tab.Metric != "label-accuracy" || tab.Samples != 300 {
		t.Errorf("table header %+v", tab)
	}
	if tab.Baseline < 0.95 {
		t.Errorf("baseline %.4f on 300 test digits", tab.Baseline)
	}
	for _, e := range tab.Entries {
		switch e.Bits {
		case 32:
			if e.Accuracy != tab.Baseline || e.Agreement != 1 {
				t.Errorf("lossless arm %+v differs from the baseline %.4f", e, tab.Baseline)
			}
		case 8:
			if e.Accuracy < tab.Baseline-0.01 {
				t.Errorf("8-bit arm %+v loses more than a point", e)
			}
		}
	}
}
