package controller

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

// adminService implements api.AdminServer.
type adminService struct {
	api.UnimplementedAdminServer
	srv *Server
}

// Status implements api.AdminServer.
func (a *adminService) Status(ctx context.Context, _ *api.StatusRequest) (*api.StatusResponse, error) {
	s := a.srv
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pm := processMemory()
	resp := &api.StatusResponse{
		Version: s.cfg.Version, StartedUnixNano: s.started.UnixNano(), StorePath: s.st.Path(), StoreBytes: s.st.Size(),
		ReportsAccepted: s.accepted.Load(), ReportsDuplicate: s.duplicates.Load(), ReportsRejected: s.rejected.Load(),
		Commits: s.com.commits.Load(), Keys: uint32(len(s.reg.keyList())), Executors: uint32(len(s.execs.list())),
		Watchers: uint32(s.hub.count.Load()), HeapBytes: ms.HeapAlloc, RssBytes: pm.rss, PeakRssBytes: pm.peak,
		AnonRssBytes: pm.anon, FileRssBytes: pm.file, GoSysBytes: ms.Sys,
		Bandit: s.cfg.Bandit, PoliciesPublished: s.published.Load(),
	}
	resp.StoreDevice, resp.StoreInode = s.st.FileID()
	if s.sink != nil {
		resp.InfluxEnabled = true
		resp.InfluxPointsWritten = s.sink.written.Load()
		resp.InfluxPointsDropped = s.sink.dropped.Load()
	}
	err := s.st.View(func(tx *store.Tx) error {
		r := tx.Traces()
		resp.Traces, resp.FirstTraceSeq, resp.LastTraceSeq = r.Count, r.First, r.Last
		resp.SchemaVersion = tx.Schema()
		return nil
	})
	return resp, toStatus(err)
}

// ListKeys implements api.AdminServer.
func (a *adminService) ListKeys(ctx context.Context, _ *api.ListKeysRequest) (*api.ListKeysResponse, error) {
	s := a.srv
	byKey := s.execs.countByKey()
	resp := &api.ListKeysResponse{}
	for _, k := range s.reg.keyList() {
		ki := &api.KeyInfo{Key: k.name, Model: k.model, DeviceClass: k.deviceClass, ObjectiveName: k.objectiveName,
			Executors: uint32(byKey[k.name]), Watchers: uint32(s.hub.watchers(k.name)), PendingReports: k.learner.pending()}
		if p := k.learner.latest.Load(); p != nil {
			ki.Objective, ki.Version, ki.Reports, ki.TotalReports, ki.PublishedUnixNano, ki.Pin = p.Objective, p.Version, p.Reports, p.TotalReports, p.PublishedUnixNano, p.Pin
		}
		resp.Keys = append(resp.Keys, ki)
	}
	return resp, nil
}

func (a *adminService) key(name string) (*keyEntry, error) {
	if name == "" {
		return nil, badField("key", "empty")
	}
	k := a.srv.reg.key(name)
	if k == nil {
		return nil, fmt.Errorf("%w: key %q (dynoctl keys lists them)", ErrNotFound, name)
	}
	return k, nil
}

// GetPolicy implements api.AdminServer.
func (a *adminService) GetPolicy(ctx context.Context, req *api.GetPolicyRequest) (*api.Policy, error) {
	k, err := a.key(req.Key)
	if err != nil {
		return nil, toStatus(err)
	}
	p := k.learner.latest.Load()
	if p == nil {
		return nil, toStatus(fmt.Errorf("%w: key %q has no published policy yet", ErrNotFound, req.Key))
	}
	c := costmodel.Conditions{BandwidthMbps: req.BandwidthMbps, RTTMs: req.RttMs}
	if c.BandwidthMbps == 0 {
		c.BandwidthMbps = 10
	}
	if c.RTTMs == 0 {
		c.RTTMs = 40
	}
	if err := c.Validate(); err != nil {
		return nil, toStatus(err)
	}
	sum, err := summarize(k, p, c)
	if err != nil {
		// The version itself is sound (executors restore it); say why
		// there is no summary rather than fail the call.
		a.srv.log.Warn("policy summary", "key", k.name, "version", p.Version, "err", err)
		return p, nil
	}
	out := proto.Clone(p).(*api.Policy)
	out.Summary = sum
	return out, nil
}

