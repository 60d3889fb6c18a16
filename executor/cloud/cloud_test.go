package cloud_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/executor/cloud"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/executor/packing"
)

const secret = "cloud-test-secret-0123456789abcd"

// serve starts a cloud executor for tinynet on loopback and returns a
// client with the given token, and the chain it serves.
func serve(t *testing.T, token string) (api.CloudClient, *ort.Chain) {
	t.Helper()
	chain, err := ort.OpenChain(orttest.Model(t, "tinynet"), ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	srv, err := cloud.NewServer([]*ort.Chain{chain}, 1)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := cloud.NewGRPCServer(srv, secret)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := api.Dial(lis.Addr().String(), api.DialOptions{Token: token, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return api.NewCloudClient(conn), chain
}

func input(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%17)/8 - 1
	}
	return x
}

// Full precision at every split gives what the whole chain gives.
func TestInferMatchesTheChain(t *testing.T) {
	c, chain := serve(t, secret)
	m := chain.Manifest
	x := input(int(m.Input.Elements))
	want, err := chain.Run(0, chain.K(), x)
	if err != nil {
		t.Fatal(err)
	}
	for split := 0; split < chain.K(); split++ {
		act, err := chain.Run(0, split, x)
		if err != nil {
			t.Fatal(err)
		}
		shape := m.Input.Shape
		if split > 0 {
			shape = m.Blocks[split-1].Output.Shape
		}
		payload, err := packing.Encode(nil, act, shape, packing.Options{Bits: 32, Compression: packing.CompressionZstd})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Infer(context.Background(), &api.InferRequest{Model: m.Name, Split: uint32(split), Payload: payload})
		if err != nil {
			t.Fatalf("split %d: %v", split, err)
		}
		if !slices.Equal(resp.GetOutput(), want) {
			t.Fatalf("split %d: output %v, whole chain %v", split, resp.GetOutput(), want)
		}
		if resp.GetComputeMs() <= 0 || resp.GetUnpackMs() <= 0 || resp.GetQueueMs() < 0 {
			t.Errorf("split %d: times %v", split, resp)
		}
	}
}

func TestInferRefusesWhatItCannotRun(t *testing.T) {
	c, chain := serve(t, secret)
	m := chain.Manifest
	good, _ := packing.Encode(nil, input(int(m.Input.Elements)), m.Input.Shape, packing.Options{Bits: 8})
	wrongShape, _ := packing.Encode(nil, input(int(m.Input.Elements)), []int64{m.Input.Elements}, packing.Options{Bits: 8})
	cases := []struct {
		name string
		req  *api.InferRequest
		code codes.Code
		want string
	}{
		{"unknown model", &api.InferRequest{Model: "resnet50", Payload: good}, codes.NotFound, "serves tinynet"},
		{"device-only split", &api.InferRequest{Model: m.Name, Split: uint32(chain.K()), Payload: good}, codes.InvalidArgument, "runs all of them on the device"},
		{"garbage", &api.InferRequest{Model: m.Name, Payload: []byte("not a tensor")}, codes.InvalidArgument, "payload of split 0"},
		{"truncated", &api.InferRequest{Model: m.Name, Payload: good[:len(good)/2]}, codes.InvalidArgument, "payload of split 0"},
		{"wrong shape", &api.InferRequest{Model: m.Name, Payload: wrongShape}, codes.InvalidArgument, "has shape"},
		{"wrong split", &api.InferRequest{Model: m.Name, Split: 1, Payload: good}, codes.InvalidArgument, "split 1"},
	}
	for _, tc := range cases {
		_, err := c.Infer(context.Background(), tc.req)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.want)
		}
	}
}

func TestInferNeedsTheToken(t *testing.T) {
	for _, token := range []string{"", "wrong-secret-0123456789abcdef0"} {
		c, chain := serve(t, token)
		_, err := c.Infer(context.Background(), &api.InferRequest{Model: chain.Manifest.Name})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("token %q: %v, want Unauthenticated", token, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	c, chain := serve(t, secret)
	resp, err := c.Describe(context.Background(), &api.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetModels()) != 1 || resp.GetModels()[0].GetName() != "tinynet" || int(resp.GetModels()[0].GetBlocks()) != chain.K() {
		t.Fatalf("describe: %v", resp)
	}
}
