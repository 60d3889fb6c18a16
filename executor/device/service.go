package device

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/executor/cloud"
)

// Service serves api.Device for applications on the agent. It is the only
// place proto types meet the agent's.
type Service struct {
	api.UnimplementedDeviceServer
	a *Agent
}

var _ api.DeviceServer = (*Service)(nil)

// NewService serves a, which must be started.
func NewService(a *Agent) *Service { return &Service{a: a} }

// window is the HTTP/2 flow-control window of the Device API, on both
// sides (client.Dial sets the same).
const window = 8 << 20

// buffer is the transport's read and write buffer on both sides: a
// megabyte input goes in a few writes rather than dozens (a third off an
// input's trip on loopback).
const buffer = 1 << 20

// NewGRPCServer is a gRPC server with svc registered, calls checked for
// token, the standard health and reflection services (grpcurl needs no
// .proto file); opts add to it (TLS credentials).
func NewGRPCServer(svc *Service, token string, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.UnaryInterceptor(cloud.RequireToken(token)), grpc.StreamInterceptor(cloud.RequireTokenStream(token)),
		// Large enough that an oversized input reaches validation and is
		// refused as such, rather than by the transport.
		grpc.MaxRecvMsgSize(256 << 20),
		// An input of a large model is megabytes: windows of one message
		// let it through without waiting for window updates.
		grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window),
		grpc.ReadBufferSize(buffer), grpc.WriteBufferSize(buffer),
	}, opts...)
	gs := grpc.NewServer(opts...)
	api.RegisterDeviceServer(gs, svc)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	reflection.Register(gs)
	return gs
}

// statusOf maps the agent's errors to gRPC status codes.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrBusy):
		code = codes.ResourceExhausted
	case errors.Is(err, ErrUnknownRequest):
		code = codes.NotFound
	case errors.Is(err, ErrFeedbackClosed):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrStopped):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(code, err.Error())
}

// request turns an api request into the agent's.
func (s *Service) request(r *api.DeviceInferRequest) (Request, error) {
	in := r.GetInput()
	if in == nil {
		return Request{}, fmt.Errorf("%w: input: missing (a Tensor with dtype float32, shape and data)", ErrInvalid)
	}
	if d := in.GetDtype(); d != "" && !strings.EqualFold(d, "float32") {
		return Request{}, fmt.Errorf("%w: input dtype %q: this executor takes float32", ErrInvalid, d)
	}
	x := in.GetData()
	if raw := in.GetRawData(); len(raw) > 0 {
		if len(x) > 0 {
			return Request{}, fmt.Errorf("%w: input has both data and raw_data: send one", ErrInvalid)
		}
		if len(raw)%4 != 0 {
			return Request{}, fmt.Errorf("%w: input raw_data is %d bytes, not a whole number of float32 values", ErrInvalid, len(raw))
		}
		x = floats(raw)
	}
	req := Request{Model: r.GetModel(), X: x, Shape: in.GetShape(), Label: -1, RequestID: r.GetRequestId()}
	if req.Shape == nil {
		req.Shape = []int64{}
	}
	if r.Label != nil {
		if r.GetLabel() < 0 {
			return Request{}, fmt.Errorf("%w: label %d: want a class, 0 or more", ErrInvalid, r.GetLabel())
		}
		req.Label = int(r.GetLabel())
	}
	if l := r.GetLabels(); len(l) > 0 {
		if r.Label != nil {
			return Request{}, fmt.Errorf("%w: the request has both label and labels: give one", ErrInvalid)
		}
		req.Labels = ints(l)
	}
	return req, nil
}

func (s *Service) response(res Result) *api.DeviceInferResponse {
	m := s.a.cfg.Chain.Manifest
	st := res.Stages
	resp := &api.DeviceInferResponse{
		RequestId: res.RequestID,
		Output:    &api.Tensor{Dtype: "float32", Shape: m.Blocks[len(m.Blocks)-1].Output.Shape, Data: res.Output},
		Arm:       &api.Arm{Split: uint32(res.Arm.Split), Bits: uint32(res.Arm.Bits)}, Propensity: res.Prob, PolicyVersion: res.Version,
		Stages: &api.Stages{DeviceMs: st.DeviceMs, PackMs: st.PackMs, NetworkMs: st.NetworkMs, RttMs: st.RTTMs,
			CloudQueueMs: st.CloudQueueMs, CloudMs: st.CloudMs, UnpackMs: st.UnpackMs, LatencyMs: res.LatencyMs},
		Bytes: st.Bytes, Fallback: res.Fallback,
	}
	if !res.FeedbackUntil.IsZero() {
		resp.FeedbackUntilUnixNano = res.FeedbackUntil.UnixNano()
	}
	return resp
}