// change hands an operator's change to the key's learner and waits for the
// version that carries it.
func (a *adminService) change(ctx context.Context, name string, op *adminOp) (*api.AdminChange, error) {
	k, err := a.key(name)
	if err != nil {
		return nil, toStatus(err)
	}
	op.by, op.at = tokenName(ctx), time.Now().UTC()
	if op.pin != nil {
		op.pin.Key, op.pin.By, op.pin.At = k.name, op.by, op.at
	}
	op.result = make(chan opResult, 1)
	k.learner.enqueue(learnMsg{op: op})
	select {
	case r := <-op.result:
		if r.err != nil {
			return nil, toStatus(r.err)
		}
		a.srv.log.Info("operator change", "key", k.name, "action", op.action, "by", op.by, "version", r.version)
		return &api.AdminChange{Key: k.name, Version: r.version, By: op.by, AtUnixNano: op.at.UnixNano(), Action: op.action}, nil
	case <-ctx.Done():
		return nil, toStatus(ctx.Err())
	case <-a.srv.com.stopped:
		return nil, toStatus(fmt.Errorf("%w: shutting down", ErrStopping))
	}
}

// Pin implements api.AdminServer.
func (a *adminService) Pin(ctx context.Context, req *api.PinRequest) (*api.AdminChange, error) {
	k, err := a.key(req.Key)
	if err != nil {
		return nil, toStatus(err)
	}
	if req.Arm == nil {
		return nil, toStatus(badField("arm", "missing"))
	}
	arm := costmodel.Arm{Split: int(req.Arm.Split), Bits: int(req.Arm.Bits)}
	if _, ok := k.cm.Index(arm); !ok {
		return nil, toStatus(badField("arm", "%v is not an arm of model %s (splits 0..%d, bits %v; device-only is s%d/b32)", arm, k.model, k.cm.Manifest.K(), k.cm.Manifest.AllowedBits, k.cm.Manifest.K()))
	}
	if req.DurationMs < 0 {
		return nil, toStatus(badField("duration_ms", "%d is negative", req.DurationMs))
	}
	pin := &store.Pin{Split: arm.Split, Bits: arm.Bits, Reason: req.Reason}
	if req.DurationMs > 0 {
		pin.Until = time.Now().Add(time.Duration(req.DurationMs) * time.Millisecond).UTC()
	}
	return a.change(ctx, req.Key, &adminOp{action: "pin", pin: pin})
}

// Unpin implements api.AdminServer.
func (a *adminService) Unpin(ctx context.Context, req *api.UnpinRequest) (*api.AdminChange, error) {
	return a.change(ctx, req.Key, &adminOp{action: "unpin"})
}

// Reset implements api.AdminServer.
func (a *adminService) Reset(ctx context.Context, req *api.ResetRequest) (*api.AdminChange, error) {
	return a.change(ctx, req.Key, &adminOp{action: "reset"})
}

// SetObjective implements api.AdminServer.
func (a *adminService) SetObjective(ctx context.Context, req *api.SetObjectiveRequest) (*api.AdminChange, error) {
	if req.Objective == nil {
		return nil, toStatus(badField("objective", "missing"))
	}
	o := objectiveOf(req.Objective)
	if err := o.Validate(); err != nil {
		return nil, toStatus(err)
	}
	return a.change(ctx, req.Key, &adminOp{action: "objective", objective: &o})
}

// SetFloors implements api.AdminServer.
func (a *adminService) SetFloors(ctx context.Context, req *api.SetFloorsRequest) (*api.AdminChange, error) {
	k, err := a.key(req.Key)
	if err != nil {
		return nil, toStatus(err)
	}
	if req.ExploreFloor == nil && req.BaselineFloor == nil {
		return nil, toStatus(badField("explore_floor", "neither explore_floor nor baseline_floor given: nothing to change"))
	}
	if k.learner.kind != bandit.NameDyno {
		return nil, toStatus(fmt.Errorf("%w: key %s learns with %s: the exploration floors are dyno's", ErrConflict, k.name, k.learner.kind))
	}
	// Each floor is checked alone, so that the error names the one given.
	off := func(v float64) *float64 {
		if v < 0 {
			v = -1
		}
		return &v
	}
	c := &floorChange{}
	if v := req.ExploreFloor; v != nil {
		if err := bandit.CheckFloors(*v, 0); err != nil {
			return nil, toStatus(err)
		}
		c.explore = off(*v)
	}
	if v := req.BaselineFloor; v != nil {
		if err := bandit.CheckFloors(0, *v); err != nil {
			return nil, toStatus(err)
		}
		c.baseline = off(*v)
	}
	return a.change(ctx, req.Key, &adminOp{action: "floors", floors: c})
}

