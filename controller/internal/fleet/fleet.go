// Package fleet simulates executors against a controller, for the
// controller's tests and its load command: plausible reports drawn from the
// cost model with noise, report streams that keep a window of batches in
// flight and record what was acknowledged, and policy watchers that ACK
// what they receive and measure how long a version took to arrive.
//
// It is a test harness, not an executor: it runs no network and sends what
// the cost model predicts, perturbed.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
)

// LoadModel builds the cost model of a model folder (model.json,
// accuracy.json, profiles/) for a device class and cloud class.
func LoadModel(dir, device, cloud string) (*costmodel.Model, error) {
	return costmodel.LoadDir(dir, device, cloud)
}

// Generator draws reports: a uniformly random arm (propensity 1/arms), a
// link that wanders, and stage times that the cost model predicts times a
// noise factor. It is not safe for concurrent use.
type Generator struct {
	cm  *costmodel.Model
	key string
	rng *rand.Rand
	bw  float64
}

// NewGenerator seeds a generator for key.
func NewGenerator(cm *costmodel.Model, key string, seed uint64) *Generator {
	return &Generator{cm: cm, key: key, rng: rand.New(rand.NewPCG(seed, 7)), bw: 10}
}

// Report draws the report numbered seq.
func (g *Generator) Report(seq uint64) *api.Report {
	arms := g.cm.Arms()
	i := g.rng.IntN(len(arms))
	g.bw = math.Min(100, math.Max(0.5, g.bw*math.Exp(0.05*g.rng.NormFloat64())))
	c := costmodel.Conditions{BandwidthMbps: g.bw, RTTMs: 20 + 10*g.rng.Float64()}
	s := g.cm.Predict(i, c)
	noise := func(v float64) float64 { return v * math.Exp(0.1*g.rng.NormFloat64()) }
	acc := 0.0
	if g.rng.Float64() < s.Accuracy {
		acc = 1
	}
	r := &api.Report{
		Seq: seq, Key: g.key, Arm: &api.Arm{Split: uint32(arms[i].Split), Bits: uint32(arms[i].Bits)},
		Propensity: 1 / float64(len(arms)), Explore: g.rng.IntN(4) == 0, PolicyVersion: 1,
		Conditions: &api.Conditions{BandwidthMbps: c.BandwidthMbps, RttMs: c.RTTMs},
		Stages: &api.Stages{DeviceMs: noise(s.DeviceMs), PackMs: noise(s.PackMs), NetworkMs: noise(s.NetworkMs), RttMs: s.RTTMs,
			CloudMs: noise(s.CloudMs), UnpackMs: noise(s.UnpackMs)},
		Bytes: s.Bytes, Accuracy: &acc, StartUnixNano: time.Now().UnixNano(), RequestId: fmt.Sprintf("r%d", seq),
	}
	return r
}

// Batch draws n reports numbered from seq.
func (g *Generator) Batch(seq uint64, n int) []*api.Report {
	out := make([]*api.Report, n)
	for i := range out {
		out[i] = g.Report(seq + uint64(i))
	}
	return out
}

// Acks records what a report stream had acknowledged: every batch's
// reports by seq. It is safe for concurrent use.
type Acks struct {
	mu         sync.Mutex
	Seqs       map[uint64]bool
	Accepted   int
	Duplicates int
	Batches    int
	Through    uint64
}

// NewAcks makes an empty record.
func NewAcks() *Acks { return &Acks{Seqs: map[uint64]bool{}} }

func (a *Acks) add(reports []*api.Report, ack *api.ReportAck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range reports {
		a.Seqs[r.Seq] = true
	}
	a.Accepted += int(ack.Accepted)
	a.Duplicates += int(ack.Duplicates)
	a.Batches++
	a.Through = max(a.Through, ack.AckedThroughSeq)
}

// Count returns how many distinct reports were acknowledged.
func (a *Acks) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.Seqs)
}

// Sender abstracts the two report streams the load command compares (the
// controller's and a bare echo server's): both send ReportBatch and receive
// ReportAck.
type Sender interface {
	Send(*api.ReportBatch) error
	Recv() (*api.ReportAck, error)
	CloseSend() error
}

// Stream sends batches with up to window of them in flight, and records
// every ack. Send blocks while the window is full.
type Stream struct {
	s       Sender
	exec    string
	window  chan []*api.Report
	acks    *Acks
	done    chan struct{}
	err     error
	nextID  uint64
	onAck   func(n int)
	sendMu  sync.Mutex
	closeMu sync.Once
}

// NewStream starts reading acks of s. onAck, if not nil, is called with
// the size of each acknowledged batch.
func NewStream(s Sender, exec string, window int, acks *Acks, onAck func(n int)) *Stream {
	st := &Stream{s: s, exec: exec, window: make(chan []*api.Report, window), acks: acks, done: make(chan struct{}), onAck: onAck}
	go st.recv()
	return st
}

