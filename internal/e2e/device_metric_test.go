package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/device/client"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/profile"
	"github.com/dynoml/dyno/model"
)

// seqrecFolder builds the sequence recogniser test net (16 time steps of
// 12 classes), splits it at every cut, profiles it for the device and the
// cloud class and calibrates it on random inputs: a model folder the
// controller and the executors take.
func seqrecFolder(t *testing.T, ctx context.Context) string {
	t.Helper()
	z, err := model.ZooByName("seqrec")
	if err != nil {
		t.Fatal(err)
	}
	m, err := z.Build(1)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	src := filepath.Join(root, "seqrec.onnx")
	if err := model.WriteONNX(src, m); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "seqrec")
	if _, err := model.SplitFile(src, dir, model.GraphOptions{Prober: ort.Prober{Threads: 1}}, model.SplitOptions{MaxCuts: 3}, false); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	write := func(path string, v any) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := costmodel.WriteJSON(f, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, role := range []costmodel.Role{costmodel.RoleDevice, costmodel.RoleCloud} {
		class := "amd64-2cpu"
		if role == costmodel.RoleCloud {
			class += "-cloud"
		}
		p, err := profile.Profile(ctx, profile.Config{Model: dir, Role: role, DeviceClass: class, Warmup: 1, Runs: 3, Threads: 1}, log)
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(dir, "profiles", class+".json"), p)
	}
	acc, err := profile.Calibrate(ctx, profile.CalibrateConfig{Model: dir, Samples: 8, Threads: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	if acc.MetricSpec != "top1:2" {
		t.Fatalf("calibration of seqrec recorded metric %q, want top1:2 (per time step)", acc.MetricSpec)
	}
	write(filepath.Join(dir, "accuracy.json"), acc)
	return dir
}

// rowArgmax is the class of every time step of a [1, T, C] output.
func rowArgmax(y []float32, classes int) []int {
	out := make([]int, len(y)/classes)
	for r := range out {
		row := y[r*classes : (r+1)*classes]
		for c := range row {
			if row[c] > row[out[r]] {
				out[r] = c
			}
		}
	}
	return out
}

// TestDeviceAPIScoresPerTimeStep serves the sequence recogniser through
// the Device API on loopback and checks that labels, feedback labels and
// shadow agreement are scored per time step, as the accuracy table was
// calibrated (top1 along the class axis), not by one argmax over the
// flattened output: 4 wrong steps of 16 score 0.75; a lossy arm's shadow
// signal is the share of steps whose class agrees with full precision.
func TestDeviceAPIScoresPerTimeStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := seqrecFolder(t, ctx)
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), dir)
	defer ctl.Stop(context.Background())
	chain, err := ort.OpenChain(dir, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	cm, err := costmodel.LoadDir(dir, "amd64-2cpu", "amd64-2cpu-cloud")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := api.Dial(ctl.Addr(), api.DialOptions{Token: executorSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := &fixture{dir: dir, chain: chain, cm: cm, cloud: startCloud(t, chain), control: api.NewExecutorClient(conn)}
	admin, err := api.Dial(ctl.Addr(), api.DialOptions{Token: adminSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := api.NewAdminClient(admin)

	const steps, classes = 16, 12
	shape := cm.Manifest.Input.Shape
	k := cm.Manifest.K()
	rng := rand.New(rand.NewPCG(7, 7))
	input := func() []float32 {
		x := make([]float32, cm.Manifest.Input.Elements)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	// pin serves every request of a with arm, waiting for the pin to
	// reach the executor.
	pin := func(a *device.Agent, c *client.Client, arm costmodel.Arm) {
		t.Helper()
		if _, err := adm.Pin(ctx, &api.PinRequest{Key: a.Key(), Arm: &api.Arm{Split: uint32(arm.Split), Bits: uint32(arm.Bits)}, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			resp, err := c.Infer(ctx, client.Input{X: input(), Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			if int(resp.GetArm().GetSplit()) == arm.Split && int(resp.GetArm().GetBits()) == arm.Bits {
				return
			}
			if i > 200 {
				t.Fatalf("arm %v: the pin never reached the executor (still %v)", arm, resp.GetArm())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Labels at full precision: 12 of 16 steps right.
	a := f.realAgent(t, ctx, "seq-phone", device.Config{Seed: 1, FeedbackWindow: time.Minute})
	c := serveDevice(t, ctx, a)
	desc, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if desc.GetMetricSpec() != "top1:2" || desc.GetLabelRows() != steps {
		t.Errorf("describe: metric %q with %d label rows, want top1:2 with %d", desc.GetMetricSpec(), desc.GetLabelRows(), steps)
	}
	pin(a, c, costmodel.Arm{Split: k, Bits: 32})
	labels := func(x []float32) []int32 {
		full, err := chain.Run(0, k, x)
		if err != nil {
			t.Fatal(err)
		}
		l := make([]int32, steps)
		for r, cl := range rowArgmax(full, classes) {
			l[r] = int32(cl)
			if r%4 == 0 {
				l[r] = int32((cl + 1) % classes)
			}
		}
		return l
	}
	x := input()
	if _, err := c.Infer(ctx, client.Input{X: x, Shape: shape, Labels: labels(x), RequestID: "labelled"}); err != nil {
		t.Fatal(err)
	}
	y := input()
	if _, err := c.Infer(ctx, client.Input{X: y, Shape: shape, RequestID: "later"}); err != nil {
		t.Fatal(err)
	}
	fb, err := c.Labels(ctx, "later", labels(y))
	if err != nil {
		t.Fatal(err)
	}
	if fb.GetAccuracy() != 0.75 {
		t.Errorf("feedback labels, 4 of 16 steps wrong: accuracy %g, want 0.75", fb.GetAccuracy())
	}
	// A single label, or too few, does not say what each step should be.
	one := int32(3)
	for name, in := range map[string]client.Input{
		"one label":   {X: y, Shape: shape, Label: &one},
		"15 labels":   {X: y, Shape: shape, Labels: labels(y)[:15]},
		"class 12":    {X: y, Shape: shape, Labels: append(labels(y)[:15], 12)},
		"label+label": {X: y, Shape: shape, Label: &one, Labels: labels(y)},
	} {
		if _, err := c.Infer(ctx, in); code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := c.Label(ctx, "never-served", 1); code(err) != codes.InvalidArgument {
		t.Errorf("a single feedback label on a 16-step output: %v, want InvalidArgument", err)
	}
	if err := a.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Shadow at the lossiest arm: the signal is the share of steps whose
	// class agrees with the full-precision output.
	s := f.realAgent(t, ctx, "seq-shadow", device.Config{Seed: 2, ShadowShare: 1})
	sc := serveDevice(t, ctx, s)
	lossy := costmodel.Arm{Split: 1, Bits: cm.Manifest.AllowedBits[0]}
	for _, b := range cm.Manifest.AllowedBits {
		lossy.Bits = min(lossy.Bits, b)
	}
	pin(s, sc, lossy)
	want := map[string]float64{}
	for i := range 12 {
		x := input()
		id := fmt.Sprintf("shadow-%d", i)
		resp, err := sc.Infer(ctx, client.Input{X: x, Shape: shape, RequestID: id})
		if err != nil {
			t.Fatal(err)
		}
		full, err := chain.Run(0, k, x)
		if err != nil {
			t.Fatal(err)
		}
		got, ref := rowArgmax(resp.GetOutput().GetData(), classes), rowArgmax(full, classes)
		agree := 0
		for r := range ref {
			if got[r] == ref[r] {
				agree++
			}
		}
		want[id] = float64(agree) / steps
	}
	if err := s.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*api.Report{}
	for _, tr := range traces(t, ctx, ctl.Addr()) {
		byID[tr.GetReport().GetRequestId()] = tr.GetReport()
	}
	for id, w := range map[string]float64{"labelled": 0.75, "later": 0.75} {
		if r := byID[id]; r == nil || r.Accuracy == nil || r.GetAccuracy() != w {
			t.Errorf("report %s: accuracy %v, want label accuracy %g", id, r.GetAccuracy(), w)
		}
	}
	for id, w := range want {
		r := byID[id]
		if r == nil || r.Accuracy == nil || r.GetAccuracy() != w {
			t.Errorf("report %s: accuracy %v, want shadow agreement %g (per time step)", id, r.GetAccuracy(), w)
		}
	}
	fractional := 0
	for _, w := range want {
		if w > 0 && w < 1 {
			fractional++
		}
	}
	if fractional == 0 {
		t.Errorf("no shadow signal at %v lies between 0 and 1 (%v): the test no longer tells per-step scoring from one verdict per output", lossy, want)
	}
	t.Logf("shadow agreement per time step at %v: %v", lossy, want)
}