// exportChunk is how many traces one read transaction and one message hold.
const exportChunk = 1000

// ExportTraces implements api.AdminServer.
func (a *adminService) ExportTraces(req *api.ExportTracesRequest, stream api.Admin_ExportTracesServer) error {
	if req.Key != "" && a.srv.reg.key(req.Key) == nil {
		return toStatus(fmt.Errorf("%w: key %q (dynoctl keys lists them)", ErrNotFound, req.Key))
	}
	from, sent := max(req.SinceSeq, 1), uint64(0)
	for {
		batch := &api.TraceBatch{}
		next := uint64(0)
		err := a.srv.st.View(func(tx *store.Tx) error {
			return tx.ForEachTrace(from, func(t store.Trace) (bool, error) {
				next = t.Seq + 1
				if t.ReceivedUnixNano < req.SinceUnixNano || (req.Key != "" && t.Key != req.Key) {
					return next-from < 50*exportChunk, nil
				}
				idx := 0
				if k := a.srv.reg.key(t.Key); k != nil {
					idx, _ = k.cm.Index(costmodel.Arm{Split: t.Split, Bits: t.Bits})
				}
				// As logged: the allowed bits and eligible set the
				// executor reported, none where it reported none.
				batch.Traces = append(batch.Traces, apiTrace(&t, idx))
				sent++
				more := len(batch.Traces) < exportChunk && (req.Limit == 0 || sent < req.Limit)
				return more, nil
			})
		})
		if err != nil {
			return toStatus(err)
		}
		if len(batch.Traces) > 0 {
			if err := stream.Send(batch); err != nil {
				return err
			}
		}
		if next == 0 || (req.Limit > 0 && sent >= req.Limit) {
			return nil
		}
		from = next
		if err := stream.Context().Err(); err != nil {
			return toStatus(err)
		}
	}
}

// Paging of ListExecutors.
const (
	defaultExecutorPage = 1000
	maxExecutorPage     = 10000
)

// ListExecutors implements api.AdminServer.
func (a *adminService) ListExecutors(ctx context.Context, req *api.ListExecutorsRequest) (*api.ListExecutorsResponse, error) {
	size := int(req.PageSize)
	switch {
	case size == 0:
		size = defaultExecutorPage
	case size > maxExecutorPage:
		return nil, toStatus(badField("page_size", "%d, at most %d", size, maxExecutorPage))
	}
	if req.NotSeenForMs < 0 {
		return nil, toStatus(badField("not_seen_for_ms", "%d is negative", req.NotSeenForMs))
	}
	now := time.Now()
	resp := &api.ListExecutorsResponse{}
	for _, x := range a.srv.execs.list() {
		x.mu.Lock()
		r := x.rec
		info := &api.ExecutorInfo{
			ExecutorId: r.ID, Key: r.Key, Model: r.Model, DeviceClass: r.DeviceClass, Version: r.Version, Labels: r.Labels,
			RegisteredUnixNano: r.RegisteredAt.UnixNano(), LastSeenUnixNano: r.LastSeen.UnixNano(), AckedThroughSeq: x.through,
			Reports: r.Reports, AckedVersion: r.AckedVersion, LastNack: r.LastNACK, Connected: x.connected > 0, TokenName: r.TokenName,
			Owner: r.OwnerOf(),
		}
		x.mu.Unlock()
		if (req.Key != "" && info.Key != req.Key) || (req.TokenName != "" && info.TokenName != req.TokenName) ||
			!strings.HasPrefix(info.ExecutorId, req.IdPrefix) || (req.ConnectedOnly && !info.Connected) ||
			(req.NotSeenForMs > 0 && now.Sub(r.LastSeen) < time.Duration(req.NotSeenForMs)*time.Millisecond) {
			continue
		}
		resp.Total++
		switch {
		case info.ExecutorId <= req.PageToken:
		case len(resp.Executors) < size:
			resp.Executors = append(resp.Executors, info)
		case resp.NextPageToken == "":
			// One more passes: the page is full and another follows.
			resp.NextPageToken = resp.Executors[size-1].ExecutorId
		}
	}
	a.addArmUse(resp.Executors)
	return resp, nil
}

