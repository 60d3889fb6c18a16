// Package client is the application's side of the device executor's
// Device API: a connection with a deadline on every call. It imports only
// api and grpc, so an application links nothing of the executor.
package client

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"time"
	"unsafe"

	"google.golang.org/grpc"

	"github.com/dynoml/dyno/api"
)

const (
	window = 8 << 20
	buffer = 1 << 20
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// Client calls one device executor. It is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	dev     api.DeviceClient
	timeout time.Duration
}

// Options say how to reach the executor.
type Options struct {
	// Dial is the connection's security and token (api.Dial).
	Dial api.DialOptions
	// Timeout bounds each call whose context has no deadline of its own;
	// zero means DefaultTimeout.
	Timeout time.Duration
}

// Dial connects to the executor at target: "host:port", or
// "unix:///absolute/path" or "unix:relative/path" for its unix socket.
// The connection is lazy.
func Dial(target string, o Options) (*Client, error) {
	if target == "" {
		return nil, errors.New("client: no target address")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	// An input of a large model is megabytes: windows of a message let
	// it through without waiting for window updates, and messages as
	// large as the executor takes.
	o.Dial.Extra = append([]grpc.DialOption{grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window),
		grpc.WithReadBufferSize(buffer), grpc.WithWriteBufferSize(buffer),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20))}, o.Dial.Extra...)
	conn, err := api.Dial(target, o.Dial)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, dev: api.NewDeviceClient(conn), timeout: o.Timeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// API is the generated client, for calls this package does not wrap.
func (c *Client) API() api.DeviceClient { return c.dev }

func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Input is one request.
type Input struct {
	// X is the model's input, row-major. It is sent without a copy: it
	// must not change while Infer or Send runs (after they return it may).
	X     []float32
	Shape []int64
	// Label is the class the output should have; nil: unknown.
	Label *int32
	// Labels is the class of every row of the output (per time step, per
	// pixel), instead of Label.
	Labels []int32
	// RequestID is the caller's id; empty: the executor makes one.
	RequestID string
}

// littleEndian says whether float32 values in memory are already the
// wire's little-endian bytes.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// rawBytes is x as raw_data: on a little-endian machine a view of x's
// memory (the call only reads it, while x is alive), else a copy in wire
// order.
func rawBytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
	}
	raw := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return raw
}

// proto sends the values as raw_data, which encodes and decodes an order
// of magnitude faster than a repeated float; X is not copied on a
// little-endian machine, so it must not change until the call returns.
func (in Input) proto() *api.DeviceInferRequest {
	raw := rawBytes(in.X)
	return &api.DeviceInferRequest{Input: &api.Tensor{Dtype: "float32", Shape: in.Shape, RawData: raw}, Label: in.Label, Labels: in.Labels, RequestId: in.RequestID}
}

// Infer serves one request.
func (c *Client) Infer(ctx context.Context, in Input) (*api.DeviceInferResponse, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	return c.dev.Infer(ctx, in.proto())
}

// Describe says what the executor serves.
func (c *Client) Describe(ctx context.Context) (*api.DeviceDescribeResponse, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	return c.dev.Describe(ctx, &api.DeviceDescribeRequest{})
}

// Correct tells the executor whether request id's output was right.
func (c *Client) Correct(ctx context.Context, id string, correct bool) (*api.FeedbackResponse, error) {
	return c.feedback(ctx, &api.FeedbackRequest{RequestId: id, Signal: &api.FeedbackRequest_Correct{Correct: correct}})
}

// Label tells the executor request id's true class.
func (c *Client) Label(ctx context.Context, id string, label int32) (*api.FeedbackResponse, error) {
	return c.feedback(ctx, &api.FeedbackRequest{RequestId: id, Signal: &api.FeedbackRequest_Label{Label: label}})
}

// Labels tells the executor the true class of every row of request id's
// output.
func (c *Client) Labels(ctx context.Context, id string, labels []int32) (*api.FeedbackResponse, error) {
	return c.feedback(ctx, &api.FeedbackRequest{RequestId: id, Signal: &api.FeedbackRequest_Labels{Labels: &api.RowLabels{Classes: labels}}})
}

// Value gives request id an accuracy signal in [0, 1].
func (c *Client) Value(ctx context.Context, id string, v float64) (*api.FeedbackResponse, error) {
	return c.feedback(ctx, &api.FeedbackRequest{RequestId: id, Signal: &api.FeedbackRequest_Value{Value: v}})
}

func (c *Client) feedback(ctx context.Context, r *api.FeedbackRequest) (*api.FeedbackResponse, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	return c.dev.Feedback(ctx, r)
}

// Stream is an open InferStream: Send and Recv may be called from two
// goroutines (one each); answers come as they finish, matched by request
// id, a refused request as an answer with its error code.
type Stream struct {
	s      api.Device_InferStreamClient
	cancel context.CancelFunc
}

// Stream opens an InferStream that lasts until ctx ends or CloseSend and
// the last Recv; it has no per-call deadline of its own.
func (c *Client) Stream(ctx context.Context) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.dev.InferStream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &Stream{s: s, cancel: cancel}, nil
}

// Send sends one request.
func (s *Stream) Send(in Input) error { return s.s.Send(in.proto()) }

// CloseSend says no more requests come; Recv returns io.EOF after the last
// answer.
func (s *Stream) CloseSend() error { return s.s.CloseSend() }

// Recv waits for the next answer.
func (s *Stream) Recv() (*api.DeviceInferResponse, error) {
	r, err := s.s.Recv()
	if err != nil {
		s.cancel()
	}
	return r, err
}