func (st *Stream) recv() {
	defer close(st.done)
	for {
		ack, err := st.s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				st.err = err
			}
			return
		}
		var batch []*api.Report
		select {
		case batch = <-st.window:
		default:
			st.err = fmt.Errorf("ack %d for no batch in flight", ack.BatchId)
			return
		}
		if st.acks != nil {
			st.acks.add(batch, ack)
		}
		if st.onAck != nil {
			st.onAck(len(batch))
		}
	}
}

// Send sends one batch; it blocks while the window is full and fails once
// the stream has ended.
func (st *Stream) Send(reports []*api.Report) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	select {
	case st.window <- reports:
	case <-st.done:
		return st.Err()
	}
	st.nextID++
	return st.s.Send(&api.ReportBatch{BatchId: st.nextID, ExecutorId: st.exec, Reports: reports})
}

// Close half-closes the stream and waits for the acks of what is in flight.
func (st *Stream) Close() error {
	st.closeMu.Do(func() {
		st.sendMu.Lock()
		st.s.CloseSend()
		st.sendMu.Unlock()
	})
	<-st.done
	return st.err
}

// Err is why the stream ended, nil for a clean end.
func (st *Stream) Err() error {
	select {
	case <-st.done:
		return st.err
	default:
		return nil
	}
}

// Done is closed when the stream has ended.
func (st *Stream) Done() <-chan struct{} { return st.done }

// Watcher watches one key's policy, ACKs every update, and records the
// versions it received with their delay from publication.
type Watcher struct {
	mu       sync.Mutex
	Version  uint64
	Received []Received
	stream   api.Executor_WatchPoliciesClient
	done     chan struct{}
	err      error
	exec     string
	key      string
	notify   chan struct{}
	NACK     func(*api.PolicyUpdate) string
	// sendMu serialises Send and CloseSend, which gRPC does not allow at
	// the same time.
	sendMu sync.Mutex
}

// Received is one update.
type Received struct {
	Version uint64
	Delay   time.Duration
	Reason  string
	Pin     *api.Pin
}

// Watch subscribes to key holding version have.
func Watch(ctx context.Context, c api.ExecutorClient, exec, key string, have uint64) (*Watcher, error) {
	s, err := c.WatchPolicies(ctx)
	if err != nil {
		return nil, err
	}
	w := &Watcher{stream: s, done: make(chan struct{}), exec: exec, key: key, Version: have, notify: make(chan struct{}, 1)}
	if err := s.Send(&api.PolicyRequest{ExecutorId: exec, Key: key, VersionInfo: have}); err != nil {
		return nil, err
	}
	go w.run()
	return w, nil
}

func (w *Watcher) run() {
	defer close(w.done)
	for {
		u, err := w.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.err = err
			}
			return
		}
		delay := time.Since(time.Unix(0, u.Policy.GetPublishedUnixNano()))
		req := &api.PolicyRequest{ExecutorId: w.exec, Key: u.Key, ResponseNonce: u.Nonce}
		w.mu.Lock()
		nack := ""
		if w.NACK != nil {
			nack = w.NACK(u)
		}
		if nack == "" {
			w.Version = u.Version
			w.Received = append(w.Received, Received{Version: u.Version, Delay: delay, Reason: u.Policy.GetReason(), Pin: u.Policy.GetPin()})
		}
		req.VersionInfo, req.ErrorDetail = w.Version, nack
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
		w.sendMu.Lock()
		err = w.stream.Send(req)
		w.sendMu.Unlock()
		if err != nil {
			w.err = err
			return
		}
	}
}

// Current returns the version held and the updates received so far.
func (w *Watcher) Current() (uint64, []Received) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Version, append([]Received(nil), w.Received...)
}

// WaitVersion waits until the watcher holds at least version v.
func (w *Watcher) WaitVersion(ctx context.Context, v uint64) error {
	for {
		if cur, _ := w.Current(); cur >= v {
			return nil
		}
		select {
		case <-w.notify:
		case <-w.done:
			return fmt.Errorf("watcher ended at version %d waiting for %d: %v", w.Version, v, w.err)
		case <-ctx.Done():
			cur, _ := w.Current()
			return fmt.Errorf("watcher at version %d waiting for %d: %w", cur, v, ctx.Err())
		}
	}
}

// Close ends the watch.
func (w *Watcher) Close() error {
	w.sendMu.Lock()
	w.stream.CloseSend()
	w.sendMu.Unlock()
	<-w.done
	return w.err
}

// Done is closed when the watch has ended.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err is why the watch ended.
func (w *Watcher) Err() error { return w.err }
