package e2e_test

import (
	"context"
	"errors"
	"math"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/device/client"
	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/executor/ort/orttest"
)

const deviceSecret = "device-secret-0123456789abcdef01"

// serveDevice starts a and serves its Device API on loopback; the client
// is the application's.
func serveDevice(t *testing.T, ctx context.Context, a *device.Agent) *client.Client {
	t.Helper()
	a.Start(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := device.NewGRPCServer(device.NewService(a), deviceSecret)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	c, err := client.Dial(lis.Addr().String(), client.Options{Dial: api.DialOptions{Token: deviceSecret, Insecure: true}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// realAgent is a device executor on loopback, not emulated.
func (f *fixture) realAgent(t *testing.T, ctx context.Context, id string, cfg device.Config) *device.Agent {
	t.Helper()
	est, _ := link.NewEstimator(100, 1, 0.2)
	cfg.ExecutorID, cfg.DeviceClass, cfg.CostModel, cfg.Chain = id, "amd64-2cpu", f.cm, f.chain
	cfg.Controller, cfg.Cloud, cfg.Estimator, cfg.PingEvery, cfg.Compress = f.control, f.cloud, est, 50*time.Millisecond, true
	a, err := device.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// traces exports every trace of the controller at addr.
func traces(t *testing.T, ctx context.Context, addr string) []*api.Trace {
	t.Helper()
	conn, err := api.Dial(addr, api.DialOptions{Token: adminSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := api.NewAdminClient(conn).ExportTraces(ctx, &api.ExportTracesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.Trace
	for {
		b, err := s.Recv()
		if err != nil {
			break
		}
		out = append(out, b.GetTraces()...)
	}
	return out
}

func code(err error) codes.Code { return grpcstatus.Code(err) }

// TestDeviceAPIEveryArm is an application calling the Device API over real
// gRPC on the MNIST classifier, with every arm pinned in turn: the output
// equals the whole model's (exactly enough at 32 bits; within the
// calibrated top-1 agreement below), the labels' accuracy matches the
// calibration table, and every labelled request is reported.
func TestDeviceAPIEveryArm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), orttest.Model(t, "mnist"))
	defer ctl.Stop(context.Background())
	f := newFixture(t, ctl.Addr())
	a := f.realAgent(t, ctx, "app-phone", device.Config{Seed: 1})
	c := serveDevice(t, ctx, a)
	desc, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if desc.GetModel() != "mnist" || len(desc.GetArms()) != len(f.cm.Arms()) {
		t.Fatalf("describe: %v", desc)
	}
	acc, err := costmodel.LoadAccuracyTable(filepath.Join(f.dir, "accuracy.json"))
	if err != nil {
		t.Fatal(err)
	}
	table := map[costmodel.Arm]costmodel.AccuracyEntry{}
	for _, e := range acc.Entries {
		table[costmodel.Arm{Split: e.Split, Bits: e.Bits}] = e
	}
	admin, err := api.Dial(ctl.Addr(), api.DialOptions{Token: adminSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := api.NewAdminClient(admin)
	shape := f.cm.Manifest.Input.Shape
	k := f.cm.Manifest.K()
	const n = 40
	served := 0
	for _, arm := range f.cm.Arms() {
		if _, err := adm.Pin(ctx, &api.PinRequest{Key: a.Key(), Arm: &api.Arm{Split: uint32(arm.Split), Bits: uint32(arm.Bits)}, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		// Wait for the pinned policy to reach the executor.
		for i := 0; ; i++ {
			resp, err := c.Infer(ctx, client.Input{X: f.test.Image(0), Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			if int(resp.GetArm().GetSplit()) == arm.Split && int(resp.GetArm().GetBits()) == arm.Bits {
				break
			}
			if i > 200 {
				t.Fatalf("arm %v: the pin never reached the executor (still %v)", arm, resp.GetArm())
			}
			time.Sleep(10 * time.Millisecond)
		}
		agree, correct := 0, 0
		for i := range n {
			x := f.test.Image(i)
			label := int32(f.test.Labels[i])
			resp, err := c.Infer(ctx, client.Input{X: x, Shape: shape, Label: &label})
			if err != nil {
				t.Fatalf("arm %v image %d: %v", arm, i, err)
			}
			served++
			if got := resp.GetArm(); int(got.GetSplit()) != arm.Split || int(got.GetBits()) != arm.Bits {
				t.Fatalf("arm %v pinned, %v served", arm, got)
			}
			whole, err := f.chain.Run(0, k, x)
			if err != nil {
				t.Fatal(err)
			}
			out := resp.GetOutput().GetData()
			if len(out) != len(whole) {
				t.Fatalf("arm %v: %d outputs, the model has %d", arm, len(out), len(whole))
			}
			if arm.Bits == 32 {
				for j := range out {
					if d := math.Abs(float64(out[j] - whole[j])); d > 1e-4*(1+math.Abs(float64(whole[j]))) {
						t.Fatalf("arm %v image %d: output %d is %g, the whole model's %g", arm, i, j, out[j], whole[j])
					}
				}
			}
			if argmax(out) == argmax(whole) {
				agree++
			}
			if argmax(out) == int(label) {
				correct++
			}
		}
		e, ok := table[arm]
		if !ok && arm.Split == k {
			e = costmodel.AccuracyEntry{Accuracy: acc.Baseline, Agreement: 1} // device-only is the whole model
		}
		// Three standard errors of a proportion over n, and one request.
		tol := func(p float64) float64 { return 3*math.Sqrt(max(p*(1-p), 0.01)/n) + 1.0/n }
		if got := float64(agree) / n; got < e.Agreement-tol(e.Agreement) {
			t.Errorf("arm %v: top-1 agreement with the whole model %.3f, the calibration says %.3f", arm, got, e.Agreement)
		}
		if got := float64(correct) / n; math.Abs(got-e.Accuracy) > tol(e.Accuracy) {
			t.Errorf("arm %v: accuracy %.3f, the calibration says %.3f", arm, got, e.Accuracy)
		}
	}
	if err := a.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	labelled := 0
	for _, tr := range traces(t, ctx, ctl.Addr()) {
		if tr.GetReport().Accuracy != nil {
			labelled++
		}
	}
	if labelled != served {
		t.Errorf("controller holds %d labelled traces, want the %d labelled requests", labelled, served)
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestDeviceAPIFeedbackAndShadow: feedback that comes within the window
// joins its request's report; late, unknown and repeated feedback is
// refused with the reason; bad input is InvalidArgument naming it; and
// with a shadow share of one, unlabelled requests reach the controller
// with an agreement signal.
func TestDeviceAPIFeedbackAndShadow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), orttest.Model(t, "mnist"))
	defer ctl.Stop(context.Background())
	f := newFixture(t, ctl.Addr())
	shape := f.cm.Manifest.Input.Shape
	img := f.test.Image(0)

	a := f.realAgent(t, ctx, "fb-phone", device.Config{Seed: 2, FeedbackWindow: 400 * time.Millisecond})
	c := serveDevice(t, ctx, a)
	infer := func(id string) *api.DeviceInferResponse {
		t.Helper()
		resp, err := c.Infer(ctx, client.Input{X: img, Shape: shape, RequestID: id})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	on := infer("on-time")
	if on.GetRequestId() != "on-time" || on.GetFeedbackUntilUnixNano() == 0 {
		t.Fatalf("response %v: want the caller's id and a feedback deadline", on)
	}
	if _, err := c.Infer(ctx, client.Input{X: img, Shape: shape, RequestID: "on-time"}); code(err) != codes.InvalidArgument {
		t.Errorf("a request id waiting for feedback used again: %v", err)
	}
	late := infer("late")
	auto := infer("")
	if auto.GetRequestId() == "" {
		t.Error("the executor made no request id")
	}
	fb, err := c.Label(ctx, "on-time", int32(f.test.Labels[0]))
	if err != nil {
		t.Fatal(err)
	}
	want := 0.0
	if argmax(on.GetOutput().GetData()) == int(f.test.Labels[0]) {
		want = 1
	}
	if fb.GetAccuracy() != want {
		t.Errorf("feedback accuracy %g, want %g", fb.GetAccuracy(), want)
	}
	if _, err := c.Correct(ctx, "on-time", true); code(err) != codes.FailedPrecondition {
		t.Errorf("second feedback: %v, want FailedPrecondition", err)
	}
	if _, err := c.Value(ctx, "never-served", 1); code(err) != codes.NotFound {
		t.Errorf("feedback for an unknown id: %v, want NotFound", err)
	}
	if _, err := c.Value(ctx, auto.GetRequestId(), 2); code(err) != codes.InvalidArgument {
		t.Errorf("feedback value 2: %v, want InvalidArgument", err)
	}
	time.Sleep(time.Second)
	if _, err := c.Correct(ctx, late.GetRequestId(), true); code(err) != codes.FailedPrecondition {
		t.Errorf("feedback after the window: %v, want FailedPrecondition", err)
	}

	// Bad input, each refused naming what is wrong.
	nan := append([]float32(nil), img...)
	nan[5] = float32(math.NaN())
	for name, in := range map[string]*api.DeviceInferRequest{
		"shape":     {Input: &api.Tensor{Shape: []int64{1, 28, 28}, Data: img}},
		"dtype":     {Input: &api.Tensor{Dtype: "int8", Shape: shape, Data: img}},
		"NaN":       {Input: &api.Tensor{Shape: shape, Data: nan}},
		"oversized": {Input: &api.Tensor{Shape: shape, Data: append(append([]float32(nil), img...), img...)}},
		"model":     {Model: "resnet50", Input: &api.Tensor{Shape: shape, Data: img}},
		"input":     {},
	} {
		_, err := c.API().Infer(ctx, in)
		if code(err) != codes.InvalidArgument || !containsFold(grpcstatus.Convert(err).Message(), name) {
			t.Errorf("%s: %v, want InvalidArgument naming it", name, err)
		}
	}
	if err := a.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*api.Report{}
	for _, tr := range traces(t, ctx, ctl.Addr()) {
		byID[tr.GetReport().GetRequestId()] = tr.GetReport()
	}
	if r := byID["on-time"]; r == nil || r.Accuracy == nil || r.GetAccuracy() != want {
		t.Errorf("the report of on-time lacks its feedback: %v", r)
	}
	if r := byID["late"]; r == nil || r.Accuracy != nil {
		t.Errorf("the report of late: %v, want one without accuracy", r)
	}
	if len(byID) != 3 {
		t.Errorf("%d reports, want 3", len(byID))
	}

	// Shadow: every unlabelled request gets an agreement signal.
	s := f.realAgent(t, ctx, "shadow-phone", device.Config{Seed: 3, ShadowShare: 1})
	sc := serveDevice(t, ctx, s)
	for i := range 20 {
		if _, err := sc.Infer(ctx, client.Input{X: f.test.Image(i), Shape: shape, RequestID: "shadow-" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	shadowed := 0
	for _, tr := range traces(t, ctx, ctl.Addr()) {
		if r := tr.GetReport(); tr.GetExecutorId() == "shadow-phone" && r.Accuracy != nil {
			shadowed++
		}
	}
	if shadowed != 20 {
		t.Errorf("%d of 20 unlabelled requests reached the controller with a shadow signal", shadowed)
	}
}

func containsFold(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (func() bool {
		for i := 0; i+len(sub) <= len(s); i++ {
			if equalFold(s[i:i+len(sub)], sub) {
				return true
			}
		}
		return false
	})()
}

func equalFold(a, b string) bool {
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// TestDeviceAPIConcurrency: many clients at once against a small depth,
// on an emulated slow device and link, unary and streaming: what is past
// the depth is ResourceExhausted, every request served is reported once
// (no lost or doubled report), and nothing waits once the executor stops.
func TestDeviceAPIConcurrency(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), orttest.Model(t, "mnist"))
	defer ctl.Stop(context.Background())
	f := newFixture(t, ctl.Addr())
	l, err := link.New(f.trace, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	est, _ := link.NewEstimator(1, 5, 0.2)
	const depth = 3
	a, err := device.New(ctx, device.Config{ExecutorID: "busy-phone", DeviceClass: "amd64-2cpu", CostModel: f.cm, Chain: f.chain,
		Controller: f.control, Cloud: f.cloud, Link: l, Estimator: est, Slowdown: 20, Compress: true, Seed: 4, Depth: depth,
		FeedbackWindow: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := serveDevice(t, ctx, a)
	shape := f.cm.Manifest.Input.Shape
	const clients, each = 8, 15
	var ok, busy atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				x := f.test.Image(g*each + i)
				var err error
				if g%2 == 0 {
					_, err = c.Infer(ctx, client.Input{X: x, Shape: shape})
				} else {
					err = streamOne(ctx, c, client.Input{X: x, Shape: shape})
				}
				switch {
				case err == nil:
					ok.Add(1)
				case code(err) == codes.ResourceExhausted:
					busy.Add(1)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := a.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d served, %d refused past depth %d, %d fallbacks", ok.Load(), busy.Load(), depth, a.Fallbacks())
	if busy.Load() == 0 {
		t.Errorf("%d clients at depth %d: nothing was refused", clients, depth)
	}
	if ok.Load() == 0 {
		t.Fatal("nothing was served")
	}
	seqs, ids := map[uint64]bool{}, map[string]bool{}
	for _, tr := range traces(t, ctx, ctl.Addr()) {
		r := tr.GetReport()
		if seqs[r.GetSeq()] || ids[r.GetRequestId()] {
			t.Errorf("report seq %d, id %q twice", r.GetSeq(), r.GetRequestId())
		}
		seqs[r.GetSeq()], ids[r.GetRequestId()] = true, true
	}
	if want := ok.Load() - a.Fallbacks(); int64(len(seqs)) != want {
		t.Errorf("controller holds %d traces, want the %d requests served", len(seqs), want)
	}
	if _, err := c.Infer(ctx, client.Input{X: f.test.Image(0), Shape: shape}); code(err) != codes.Unavailable {
		t.Errorf("a request after Stop: %v, want Unavailable", err)
	}
}

// streamOne serves one request on a stream of its own.
func streamOne(ctx context.Context, c *client.Client, in client.Input) error {
	s, err := c.Stream(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(in); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	resp, err := s.Recv()
	if err != nil {
		return err
	}
	if resp.GetErrorCode() != 0 {
		return grpcstatus.Error(codes.Code(resp.GetErrorCode()), resp.GetErrorMessage())
	}
	if resp.GetOutput() == nil {
		return errors.New("stream answer without output")
	}
	return nil
}
