package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/store"
)

// executorService implements api.ExecutorServer.
type executorService struct {
	api.UnimplementedExecutorServer
	srv *Server
}

// maxRateWait is the longest a batch over its executor's rate is held back
// before the stream is refused with ResourceExhausted.
const maxRateWait = time.Second

// reportWindow is how many batches of one stream may wait for their commit.
const reportWindow = 64

// Register implements api.ExecutorServer.
func (s *executorService) Register(ctx context.Context, req *api.RegisterRequest) (*api.RegisterResponse, error) {
	resp, err := s.register(ctx, req)
	return resp, toStatus(err)
}

func (s *executorService) register(ctx context.Context, req *api.RegisterRequest) (*api.RegisterResponse, error) {
	srv := s.srv
	objName := req.ObjectiveName
	if objName == "" {
		objName = "default"
	}
	for _, f := range []struct{ field, v string }{{"executor_id", req.ExecutorId}, {"model", req.Model}, {"device_class", req.DeviceClass}, {"objective_name", objName}} {
		if err := checkName(f.field, f.v); err != nil {
			return nil, err
		}
	}
	if err := checkLabels(req.Labels, req.Version); err != nil {
		return nil, err
	}
	k, err := srv.ensureKey(req.Model, req.DeviceClass, objName)
	if err != nil {
		return nil, err
	}
	select {
	case <-k.learner.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	owner := identity(ctx)
	if err := mayActAs(ctx, req.ExecutorId); err != nil {
		return nil, err
	}
	quota := srv.cfg.MaxExecutorsPerIdentity
	if t := tokenOf(ctx); t != nil && t.MaxExecutors > 0 {
		quota = t.MaxExecutors
	}
	x, fresh, err := srv.execs.claim(req.ExecutorId, owner, quota, srv.cfg.ReportRate, srv.cfg.ReportBurst)
	if err != nil {
		srv.log.Warn("registration refused", "executor", req.ExecutorId, "identity", owner, "err", err)
		return nil, err
	}
	now := time.Now().UTC()
	rec := store.Executor{ID: req.ExecutorId, Key: k.name, Model: k.model, DeviceClass: k.deviceClass, Version: req.Version, Labels: req.Labels,
		TokenName: tokenName(ctx), Owner: owner, RegisteredAt: now, LastSeen: now}
	if !fresh {
		x.mu.Lock()
		rec.RegisteredAt, rec.Reports, rec.AckedVersion, rec.LastNACK = x.rec.RegisteredAt, x.rec.Reports, x.rec.AckedVersion, x.rec.LastNACK
		x.mu.Unlock()
	}
	var through uint64
	err = srv.com.write(func(tx *store.Tx) error {
		var err error
		if through, err = srv.com.through(tx, rec.ID); err != nil {
			return err
		}
		if rec.Reports, err = srv.com.count(tx, rec.ID); err != nil {
			return err
		}
		return tx.PutExecutor(&rec)
	})
	if err != nil {
		if fresh {
			srv.execs.unclaim(x)
		}
		return nil, err
	}
	srv.execs.set(x, rec)
	x.mu.Lock()
	x.through = max(x.through, through)
	x.mu.Unlock()
	srv.log.Info("executor registered", "executor", rec.ID, "key", k.name, "token_name", rec.TokenName)
	return &api.RegisterResponse{Key: k.name, Policy: k.learner.latest.Load(), AckedThroughSeq: through, Limits: srv.limits(), Arms: k.learner.arms}, nil
}

// Report implements api.ExecutorServer.
func (s *executorService) Report(stream api.Executor_ReportServer) error {
	return toStatus(s.report(stream))
}

type inflight struct {
	rr      *reportsReq
	batchID uint64
}

func (s *executorService) report(stream api.Executor_ReportServer) error {
	srv := s.srv
	ctx := stream.Context()
	var (
		x       *execState
		execID  string
		execKey string
	)
	acks := make(chan inflight, reportWindow)
	senderDone := make(chan struct{})
	var sendErr error
	var failed atomic.Bool
	// broken is closed when an ack cannot be given (a refused batch, a
	// failed send), so that the stream ends without waiting for the
	// client's next batch.
	broken := make(chan struct{})
	go func() {
		defer close(senderDone)
		for f := range acks {
			if failed.Load() {
				continue
			}
			err := srv.com.wait(f.rr)
			if err == nil {
				x.seen(time.Now(), f.rr.reports, f.rr.through)
				srv.accepted.Add(uint64(f.rr.accepted))
				srv.duplicates.Add(uint64(f.rr.duplicates))
				x.used(f.rr.items)
				err = stream.Send(&api.ReportAck{BatchId: f.batchID, Accepted: uint32(f.rr.accepted), Duplicates: uint32(f.rr.duplicates), AckedThroughSeq: f.rr.through})
			}
			if err != nil && !failed.Load() {
				sendErr = err
				failed.Store(true)
				close(broken)
			}
		}
	}()
	finish := func(err error) error {
		close(acks)
		<-senderDone
		if err == nil {
			err = sendErr
		}
		return err
	}
	batches := receive[api.ReportBatch](stream.Context(), stream.Recv)
	for {
		var b *api.ReportBatch
		select {
		case r := <-batches:
			if errors.Is(r.err, io.EOF) {
				return finish(nil)
			}
			if r.err != nil {
				return finish(r.err)
			}
			b = r.msg
		case <-srv.stopping:
			return finish(fmt.Errorf("%w: shutting down; what was acknowledged is durable, resend the rest", ErrStopping))
		case <-broken:
			return finish(nil)
		}
		if failed.Load() {
			return finish(nil)
		}
		if x == nil {
			if err := checkName("executor_id", b.ExecutorId); err != nil {
				return finish(err)
			}
			var err error
			if x, err = srv.bound(ctx, b.ExecutorId); err != nil {
				return finish(err)
			}
			execID = b.ExecutorId
			x.mu.Lock()
			execKey = x.rec.Key
			x.connected++
			x.mu.Unlock()
			defer func() {
				x.mu.Lock()
				x.connected--
				x.mu.Unlock()
			}()
		} else if b.ExecutorId != "" && b.ExecutorId != execID {
			return finish(badField(fmt.Sprintf("batch %d: executor_id", b.BatchId), "%q, but this stream reports for %q", b.ExecutorId, execID))
		}
		x.mu.Lock()
		gone := x.removed
		x.mu.Unlock()
		if gone {
			return finish(fmt.Errorf("%w: executor %q was removed: register it again", ErrConflict, execID))
		}
		// Validate first: a batch that breaks the limits or the schema is
		// refused as such, whatever the executor's rate budget.
		items, err := validateBatch(srv.reg, execID, execKey, b, time.Now(), srv.cfg.MaxBatchReports)
		if err != nil {
			srv.rejected.Add(uint64(len(b.Reports)))
			srv.log.Warn("batch rejected", "executor", execID, "err", err)
			return finish(err)
		}
		if err := s.pace(ctx, x, len(b.Reports)); err != nil {
			srv.rejected.Add(uint64(len(b.Reports)))
			return finish(err)
		}
		rr := &reportsReq{exec: execID, items: items, done: make(chan struct{})}
		if err := srv.com.submit(&request{reports: rr}); err != nil {
			return finish(err)
		}
		acks <- inflight{rr: rr, batchID: b.BatchId}
	}
}

// Bounds of what a registration may carry, so that the records of a
// fleet stay small (ListExecutors pages them).
const (
	maxLabels     = 32
	maxLabelKey   = 64
	maxLabelValue = 256
	maxVersionLen = 128
)

func checkLabels(labels map[string]string, version string) error {
	if len(labels) > maxLabels {
		return badField("labels", "%d labels, at most %d", len(labels), maxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > maxLabelKey || len(v) > maxLabelValue {
			return badField("labels", "%.40q=%.40q: a key of 1 to %d bytes and a value of at most %d", k, v, maxLabelKey, maxLabelValue)
		}
	}
	if len(version) > maxVersionLen {
		return badField("version", "%d bytes, at most %d", len(version), maxVersionLen)
	}
	return nil
}

// bound returns the executor a stream acts as, once the caller is its
// owner.
func (s *Server) bound(ctx context.Context, id string) (*execState, error) {
	if err := checkName("executor_id", id); err != nil {
		return nil, err
	}
	if err := mayActAs(ctx, id); err != nil {
		return nil, err
	}
	x := s.execs.get(id)
	if x == nil {
		return nil, fmt.Errorf("%w: executor %q is not registered: call Register first", ErrConflict, id)
	}
	x.mu.Lock()
	owner, claimed := x.rec.OwnerOf(), x.claimed
	x.mu.Unlock()
	if claimed {
		return nil, fmt.Errorf("%w: executor %q is not registered yet: wait for Register to return", ErrConflict, id)
	}
	if who := identity(ctx); owner != who {
		s.log.Warn("refused to act as another's executor", "executor", id, "identity", who)
		return nil, fmt.Errorf("%w: executor %q belongs to another identity than %s", ErrPermission, id, who)
	}
	return x, nil
}

// pace holds a batch back while its executor is over its rate, and refuses
// it when the wait would be too long.
func (s *executorService) pace(ctx context.Context, x *execState, n int) error {
	for {
		x.mu.Lock()
		wait := x.limiter.take(n, time.Now())
		x.mu.Unlock()
		if wait == 0 {
			return nil
		}
		if wait > maxRateWait {
			return fmt.Errorf("%w: executor %s: %d reports exceed its rate of %.0f reports/s (burst %d); slow down", ErrRateLimited, x.rec.ID, n, s.srv.cfg.ReportRate, s.srv.cfg.ReportBurst)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// WatchPolicies implements api.ExecutorServer.
func (s *executorService) WatchPolicies(stream api.Executor_WatchPoliciesServer) error {
	return toStatus(s.watch(stream))
}

func (s *executorService) watch(stream api.Executor_WatchPoliciesServer) error {
	srv := s.srv
	ctx, cancel := context.WithCancel(stream.Context())
	w := newWatcher()
	srv.hub.add(w)
	defer srv.hub.remove(w)
	// nonces[key] is the nonce of the last update sent for key.
	type sentUpdate struct {
		nonce   string
		version uint64
	}
	var nonces = map[string]sentUpdate{}
	var nonceMu sync.Mutex
	lock, unlock := nonceMu.Lock, nonceMu.Unlock
	senderDone := make(chan struct{})
	var sendErr error
	go func() {
		defer close(senderDone)
		var batch []*published
		var n uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			if w.closing.Load() {
				sendErr = fmt.Errorf("%w: shutting down", ErrStopping)
				cancel()
				return
			}
			batch = w.take(batch[:0])
			for _, p := range batch {
				n++
				key, version := p.pol.Key, p.pol.Version
				nonce := strconv.FormatUint(version, 10) + "-" + strconv.FormatUint(n, 10)
				lock()
				nonces[key] = sentUpdate{nonce: nonce, version: version}
				unlock()
				if err := stream.SendMsg(encodeUpdate(key, version, nonce, p.enc)); err != nil {
					sendErr = err
					cancel()
					return
				}
			}
			clear(batch)
		}
	}()
	var x *execState
	reqs := receive[api.PolicyRequest](ctx, stream.Recv)
	err := func() error {
		for {
			var req *api.PolicyRequest
			select {
			case r := <-reqs:
				if errors.Is(r.err, io.EOF) {
					return nil
				}
				if r.err != nil {
					return r.err
				}
				req = r.msg
			case <-ctx.Done():
				// The sender stopped (shutting down, or a failed send).
				return nil
			}
			if x == nil {
				var err error
				if x, err = srv.bound(ctx, req.ExecutorId); err != nil {
					return err
				}
				x.mu.Lock()
				x.connected++
				x.mu.Unlock()
				defer func() {
					x.mu.Lock()
					x.connected--
					x.mu.Unlock()
				}()
			}
			if srv.reg.key(req.Key) == nil {
				return badField("key", "unknown key %q", req.Key)
			}
			if req.ResponseNonce == "" {
				srv.hub.subscribe(w, req.Key, req.VersionInfo)
				continue
			}
			lock()
			last := nonces[req.Key]
			unlock()
			if req.ResponseNonce != last.nonce {
				continue // answers an update superseded since: ignored, as in xDS
			}
			x.mu.Lock()
			if req.ErrorDetail == "" {
				x.rec.AckedVersion = req.VersionInfo
			} else {
				x.rec.LastNACK = fmt.Sprintf("version %d: %s", last.version, req.ErrorDetail)
			}
			x.rec.LastSeen = time.Now().UTC()
			x.dirty = true
			x.mu.Unlock()
			if req.ErrorDetail != "" {
				srv.log.Warn("policy NACKed", "executor", req.ExecutorId, "key", req.Key, "version", last.version, "keeps", req.VersionInfo, "detail", req.ErrorDetail)
			}
		}
	}()
	cancel()
	<-senderDone
	if err == nil && sendErr != nil && !errors.Is(sendErr, context.Canceled) {
		err = sendErr
	}
	return err
}

// received is one message read from a stream, or why the stream ended.
type received[T any] struct {
	msg *T
	err error
}

// receive reads a stream in its own goroutine, so that a handler can leave
// when the controller shuts down instead of waiting for the client's next
// message. The goroutine ends with the stream: gRPC fails its Recv once the
// handler has returned.
func receive[T any](ctx context.Context, recv func() (*T, error)) <-chan received[T] {
	out := make(chan received[T], 16)
	go func() {
		for {
			m, err := recv()
			select {
			case out <- received[T]{msg: m, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// limits are what Register tells executors.
func (s *Server) limits() *api.Limits {
	return &api.Limits{MaxBatchReports: uint32(s.cfg.MaxBatchReports), MaxMessageBytes: uint32(s.cfg.MaxMessageBytes),
		ReportsPerSecond: s.cfg.ReportRate, ReportBurst: uint32(s.cfg.ReportBurst)}
}
