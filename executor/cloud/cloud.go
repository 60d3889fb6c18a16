// Package cloud is the cloud executor: it holds ONNX Runtime sessions for
// every block of its models and serves api.Cloud, running the blocks after
// a device's split on the tensor the device packed.
package cloud

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/packing"
)

// Server serves api.Cloud. It is safe for concurrent use: at most Workers
// requests run at once and at most a bounded number more wait (their wait
// is the queue time they are told); beyond that a request is refused with
// ResourceExhausted, and the device finishes it itself.
type Server struct {
	api.UnimplementedCloudServer
	models map[string]*ort.Chain
	slots  chan struct{} // running
	admit  chan struct{} // running or waiting
	// inputs holds decoded payloads' buffers (*[]float32) for the next
	// request.
	inputs sync.Pool
}

// DefaultMaxQueue is the number of requests that may wait for a worker
// when NewServer is not told otherwise.
const DefaultMaxQueue = 64

// NewServer serves the given models (chains keyed by manifest name) with
// workers concurrent runs (at least one) and up to DefaultMaxQueue
// requests waiting.
func NewServer(chains []*ort.Chain, workers int) (*Server, error) {
	return NewServerQueue(chains, workers, DefaultMaxQueue)
}

// NewServerQueue is NewServer with at most maxQueue requests waiting for a
// worker (zero: none wait).
func NewServerQueue(chains []*ort.Chain, workers, maxQueue int) (*Server, error) {
	if len(chains) == 0 {
		return nil, fmt.Errorf("cloud: no models to serve")
	}
	if maxQueue < 0 {
		return nil, fmt.Errorf("cloud: queue bound %d: want zero or more", maxQueue)
	}
	workers = max(workers, 1)
	s := &Server{models: map[string]*ort.Chain{}, slots: make(chan struct{}, workers), admit: make(chan struct{}, workers+maxQueue)}
	for _, c := range chains {
		name := c.Manifest.Name
		if _, dup := s.models[name]; dup {
			return nil, fmt.Errorf("cloud: model %s given twice", name)
		}
		s.models[name] = c
	}
	return s, nil
}

// Models lists the models served, sorted.
func (s *Server) Models() []string {
	var out []string
	for name := range s.models {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Describe implements api.CloudServer.
func (s *Server) Describe(context.Context, *api.DescribeRequest) (*api.DescribeResponse, error) {
	resp := &api.DescribeResponse{}
	for _, name := range s.Models() {
		resp.Models = append(resp.Models, &api.CloudModel{Name: name, Blocks: uint32(s.models[name].K())})
	}
	return resp, nil
}

// Infer implements api.CloudServer.
func (s *Server) Infer(ctx context.Context, req *api.InferRequest) (*api.InferResponse, error) {
	c, ok := s.models[req.GetModel()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "model %q: this executor serves %s", req.GetModel(), strings.Join(s.Models(), ", "))
	}
	k := c.K()
	split := int(req.GetSplit())
	if split >= k {
		return nil, status.Errorf(codes.InvalidArgument, "split %d: model %s has %d blocks, and split %d runs all of them on the device", split, c.Manifest.Name, k, k)
	}
	want := c.Manifest.Input
	if split > 0 {
		want = c.Manifest.Blocks[split-1].Output
	}

	start := time.Now()
	select {
	case s.admit <- struct{}{}:
	default:
		return nil, status.Errorf(codes.ResourceExhausted, "cloud: %d requests running or queued, the most this executor takes; retry later", cap(s.admit))
	}
	defer func() { <-s.admit }()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-s.slots }()
	queued := time.Now()

	xb, _ := s.inputs.Get().(*[]float32)
	if xb == nil {
		xb = new([]float32)
	}
	defer s.inputs.Put(xb)
	x, h, err := packing.Decode((*xb)[:0], req.GetPayload(), packing.DecodeOptions{MaxElements: want.Elements})
	if cap(x) > cap(*xb) {
		*xb = x[:0] // Run copies x into the model's tensor: the buffer is free after it
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "payload of split %d: %v", split, err)
	}
	if !slices.Equal(h.Shape(), want.Shape) {
		return nil, status.Errorf(codes.InvalidArgument, "payload of split %d has shape %v; tensor %s of model %s is %v", split, h.Shape(), want.Name, c.Manifest.Name, want.Shape)
	}
	unpacked := time.Now()
	out, err := c.Run(split, k, x)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "model %s, blocks %d..%d: %v", c.Manifest.Name, split+1, k, err)
	}
	done := time.Now()
	return &api.InferResponse{
		Output:    out,
		QueueMs:   ms(queued.Sub(start)),
		UnpackMs:  ms(unpacked.Sub(queued)),
		ComputeMs: ms(done.Sub(unpacked)),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// RequireToken refuses calls that do not carry "authorization: Bearer
// token" (compared in constant time). Health and reflection calls pass.
func RequireToken(token string) grpc.UnaryServerInterceptor {
	want := []byte("Bearer " + token)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := checkToken(ctx, info.FullMethod, want); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// RequireTokenStream is RequireToken for streaming calls.
func RequireTokenStream(token string) grpc.StreamServerInterceptor {
	want := []byte("Bearer " + token)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := checkToken(ss.Context(), info.FullMethod, want); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func checkToken(ctx context.Context, method string, want []byte) error {
	if strings.HasPrefix(method, "/grpc.") {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	got := md.Get("authorization")
	if len(got) != 1 {
		return status.Error(codes.Unauthenticated, "no bearer token: send \"authorization: Bearer TOKEN\"")
	}
	if subtle.ConstantTimeCompare([]byte(got[0]), want) != 1 {
		return status.Error(codes.Unauthenticated, "bearer token not accepted")
	}
	return nil
}

// Window is the HTTP/2 flow-control window of the Cloud service.
const Window = 8 << 20

// buffer is the transport's read and write buffer on both sides: a
// megabyte tensor goes in a few writes rather than dozens.
const buffer = 1 << 20

// DialOptions are what a device executor dials a cloud executor
// with: its windows, and messages as large as it takes.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(Window), grpc.WithInitialConnWindowSize(Window),
		grpc.WithReadBufferSize(buffer), grpc.WithWriteBufferSize(buffer),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(64<<20))}
}

// NewGRPCServer is a gRPC server with srv registered, calls checked for
// token, and the standard health service; opts add to it (TLS
// credentials, message limits).
func NewGRPCServer(srv *Server, token string, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{grpc.UnaryInterceptor(RequireToken(token)), grpc.MaxRecvMsgSize(256 << 20),
		// A split tensor is up to megabytes: windows of a message let it
		// through without waiting for window updates (the device side
		// dials with the same, see DialOptions).
		grpc.InitialWindowSize(Window), grpc.InitialConnWindowSize(Window),
		grpc.ReadBufferSize(buffer), grpc.WriteBufferSize(buffer)}, opts...)
	gs := grpc.NewServer(opts...)
	api.RegisterCloudServer(gs, srv)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	return gs
}
