package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

// Server is a controller: its store, its learners and its gRPC listener.
// New restores it from the store; Start serves; Stop shuts it down.
type Server struct {
	cfg     Config
	log     *slog.Logger
	st      *store.Store
	reg     *registry
	com     *committer
	hub     *hub
	sink    *sink
	execs   *executors
	started time.Time

	keyMu sync.Mutex // serialises the making of keys

	grpc     *grpc.Server
	health   *health.Server
	lis      net.Listener
	stopping chan struct{}
	quit     chan struct{} // stops the learners and the sink
	wg       sync.WaitGroup
	comErr   chan error
	stopOnce sync.Once
	stopErr  error

	accepted, duplicates, rejected, published atomic.Uint64
}

// New opens the store, loads the models, restores every key's policy and
// replays the traces committed after its last checkpoint. It does not
// listen yet.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.StorePath == "" {
		return nil, fmt.Errorf("%w: config: a store path is required", ErrInvalid)
	}
	if cfg.TLS == nil && !cfg.Insecure {
		return nil, fmt.Errorf("%w: config: TLS is required (a certificate and key; `dyno-controller gen-cert` makes a self-signed pair), or Insecure for local tests", ErrInvalid)
	}
	if !slices.Contains(bandit.Names(), cfg.Bandit) {
		return nil, fmt.Errorf("%w: config: bandit %q (known: %s)", ErrInvalid, cfg.Bandit, strings.Join(bandit.Names(), ", "))
	}
	for name, o := range cfg.Objectives {
		if err := checkName("objective name", name); err != nil {
			return nil, err
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("objective %s: %w", name, err)
		}
	}
	if abs, err := filepath.Abs(cfg.StorePath); err == nil {
		// Status reports it; dynoctl backup compares it with its target.
		cfg.StorePath = abs
	}
	st, err := store.Open(cfg.StorePath, store.Options{NoSync: cfg.StoreNoSync, Create: cfg.StoreCreate, AllowMetaFallback: cfg.StoreAllowMetaFallback})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, st: st, reg: newRegistry(), hub: newHub(), execs: newExecutors(),
		stopping: make(chan struct{}), quit: make(chan struct{}), comErr: make(chan error, 1),
	}
	s.com = newCommitter(st, cfg.Logger, cfg.MaxGroupReports)
	s.com.dispatch = s.dispatch
	s.com.periodic = s.periodic
	if err := s.restore(); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.Influx.URL != "" {
		s.sink = newSink(cfg.Influx, cfg.Logger)
	}
	return s, nil
}

