package e2e_test

import (
	"context"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/cloud"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/device/client"
	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/ort/orttest"
)

// BenchmarkExecutorOverhead measures what the executors add to a request
// beyond block compute: an application calls the Device API over gRPC on
// loopback, the device executor decides, runs its blocks, packs the split
// (8 bits, on three arms of ResNet-50: the packing grows with the tensor),
// sends it to the cloud executor over gRPC on loopback, which
// unpacks and runs the rest, and the answer comes back. overhead-ms/req
// is the client's latency less the device's and the cloud's block compute
// and less the network (the device-to-cloud hop's transfer and round
// trip as the device measured them, loopback here: loopback-ms/req), so
// it counts the decision, packing and unpacking (pack+unpack-ms/req, also
// shown alone), the application's gRPC hop and the bookkeeping;
// overhead-% is that over the block compute. The device cannot tell the
// device-to-cloud call's own gRPC work from the network (it subtracts the
// cloud's work, takes up to a ping's round trip as the network's round
// trip and the rest as transfer), and on loopback a ping's round trip is
// itself gRPC work: overhead-bound-% counts the whole loopback time as
// overhead too, the upper bound.
//
//	go test ./internal/e2e -run '^$' -bench ExecutorOverhead -benchtime 20x
func BenchmarkExecutorOverhead(b *testing.B) {
	for _, c := range []struct {
		model string
		arm   costmodel.Arm
	}{
		{"mnist", costmodel.Arm{Split: 3, Bits: 8}},
		// Packing grows with the tensor at the split: 200,704 values at
		// s9, 100,352 at s15, none device-only.
		{"resnet50", costmodel.Arm{Split: 9, Bits: 8}},
		{"resnet50", costmodel.Arm{Split: 15, Bits: 8}},
		{"resnet50", costmodel.Arm{Split: 18, Bits: 32}},
	} {
		b.Run(c.model+"/"+c.arm.String(), func(b *testing.B) { benchOverhead(b, c.model, c.arm) })
	}
}

func benchOverhead(b *testing.B, name string, arm costmodel.Arm) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := orttest.Model(b, name)
	ctl, err := controller.New(controller.Config{
		Listen: "127.0.0.1:0", Insecure: true, StorePath: filepath.Join(b.TempDir(), "dyno.db"),
		Tokens: []controller.Token{controller.NewToken("ops", adminSecret, controller.ScopeAdmin),
			controller.NewToken("fleet", executorSecret, controller.ScopeExecutor)},
		ModelDirs: []string{dir}, CloudClass: "amd64-2cpu-cloud", PublishEvery: 25, PublishInterval: 100 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		b.Fatal(err)
	}
	defer ctl.Stop(context.Background())
	dev, err := ort.OpenChain(dir, ort.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	cloudChain, err := ort.OpenChain(dir, ort.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer cloudChain.Close()
	srv, err := cloud.NewServer([]*ort.Chain{cloudChain}, 1)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := cloud.NewGRPCServer(srv, cloudSecret)
	go gs.Serve(lis)
	defer gs.Stop()
	dial := func(addr, token string) *grpc.ClientConn {
		conn, err := api.Dial(addr, api.DialOptions{Token: token, Insecure: true, Extra: cloud.DialOptions()})
		if err != nil {
			b.Fatal(err)
		}
		return conn
	}
	cloudConn, ctlConn := dial(lis.Addr().String(), cloudSecret), dial(ctl.Addr(), executorSecret)
	defer cloudConn.Close()
	defer ctlConn.Close()
	cm, err := costmodel.LoadDir(dir, "amd64-2cpu", "amd64-2cpu-cloud")
	if err != nil {
		b.Fatal(err)
	}
	est, _ := link.NewEstimator(1000, 0.1, 0.2)
	a, err := device.New(ctx, device.Config{ExecutorID: "bench", DeviceClass: "amd64-2cpu", CostModel: cm, Chain: dev,
		Controller: api.NewExecutorClient(ctlConn), Cloud: api.NewCloudClient(cloudConn), Estimator: est, Compress: true, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	a.Start(ctx)
	defer a.Stop(10 * time.Second)
	dlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	dgs := device.NewGRPCServer(device.NewService(a), deviceSecret)
	go dgs.Serve(dlis)
	defer dgs.Stop()
	c, err := client.Dial(dlis.Addr().String(), client.Options{Dial: api.DialOptions{Token: deviceSecret, Insecure: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	admin := dial(ctl.Addr(), adminSecret)
	defer admin.Close()
	if _, err := api.NewAdminClient(admin).Pin(ctx, &api.PinRequest{Key: a.Key(), Arm: &api.Arm{Split: uint32(arm.Split), Bits: uint32(arm.Bits)}, Reason: "benchmark"}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, cm.Manifest.Input.Elements)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	in := client.Input{X: x, Shape: cm.Manifest.Input.Shape}
	infer := func() (*api.DeviceInferResponse, float64) {
		t := time.Now()
		resp, err := c.Infer(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		return resp, float64(time.Since(t)) / float64(time.Millisecond)
	}
	for i := 0; ; i++ { // until the pin is in force, which also warms up
		resp, _ := infer()
		if int(resp.GetArm().GetSplit()) == arm.Split && int(resp.GetArm().GetBits()) == arm.Bits {
			break
		}
		if i > 500 {
			b.Fatalf("the pin on %v never reached the executor", arm)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var compute, over, net, pack, hop float64
	for range b.N {
		resp, ms := infer()
		st := resp.GetStages()
		block := st.GetDeviceMs() + st.GetCloudMs()
		compute += block
		net += st.GetNetworkMs() + st.GetRttMs()
		pack += st.GetPackMs() + st.GetUnpackMs()
		over += ms - block - st.GetNetworkMs() - st.GetRttMs()
		hop += ms - st.GetLatencyMs()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(compute/n, "compute-ms/req")
	b.ReportMetric(over/n, "overhead-ms/req")
	b.ReportMetric(100*over/compute, "overhead-%")
	b.ReportMetric(100*(over+net)/compute, "overhead-bound-%")
	b.ReportMetric(pack/n, "pack+unpack-ms/req")
	b.ReportMetric(net/n, "loopback-ms/req")
	b.ReportMetric(hop/n, "app-hop-ms/req")
}
