package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/executor/link"
)

// retry is the pause before reconnecting a stream the controller dropped.
const retry = 500 * time.Millisecond

// watch keeps the policy fresh: it subscribes with the version it holds,
// ACKs each update it could restore and NACKs one it could not (keeping
// the old), and resubscribes when the stream breaks.
func (a *Agent) watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := a.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("policy watch interrupted; deciding with the policy held", "version", a.PolicyVersion(), "err", err)
		if link.SleepContext(ctx, retry) != nil {
			return
		}
	}
}

func (a *Agent) watchOnce(ctx context.Context) error {
	stream, err := a.cfg.Controller.WatchPolicies(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&api.PolicyRequest{ExecutorId: a.cfg.ExecutorID, Key: a.key, VersionInfo: a.PolicyVersion()}); err != nil {
		return err
	}
	for {
		up, err := stream.Recv()
		if err != nil {
			return err
		}
		req := &api.PolicyRequest{Key: a.key, ResponseNonce: up.GetNonce(), VersionInfo: up.GetVersion()}
		if err := a.adopt(up.GetPolicy()); err != nil {
			req.VersionInfo, req.ErrorDetail = a.PolicyVersion(), err.Error()
			a.log.Error("policy update rejected", "version", up.GetVersion(), "err", err)
		} else {
			a.log.Debug("policy updated", "version", up.GetVersion())
		}
		if err := stream.Send(req); err != nil {
			return err
		}
	}
}

// reporter sends reports in batches over one stream and keeps every report
// until the controller acknowledges it durable; when the stream breaks it
// reconnects and sends again what was not acknowledged (the controller
// drops the duplicates).
type reporter struct {
	client     api.ExecutorClient
	executorID string
	maxBatch   int
	maxKept    int
	log        *slog.Logger

	mu      sync.Mutex
	pending []*api.Report // not yet acknowledged, in seq order
	sent    int           // pending[:sent] went out on the current stream
	acked   uint64
	seq     uint64 // the last seq given
	wake    chan struct{}
	dropped atomic.Int64
	batchID uint64
}

func newReporter(c api.ExecutorClient, executorID string, limits *api.Limits, maxKept int, seq uint64, log *slog.Logger) *reporter {
	maxBatch := int(limits.GetMaxBatchReports())
	if maxBatch <= 0 || maxBatch > 512 {
		maxBatch = 512
	}
	return &reporter{client: c, executorID: executorID, maxBatch: maxBatch, maxKept: maxKept, log: log, seq: seq, wake: make(chan struct{}, 1)}
}

// add gives a report the next seq and queues it; when maxKept are waiting
// it is dropped and counted (its seq stays used). Reports finish out of
// order under pipelining; the seq is given here, under the lock, so that
// pending stays in seq order.
func (r *reporter) add(rep *api.Report) {
	r.mu.Lock()
	r.seq++
	rep.Seq = r.seq
	if len(r.pending) >= r.maxKept {
		r.mu.Unlock()
		if r.dropped.Add(1) == 1 {
			r.log.Error("report buffer full: dropping reports until the controller acknowledges some", "kept", r.maxKept)
		}
		return
	}
	r.pending = append(r.pending, rep)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run keeps a report stream up until ctx ends.
func (r *reporter) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("report stream interrupted; buffering", "pending", r.pendingCount(), "err", err)
		if link.SleepContext(ctx, retry) != nil {
			return
		}
	}
}

func (r *reporter) pendingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// stream sends batches and reads acks on one stream until it breaks.
func (r *reporter) stream(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := r.client.Report(sctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.sent = 0 // a new stream: everything pending goes again
	r.mu.Unlock()
	acks := make(chan error, 1)
	go func() {
		for {
			ack, err := s.Recv()
			if err != nil {
				acks <- err
				return
			}
			r.mu.Lock()
			through := ack.GetAckedThroughSeq()
			n := 0
			for n < len(r.pending) && r.pending[n].GetSeq() <= through {
				n++
			}
			r.pending = r.pending[n:]
			r.sent = max(0, r.sent-n)
			r.acked = max(r.acked, through)
			r.mu.Unlock()
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	}()
	for {
		r.mu.Lock()
		batch := r.pending[r.sent:min(len(r.pending), r.sent+r.maxBatch)]
		r.sent += len(batch)
		r.batchID++
		id := r.batchID
		r.mu.Unlock()
		if len(batch) > 0 {
			if err := s.Send(&api.ReportBatch{BatchId: id, ExecutorId: r.executorID, Reports: batch}); err != nil {
				return err
			}
			continue
		}
		select {
		case <-r.wake:
		case err := <-acks:
			if errors.Is(err, io.EOF) {
				return errors.New("the controller closed the report stream")
			}
			if status.Code(err) == codes.InvalidArgument {
				// A refused batch would be refused again: drop what was in
				// flight, count it and say why.
				r.mu.Lock()
				n := r.sent
				r.pending = r.pending[n:]
				r.sent = 0
				r.mu.Unlock()
				r.dropped.Add(int64(n))
				r.log.Error("reports refused by the controller and dropped", "reports", n, "err", err)
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush waits until every report is acknowledged, ctx ends or d passes;
// reports still unacknowledged then are an error that counts them.
func (r *reporter) flush(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		n := r.pendingCount()
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("device: %d reports not acknowledged by the controller before the executor stopped", n)
		}
		if link.SleepContext(ctx, 20*time.Millisecond) != nil {
			continue
		}
	}
}