// restore loads models, keys, executors and policies from the store, and
// replays the trace log above each key's checkpoint.
func (s *Server) restore() error {
	// Nothing is written before everything stored has been decoded: a
	// store that is refused is left as it was.
	var dirModels []*store.Model
	fromDir := map[string]bool{}
	for _, dir := range s.cfg.ModelDirs {
		m, err := readModelDir(dir)
		if err != nil {
			return fmt.Errorf("load model: %w", err)
		}
		dirModels = append(dirModels, m)
		fromDir[m.Name] = true
	}
	for _, sm := range dirModels {
		m, err := decodeModel(sm)
		if err != nil {
			return fmt.Errorf("load model: %w", err)
		}
		if err := m.checkCloudClass(s.cfg.CloudClass); err != nil {
			return err
		}
		s.reg.addModel(m)
	}
	var replayFrom, next uint64
	err := s.st.View(func(tx *store.Tx) error {
		err := tx.ForEachModel(func(sm store.Model) error {
			if fromDir[sm.Name] {
				return nil // replaced by the folder's copy
			}
			m, err := decodeModel(&sm)
			if err != nil {
				return err
			}
			if err := m.checkCloudClass(s.cfg.CloudClass); err != nil {
				return err
			}
			s.reg.addModel(m)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEachKey(func(rec store.Key) error {
			m := s.reg.model(rec.Model)
			if m == nil {
				return fmt.Errorf("key %s: model %s is not in the store", rec.Key, rec.Model)
			}
			k, err := newKeyEntry(&rec, m)
			if err != nil {
				return fmt.Errorf("key %s: %w", rec.Key, err)
			}
			var obj costmodel.Objective
			if err := json.Unmarshal(rec.Objective, &obj); err != nil {
				return fmt.Errorf("key %s: objective: %w", rec.Key, err)
			}
			var pin *store.Pin
			if p, ok, err := tx.Pin(rec.Key); err != nil {
				return err
			} else if ok {
				pin = &p
			}
			st, ok, err := tx.State(rec.Key)
			if err != nil {
				return err
			}
			var stp *store.State
			if ok {
				stp = &st
			}
			l, err := newLearner(s, k, s.cfg.Bandit, obj, pin, floorSet{Explore: rec.ExploreFloor, Baseline: rec.BaselineFloor}, stp)
			if err != nil {
				return err
			}
			if p, ok := tx.LatestPolicy(rec.Key); ok {
				var pol api.Policy
				if err := proto.Unmarshal(p.Data, &pol); err != nil {
					return fmt.Errorf("key %s: policy %d: %w", rec.Key, p.Version, err)
				}
				l.version = max(l.version, pol.Version)
				l.latest.Store(&pol)
				l.lastPub = time.Unix(0, pol.PublishedUnixNano)
				s.hub.seed(&published{pol: &pol, enc: p.Data})
				l.ready1.Do(func() { close(l.ready) })
			}
			k.learner = l
			s.reg.addKey(k)
			s.com.ckptSeq[k.name] = l.applied
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEachExecutor(func(e store.Executor) error {
			n, err := tx.ReportCount(e.ID)
			if err != nil {
				return err
			}
			// The count committed with the reports, not the record's
			// copy written about once a second.
			e.Reports = n
			x := s.execs.put(e, s.cfg.ReportRate, s.cfg.ReportBurst)
			w, err := tx.Window(e.ID)
			x.through = w.Through
			return err
		})
		if err != nil {
			return err
		}
		replayFrom, next = tx.ReplayFrom(), tx.Traces().NextSeq
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore from %s: %w", s.st.Path(), err)
	}
	if replayFrom == 0 || replayFrom > next {
		replayFrom = next
	}
	if err := s.replay(replayFrom); err != nil {
		return err
	}
	if len(dirModels) == 0 {
		return nil
	}
	return s.st.Update(func(tx *store.Tx) error {
		for _, m := range dirModels {
			if err := tx.PutModel(m); err != nil {
				return err
			}
		}
		return nil
	})
}

// replay applies the traces from seq on to the keys whose state has not
// seen them.
func (s *Server) replay(from uint64) error {
	start := time.Now()
	counts := map[string]int{}
	err := s.st.View(func(tx *store.Tx) error {
		var k *keyEntry
		return tx.ForEachTrace(from, func(t store.Trace) (bool, error) {
			if k == nil || k.name != t.Key {
				k = s.reg.key(t.Key)
			}
			if k == nil || t.Seq <= k.learner.applied {
				return true, nil
			}
			l := k.learner
			r := banditReportOf(&t)
			if err := l.policy.Learn(&r); err != nil {
				s.log.Warn("replay: learn failed", "key", t.Key, "trace", t.Seq, "err", err)
			}
			l.applied = t.Seq
			l.reports++
			l.total++
			l.since++
			counts[t.Key]++
			s.com.lastSeq[t.Key] = t.Seq
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("replay the trace log from %d: %w", from, err)
	}
	for _, k := range s.reg.keyList() {
		k.learner.committed, k.learner.appliedShared = k.learner.applied, k.learner.applied
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	if n > 0 {
		s.log.Info("replayed the trace log into the keys' policies", "from", from, "reports", n, "keys", len(counts), "took", time.Since(start))
	}
	return nil
}

// replayInto applies the key's traces in (after, through] to p, the most
// recent limit of them.
func (s *Server) replayInto(p bandit.Policy, key string, after, through uint64, limit int) (int, error) {
	var seqs []uint64
	var reports []bandit.Report
	err := s.st.View(func(tx *store.Tx) error {
		// Walk back from the end to find where the last `limit` begin.
		from := after + 1
		rng := tx.Traces()
		if rng.Count > 0 && through > after && int(through-after) > limit {
			from = through - uint64(limit) + 1
			// Traces of other keys are interleaved: go further back until
			// limit traces of this key are found (bounded by after),
			// counting each stretch once: [from, end) is the one not yet
			// counted.
			end := through + 1
			for found := 0; ; {
				_ = tx.ForEachTrace(from, func(t store.Trace) (bool, error) {
					if t.Seq >= end {
						return false, nil
					}
					if t.Key == key {
						found++
					}
					return true, nil
				})
				if found >= limit || from <= after+1 {
					break
				}
				end = from
				step := uint64(limit - found)
				if from-after-1 < step {
					from = after + 1
				} else {
					from -= step
				}
			}
		}
		return tx.ForEachTrace(from, func(t store.Trace) (bool, error) {
			if t.Seq > through {
				return false, nil
			}
			if t.Key == key {
				seqs = append(seqs, t.Seq)
				reports = append(reports, banditReportOf(&t))
			}
			return true, nil
		})
	})
	if err != nil {
		return 0, err
	}
	if len(reports) > limit {
		reports = reports[len(reports)-limit:]
	}
	for i := range reports {
		if err := p.Learn(&reports[i]); err != nil {
			s.log.Warn("replay: learn failed", "key", key, "err", err)
		}
	}
	return len(reports), nil
}

// dispatch hands committed reports to their learners (committer goroutine).
func (s *Server) dispatch(byKey map[*keyEntry][]*item) {
	for k, items := range byKey {
		k.learner.deliver(items)
	}
}

// removeExecutors takes executors out of the fleet and deletes their
// records, windows and counts; it returns the ids removed.
func (s *Server) removeExecutors(ids []string) ([]string, error) {
	gone := s.execs.remove(ids)
	if len(gone) == 0 {
		return nil, nil
	}
	out := make([]string, len(gone))
	for i, x := range gone {
		out[i] = x.rec.ID
	}
	err := s.com.write(func(tx *store.Tx) error {
		s.com.forget(out)
		for _, id := range out {
			if err := tx.DeleteExecutor(id); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// periodic returns the committer's housekeeping: trace retention, the
// executors' records and the expiry of executors not seen for too long.
func (s *Server) periodic() *request {
	now := time.Now()
	var expired []string
	if d := s.cfg.ExecutorExpiry; d > 0 {
		for _, x := range s.execs.remove(s.execs.stale(now.Add(-d))) {
			expired = append(expired, x.rec.ID)
		}
		if len(expired) > 0 {
			s.log.Info("executors expired", "count", len(expired), "not_seen_for", d, "first", expired[0])
		}
	}
	recs := s.execs.dirtyRecords()
	r := s.cfg.Retention
	if len(recs) == 0 && len(expired) == 0 && r.MaxAge == 0 && r.MaxCount == 0 {
		return nil
	}
	return &request{apply: func(tx *store.Tx) error {
		s.com.forget(expired)
		for _, id := range expired {
			if err := tx.DeleteExecutor(id); err != nil {
				return err
			}
		}
		for i := range recs {
			if err := tx.PutExecutor(&recs[i]); err != nil {
				return err
			}
		}
		if r.MaxAge == 0 && r.MaxCount == 0 {
			return nil
		}
		n, err := tx.PruneTraces(r, now, 100_000)
		if n > 0 {
			s.log.Debug("trace retention", "deleted", n)
		}
		return err
	}}
}

// ensureKey returns the key of a model, device class and objective name,
// making it (and publishing its first version) if it does not exist.
func (s *Server) ensureKey(modelName, class, objName string) (*keyEntry, error) {
	name := keyName(modelName, class, objName)
	if k := s.reg.key(name); k != nil {
		return k, nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if k := s.reg.key(name); k != nil {
		return k, nil
	}
	m := s.reg.model(modelName)
	if m == nil {
		var known []string
		for _, k := range s.reg.models {
			known = append(known, k.name)
		}
		sort.Strings(known)
		return nil, badField("model", "unknown model %q (the controller has %s)", modelName, strings.Join(known, ", "))
	}
	obj, ok := s.cfg.Objectives[objName]
	if !ok {
		var known []string
		for n := range s.cfg.Objectives {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, badField("objective_name", "unknown objective %q (configured: %s)", objName, strings.Join(known, ", "))
	}
	cloud, err := m.cloudProfile(s.cfg.CloudClass)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(obj)
	rec := store.Key{Key: name, Model: modelName, DeviceClass: class, CloudClass: cloud.DeviceClass, ObjectiveName: objName, Objective: raw, CreatedAt: time.Now().UTC()}
	k, err := newKeyEntry(&rec, m)
	if err != nil {
		return nil, err
	}
	l, err := newLearner(s, k, s.cfg.Bandit, obj, nil, floorSet{}, nil)
	if err != nil {
		return nil, err
	}
	k.learner = l
	data, err := l.policy.MarshalBinary()
	if err != nil {
		return nil, err
	}
	first := l.snapshot("start", data, nil)
	done := make(chan error, 1)
	after := first.after
	req := &request{ckptKey: first.ckptKey, ckptSeq: first.ckptSeq,
		apply: func(tx *store.Tx) error {
			if err := tx.PutKey(&rec); err != nil {
				return err
			}
			return first.apply(tx)
		},
		after: func(err error) { after(err); done <- err },
	}
	// Register the key before the commit: the committer's after callback
	// publishes to the hub, and reports can only name it once it is there.
	s.reg.addKey(k)
	if err := s.com.submit(req); err != nil {
		s.removeKey(name)
		return nil, err
	}
	if err := s.com.waitErr(done); err != nil {
		s.removeKey(name)
		return nil, err
	}
	s.startLearner(l)
	s.log.Info("key created", "key", name, "bandit", l.kind, "objective", obj.Kind)
	return k, nil
}

func (s *Server) removeKey(name string) {
	s.reg.mu.Lock()
	delete(s.reg.keys, name)
	s.reg.mu.Unlock()
}

func (s *Server) startLearner(l *learner) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.run(s.quit)
	}()
}

// Start listens and serves in the background. Stop ends it.
func (s *Server) Start() error {
	lis, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
	return s.serve(lis)
}

func (s *Server) serve(lis net.Listener) error {
	s.lis = lis
	s.started = time.Now()
	auth := &authenticator{tokens: s.cfg.Tokens, log: s.log}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(auth.unary),
		grpc.ChainStreamInterceptor(auth.stream),
		grpc.MaxRecvMsgSize(s.cfg.MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(4096),
		grpc.ForceServerCodecV2(newCodec()),
		// Larger writes: a version goes out to every watcher at once.
		grpc.WriteBufferSize(256 << 10),
	}
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	api.RegisterExecutorServer(s.grpc, &executorService{srv: s})
	api.RegisterAdminServer(s.grpc, &adminService{srv: s})
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if !s.cfg.NoReflection {
		reflection.Register(s.grpc)
	}

	go func() { s.comErr <- s.com.run() }()
	for _, k := range s.reg.keyList() {
		l := k.learner
		if l.since > 0 || l.latest.Load() == nil {
			// What the replay learned, or a key with no version yet, is
			// published at once.
			l.lastPub = time.Time{}
			l.pendingReason = "restart"
			if l.since == 0 {
				l.since = 1
			}
		}
		s.startLearner(l)
	}
	if s.sink != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sink.run(s.quit)
		}()
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus("dyno.v1.Executor", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus("dyno.v1.Admin", healthpb.HealthCheckResponse_SERVING)
	go func() {
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("serve", "err", err)
		}
	}()
	s.log.Info("controller serving", "addr", lis.Addr().String(), "tls", s.cfg.TLS != nil, "store", s.st.Path(), "keys", len(s.reg.keyList()))
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Err reports the failure of the store that stopped the controller, if any.
func (s *Server) Err() error { return s.com.err() }

// Drain turns health to NOT_SERVING and keeps serving for delay, so that
// probes and load balancers see a draining server and send no new work
// before the listener closes (Stop). Run drains before it stops.
func (s *Server) Drain(delay time.Duration) {
	if s.health == nil {
		return
	}
	for _, svc := range []string{"", "dyno.v1.Executor", "dyno.v1.Admin"} {
		s.health.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	s.log.Info("draining: health is NOT_SERVING", "for", delay)
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.stopping:
		}
	}
}

// Stop shuts down: watchers are told to go, streams get grace until ctx is
// done, then what is queued is committed and the store closed.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	close(s.stopping)
	s.hub.closeAll()
	if s.grpc != nil {
		s.health.Shutdown()
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
		}
	}
	close(s.quit)
	s.wg.Wait()
	var err error
	if s.grpc != nil {
		err = s.com.close()
		<-s.comErr
	}
	if cerr := s.st.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run serves cfg until ctx is done or the store fails, then shuts down.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.Stop(context.Background())
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-s.comErr:
		s.comErr <- runErr
	}
	if runErr == nil {
		s.Drain(s.cfg.DrainDelay)
	}
	s.log.Info("controller stopping: streams get 5s to finish")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(sctx); runErr == nil {
		runErr = err
	}
	s.log.Info("controller stopped", "err", runErr)
	return runErr
}