// RemoveExecutors implements api.AdminServer.
func (a *adminService) RemoveExecutors(ctx context.Context, req *api.RemoveExecutorsRequest) (*api.RemoveExecutorsResponse, error) {
	if len(req.ExecutorIds) == 0 && req.NotSeenForMs <= 0 {
		return nil, toStatus(badField("executor_ids", "empty, and no not_seen_for_ms: name what to remove"))
	}
	ids := map[string]bool{}
	resp := &api.RemoveExecutorsResponse{}
	for _, id := range req.ExecutorIds {
		if err := checkName("executor_ids", id); err != nil {
			return nil, toStatus(err)
		}
		if a.srv.execs.get(id) == nil {
			resp.Unknown = append(resp.Unknown, id)
			continue
		}
		ids[id] = true
	}
	if req.NotSeenForMs > 0 {
		for _, id := range a.srv.execs.stale(time.Now().Add(-time.Duration(req.NotSeenForMs) * time.Millisecond)) {
			ids[id] = true
		}
	}
	removed, err := a.srv.removeExecutors(slices.Sorted(maps.Keys(ids)))
	if err != nil {
		return nil, toStatus(err)
	}
	a.srv.log.Info("executors removed", "count", len(removed), "by", tokenName(ctx))
	resp.Removed = removed
	return resp, nil
}

// ListAudit implements api.AdminServer.
func (a *adminService) ListAudit(ctx context.Context, req *api.ListAuditRequest) (*api.ListAuditResponse, error) {
	if req.Key != "" && a.srv.reg.key(req.Key) == nil {
		return nil, toStatus(fmt.Errorf("%w: key %q (dynoctl keys lists them)", ErrNotFound, req.Key))
	}
	limit := int(req.Limit)
	if limit == 0 {
		limit = 1000
	}
	resp := &api.ListAuditResponse{}
	errFull := fmt.Errorf("full")
	err := a.srv.st.View(func(tx *store.Tx) error {
		return tx.ForEachEvent(req.SinceSeq, func(e store.Event) error {
			if req.Key != "" && e.Key != req.Key {
				return nil
			}
			if len(resp.Events) == limit {
				return errFull
			}
			resp.Events = append(resp.Events, &api.AuditEvent{Seq: e.Seq, AtUnixNano: e.At.UnixNano(), By: e.By, Action: e.Action, Key: e.Key,
				Version: e.Version, DetailJson: string(e.Detail)})
			return nil
		})
	})
	if err != nil && err != errFull {
		return nil, toStatus(err)
	}
	return resp, nil
}

// addArmUse fills in, for each listed executor, the policy version of its
// latest report and the arm most of its recent reports used.
func (a *adminService) addArmUse(infos []*api.ExecutorInfo) {
	for _, info := range infos {
		x := a.srv.execs.get(info.ExecutorId)
		if x == nil {
			continue
		}
		x.mu.Lock()
		version := x.use.version
		arm, share, used := x.use.top()
		x.mu.Unlock()
		info.ReportedPolicyVersion = version
		if k := a.srv.reg.key(info.Key); used && k != nil {
			if arms := k.cm.Arms(); arm < len(arms) {
				info.TopArm, info.TopArmShare = &api.Arm{Split: uint32(arms[arm].Split), Bits: uint32(arms[arm].Bits)}, share
			}
		}
	}
}

// backupChunk is the size of one Backup message.
const backupChunk = 1 << 20

// Backup implements api.AdminServer.
func (a *adminService) Backup(_ *api.BackupRequest, stream api.Admin_BackupServer) error {
	w := &chunkWriter{send: stream.Send}
	n, err := a.srv.st.Backup(w, func(size int64) { w.total = size })
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return toStatus(fmt.Errorf("backup: %w", err))
	}
	a.srv.log.Info("backup streamed", "bytes", n, "by", tokenName(stream.Context()))
	return nil
}

// chunkWriter streams what is written to it in chunks.
type chunkWriter struct {
	send  func(*api.BackupChunk) error
	buf   []byte
	total int64
	first bool
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := backupChunk - len(w.buf)
		take := min(room, len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == backupChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 && w.first {
		return nil
	}
	c := &api.BackupChunk{Data: w.buf}
	if !w.first {
		c.TotalBytes = w.total
		w.first = true
	}
	err := w.send(c)
	w.buf = make([]byte, 0, backupChunk)
	return err
}
