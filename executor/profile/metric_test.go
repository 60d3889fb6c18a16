package profile_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/profile"
	"github.com/dynoml/dyno/model"
)

func TestParseAndDefaultMetric(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want profile.Metric
	}{
		{"auto", profile.Metric{}},
		{"top1", profile.Metric{Kind: profile.MetricTop1, Axis: -1}},
		{"top1:1", profile.Metric{Kind: profile.MetricTop1, Axis: 1}},
		{"top5", profile.Metric{Kind: profile.MetricTopK, K: 5, Axis: -1}},
		{"topk:3", profile.Metric{Kind: profile.MetricTopK, K: 3, Axis: -1}},
		{"cosine", profile.Metric{Kind: profile.MetricCosine, Threshold: profile.DefaultCosine}},
		{"cosine:0.995", profile.Metric{Kind: profile.MetricCosine, Threshold: 0.995}},
		{"relerr:0.1", profile.Metric{Kind: profile.MetricRelErr, Threshold: 0.1}},
	} {
		got, err := profile.ParseMetric(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMetric(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"top0", "cosine:2", "relerr:-1", "f1", "top1:x"} {
		if _, err := profile.ParseMetric(bad); !errors.Is(err, profile.ErrConfig) {
			t.Errorf("ParseMetric(%q): %v, want ErrConfig", bad, err)
		}
	}
	for _, tc := range []struct {
		shape []int64
		kind  string
		axis  int
		warn  bool
	}{
		{[]int64{1, 10}, profile.MetricTop1, 1, false},
		{[]int64{1, 16, 12}, profile.MetricTop1, 2, false},
		{[]int64{1, 21, 32, 32}, profile.MetricTop1, 1, false},
		{[]int64{1, 1, 32, 32}, profile.MetricCosine, 0, false},
		{[]int64{1, 1}, profile.MetricRelErr, 0, true},
	} {
		m, why, warn := profile.DefaultMetric(tc.shape)
		if m.Kind != tc.kind || m.Axis != tc.axis || (len(warn) > 0) != tc.warn || why == "" {
			t.Errorf("DefaultMetric(%v) = %+v, %q, %v", tc.shape, m, why, warn)
		}
	}
}

// splitNet writes test net name, split at every cut point, into a folder.
func splitNet(t *testing.T, name string) string {
	t.Helper()
	z, err := model.ZooByName(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := model.WriteZooWith(z, 1, dir, model.GraphOptions{Prober: ort.Prober{Threads: 1}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A sequence output is scored per time step against per-step labels read
// from a folder of .npy inputs and labels.txt; the table records the
// samples of every entry and the metric.
func TestCalibrateLabelledSequence(t *testing.T) {
	dir := splitNet(t, "seqrec")
	chain, err := ort.OpenChain(dir, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	data := t.TempDir()
	var labels strings.Builder
	const n = 6
	for i := range n {
		x := make([]float32, 32*64)
		for j := range x {
			x[j] = float32((i*7+j*13)%29) / 29
		}
		name := fmt.Sprintf("line%02d.npy", i)
		if err := profile.WriteNpy(filepath.Join(data, name), []int64{1, 1, 32, 64}, x); err != nil {
			t.Fatal(err)
		}
		// Labels: the full-precision class of steps 0-7, class 0 after.
		y, err := chain.Run(0, chain.K(), x)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&labels, "%s", name)
		for step := range 16 {
			best := 0
			for c := range 12 {
				if y[step*12+c] > y[step*12+best] {
					best = c
				}
			}
			if step >= 8 {
				best = 0
			}
			fmt.Fprintf(&labels, " %d", best)
		}
		labels.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(data, profile.LabelsFile), []byte(labels.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var prog bytes.Buffer
	tab, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Data: data, Bits: []int{32, 2}, Threads: 1, Progress: &prog}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if tab.Metric != "label-accuracy" || tab.Samples != n {
		t.Errorf("metric %q, %d samples", tab.Metric, tab.Samples)
	}
	// The labels agree with full precision on steps 0-7 and on those of
	// 8-15 whose class is 0: at least half, not all.
	if tab.Baseline < 0.5 || tab.Baseline >= 1 {
		t.Errorf("baseline %.4f, want in [0.5, 1): scored per time step", tab.Baseline)
	}
	for _, e := range tab.Entries {
		if e.N != n {
			t.Errorf("entry %+v: n %d, want %d", e, e.N, n)
		}
		if e.Bits == 32 && (e.Accuracy != tab.Baseline || e.Agreement != 1) {
			t.Errorf("lossless entry %+v, baseline %.4f", e, tab.Baseline)
		}
	}
	if !strings.Contains(prog.String(), fmt.Sprintf("%d/%d", n, n)) {
		t.Errorf("progress %q does not reach %d/%d", prog.String(), n, n)
	}
	// Bad labels are refused with the reason.
	if err := os.WriteFile(filepath.Join(data, profile.LabelsFile), []byte("line00.npy 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Data: data, Threads: 1}, quiet()); !errors.Is(err, profile.ErrConfig) || !strings.Contains(err.Error(), "line01.npy") {
		t.Errorf("labels missing a file: %v", err)
	}
}

// A dense map is scored by cosine similarity with full precision; at 2
// bits against a strict threshold the arms are told apart; arms of bits not
// calibrated are not calibrated in the cost model, not accuracy 0.
func TestCalibrateDenseAndSubset(t *testing.T) {
	dir := splitNet(t, "unet")
	m, err := profile.ParseMetric("cosine:0.9999")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Samples: 3, Metric: m, Bits: []int{32, 2}, Threads: 1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if tab.Metric != "cosine>=0.9999-agreement" {
		t.Errorf("metric %q", tab.Metric)
	}
	low := false
	for _, e := range tab.Entries {
		if e.Bits == 2 && e.Accuracy < 1 {
			low = true
		}
		if e.N != 3 {
			t.Errorf("entry %+v: n %d", e, e.N)
		}
	}
	if !low {
		t.Errorf("no 2-bit arm falls below cosine 0.9999: %+v", tab.Entries)
	}
	mf, err := model.LoadManifest(filepath.Join(dir, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	prof := func(role costmodel.Role) *costmodel.Profile {
		p := &costmodel.Profile{Version: costmodel.ProfileVersion, Model: mf.Name, DeviceClass: "x", Role: role, Host: "h"}
		for range mf.Blocks {
			p.Blocks = append(p.Blocks, costmodel.BlockTiming{MedianMs: 1, P95Ms: 1, Runs: 1})
		}
		return p
	}
	cm, err := costmodel.New(mf, prof(costmodel.RoleDevice), prof(costmodel.RoleCloud), tab)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range cm.Arms() {
		b := cm.Bases()[i]
		if a.Bits == 8 && a.Split < mf.K() {
			if b.Calibrated {
				t.Errorf("arm %v of an uncalibrated precision counts as calibrated", a)
			}
			if ok, _ := cm.Eligible(i, costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.5}, nil); ok {
				t.Errorf("arm %v of an uncalibrated precision is eligible under a floor", a)
			}
		}
	}
}

func TestDefaultProfilePathByRole(t *testing.T) {
	dir := filepath.Join("models", "x")
	if got := profile.DefaultProfilePath(dir, "amd64-2cpu", costmodel.RoleCloud); got != filepath.Join("models", "profiles", "amd64-2cpu-cloud.json") {
		t.Errorf("cloud: %s", got)
	}
	if got := profile.DefaultProfilePath(dir, "amd64-2cpu-cloud", costmodel.RoleCloud); got != filepath.Join("models", "profiles", "amd64-2cpu-cloud.json") {
		t.Errorf("cloud class: %s", got)
	}
	if got := profile.DefaultProfilePath(dir, "jetson", costmodel.RoleDevice); got != filepath.Join("models", "profiles", "jetson.json") {
		t.Errorf("device: %s", got)
	}
}

// A metric under which every arm scores the same is a warning, and so is
// a one-element output's default metric.
func TestCalibrateWarnsWhenArmsLookAlike(t *testing.T) {
	dir := tinyDir(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Samples: 2, Bits: []int{32}, Threads: 1}, log); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"level=WARN", "cannot tell the arms apart", "metric picked from the output shape", "precisions not calibrated"} {
		if !strings.Contains(logs.String(), f) {
			t.Errorf("log does not say %q:\n%s", f, logs.String())
		}
	}
}

// The table's metric spec reads back into the metric that wrote it, and
// scores as Calibrate does: per row along the class axis.
func TestMetricSpecRoundTripsAndScoresPerRow(t *testing.T) {
	for _, m := range []profile.Metric{
		{Kind: profile.MetricTop1, Axis: 2}, {Kind: profile.MetricTopK, K: 3, Axis: 1},
		{Kind: profile.MetricCosine, Threshold: 0.995}, {Kind: profile.MetricRelErr, Threshold: 0.02},
	} {
		got, err := profile.ParseMetric(m.Spec())
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %+v, %v; want %+v", m.Spec(), got, err, m)
		}
	}
	// Two time steps of three classes: the first agrees, the second not.
	shape := []int64{1, 2, 3}
	full := []float32{0, 1, 0, 1, 0, 0}
	y := []float32{0, 2, 1, 0, 0, 1}
	top1 := profile.Metric{Kind: profile.MetricTop1, Axis: 2}
	if a := top1.Agreement(y, full, shape); a != 0.5 {
		t.Errorf("top1 per step: %g, want 0.5 (a flattened argmax would say 1)", a)
	}
	if s := top1.LabelScore(y, shape, []int{1, 2}); s != 1 {
		t.Errorf("label score %g, want 1", s)
	}
	cos := profile.Metric{Kind: profile.MetricCosine, Threshold: 0.99}
	if a := cos.Agreement(full, full, shape); a != 1 {
		t.Errorf("cosine of an output with itself: %g", a)
	}
	if a := cos.Agreement(y, full, shape); a != 0 {
		t.Errorf("cosine of a different output: %g", a)
	}
}

// .npy inputs must have the model's input shape (or be a stack of them):
// a channels-last image of the right size is refused, not reinterpreted.
func TestNpyShapes(t *testing.T) {
	dir := tinyDir(t) // input [1, 3, 32, 32]
	x := make([]float32, 2*3*32*32)
	for _, tc := range []struct {
		shape []int64
		n     int // inputs read; 0 = refused
	}{
		{[]int64{1, 3, 32, 32}, 1}, {[]int64{3, 32, 32}, 1}, {[]int64{2, 3, 32, 32}, 2},
		{[]int64{2, 1, 3, 32, 32}, 2}, {[]int64{32, 32, 3}, 0}, {[]int64{3, 1024}, 0},
	} {
		data := t.TempDir()
		n := 1
		for _, d := range tc.shape {
			n *= int(d)
		}
		if err := profile.WriteNpy(filepath.Join(data, "x.npy"), tc.shape, x[:n]); err != nil {
			t.Fatal(err)
		}
		tab, err := profile.Calibrate(context.Background(), profile.CalibrateConfig{Model: dir, Data: data, Bits: []int{32}, Threads: 1}, quiet())
		switch {
		case tc.n == 0 && !errors.Is(err, profile.ErrConfig):
			t.Errorf("shape %v: %v, want ErrConfig", tc.shape, err)
		case tc.n > 0 && err != nil:
			t.Errorf("shape %v: %v", tc.shape, err)
		case tc.n > 0 && tab.Samples != tc.n:
			t.Errorf("shape %v: %d samples, want %d", tc.shape, tab.Samples, tc.n)
		}
	}
}