func (s *Service) infer(ctx context.Context, r *api.DeviceInferRequest) (*api.DeviceInferResponse, error) {
	req, err := s.request(r)
	if err != nil {
		return nil, err
	}
	res, err := s.a.Infer(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.response(res), nil
}

// Infer implements api.DeviceServer.
func (s *Service) Infer(ctx context.Context, r *api.DeviceInferRequest) (*api.DeviceInferResponse, error) {
	resp, err := s.infer(ctx, r)
	return resp, statusOf(err)
}

// InferStream implements api.DeviceServer: each request is served in its
// own goroutine (the agent bounds how many run), answers are sent as they
// finish, one at a time; the stream ends when the client closes its side
// and every answer is sent.
func (s *Service) InferStream(stream api.Device_InferStreamServer) error {
	ctx := stream.Context()
	var (
		wg     sync.WaitGroup
		sendMu sync.Mutex
		once   sync.Once
		sendEr error
	)
	send := func(resp *api.DeviceInferResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendEr != nil {
			return
		}
		if err := stream.Send(resp); err != nil {
			once.Do(func() { sendEr = err })
		}
	}
	// At most twice the depth of goroutines: a request beyond it is
	// refused at once, as the agent would.
	running := make(chan struct{}, 2*s.a.cfg.Depth)
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			wg.Wait()
			return err
		}
		select {
		case running <- struct{}{}:
		default:
			st := status.Convert(statusOf(fmt.Errorf("%w: %d already (the executor's depth); retry later", ErrBusy, s.a.cfg.Depth)))
			send(&api.DeviceInferResponse{RequestId: r.GetRequestId(), ErrorCode: int32(st.Code()), ErrorMessage: st.Message()})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-running }()
			resp, err := s.infer(ctx, r)
			if err != nil {
				st := status.Convert(statusOf(err))
				resp = &api.DeviceInferResponse{RequestId: r.GetRequestId(), ErrorCode: int32(st.Code()), ErrorMessage: st.Message()}
			}
			send(resp)
		}()
	}
	wg.Wait()
	sendMu.Lock()
	defer sendMu.Unlock()
	return sendEr
}

// Feedback implements api.DeviceServer.
func (s *Service) Feedback(_ context.Context, r *api.FeedbackRequest) (*api.FeedbackResponse, error) {
	id := r.GetRequestId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "request_id: missing")
	}
	var v float64
	var err error
	switch sig := r.GetSignal().(type) {
	case *api.FeedbackRequest_Correct:
		if sig.Correct {
			v = 1
		}
		err = s.a.FeedbackValue(id, v)
	case *api.FeedbackRequest_Value:
		v = sig.Value
		err = s.a.FeedbackValue(id, v)
	case *api.FeedbackRequest_Label:
		v, err = s.a.FeedbackLabel(id, int(sig.Label))
	case *api.FeedbackRequest_Labels:
		v, err = s.a.FeedbackLabels(id, ints(sig.Labels.GetClasses()))
	default:
		return nil, status.Error(codes.InvalidArgument, "signal: missing: give correct, value or label")
	}
	if err != nil {
		return nil, statusOf(err)
	}
	return &api.FeedbackResponse{Accuracy: v}, nil
}

// Describe implements api.DeviceServer.
func (s *Service) Describe(context.Context, *api.DeviceDescribeRequest) (*api.DeviceDescribeResponse, error) {
	a := s.a
	m := a.cfg.Chain.Manifest
	resp := &api.DeviceDescribeResponse{
		Model: m.Name, Key: a.key, DeviceClass: a.cfg.DeviceClass, InputShape: m.Input.Shape,
		OutputShape: m.Blocks[len(m.Blocks)-1].Output.Shape, PolicyVersion: a.PolicyVersion(), Depth: uint32(a.cfg.Depth),
		FeedbackWindowMs: float64(a.cfg.FeedbackWindow.Microseconds()) / 1000, ShadowShare: a.cfg.ShadowShare,
		Emulated: a.labels()["emulated"], DeviceSlowdown: a.cfg.Slowdown,
		MetricSpec: a.score.m.Spec(),
	}
	if a.score.m.Labelled() {
		resp.LabelRows = uint32(a.score.rows)
	}
	for _, arm := range a.arms {
		resp.Arms = append(resp.Arms, &api.Arm{Split: uint32(arm.Split), Bits: uint32(arm.Bits)})
	}
	return resp, nil
}

// littleEndian says whether float32 values in memory are the wire's
// little-endian bytes.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// floats is raw_data (a whole number of little-endian float32 values) as
// float32: on a little-endian machine, when raw is aligned for float32, a
// view of its memory (the request owns it: the message decoder copied it
// off the wire, and nothing writes to it), else a copy.
func floats(raw []byte) []float32 {
	n := len(raw) / 4
	if n == 0 {
		return nil
	}
	if littleEndian && uintptr(unsafe.Pointer(&raw[0]))%unsafe.Alignof(float32(0)) == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n)
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return x
}

// ints converts classes from the wire.
func ints(v []int32) []int {
	out := make([]int, len(v))
	for i, c := range v {
		out[i] = int(c)
	}
	return out
}
