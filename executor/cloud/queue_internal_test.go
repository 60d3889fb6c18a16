package cloud

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/executor/packing"
)

// With its one worker busy and its one queue place taken, the server
// refuses the next request with ResourceExhausted; the queued one runs
// once the worker is free and is told how long it waited.
func TestQueueIsBounded(t *testing.T) {
	chain, err := ort.OpenChain(orttest.Model(t, "tinynet"), ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	s, err := NewServerQueue([]*ort.Chain{chain}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := chain.Manifest
	payload, err := packing.Encode(nil, make([]float32, m.Input.Elements), m.Input.Shape, packing.Options{Bits: 32})
	if err != nil {
		t.Fatal(err)
	}
	req := &api.InferRequest{Model: m.Name, Payload: payload}
	// A request running: it holds an admission and the worker.
	s.admit <- struct{}{}
	s.slots <- struct{}{}
	queued := make(chan *api.InferResponse, 1)
	go func() {
		resp, err := s.Infer(context.Background(), req)
		if err != nil {
			t.Error(err)
		}
		queued <- resp
	}()
	for len(s.admit) < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Infer(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request past the queue: %v, want ResourceExhausted", err)
	}
	time.Sleep(20 * time.Millisecond)
	<-s.slots // the running request ends
	<-s.admit
	resp := <-queued
	if resp.GetQueueMs() < 20 {
		t.Errorf("the queued request waited %g ms, want at least 20", resp.GetQueueMs())
	}
	if _, err := s.Infer(context.Background(), req); err != nil {
		t.Errorf("a request to an idle server: %v", err)
	}
	if _, err := NewServerQueue([]*ort.Chain{chain}, 1, -1); err == nil {
		t.Error("a negative queue bound was taken")
	}
}
