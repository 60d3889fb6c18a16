package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

func TestFleetStateIsBounded(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxExecutorsPerIdentity = 30
	e.cfg.Tokens = append(e.cfg.Tokens, controller.NewToken("lab", intruderSecret, controller.ScopeExecutor))
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	lab := api.NewExecutorClient(e.dial(t, srv.Addr(), intruderSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	for i := 0; i < 30; i++ {
		register(t, ex, fmt.Sprintf("ex-%02d", i))
	}
	// The quota is per identity: fleet is full, lab is not.
	_, err := ex.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "ex-30", Model: testModel, DeviceClass: testClass})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("beyond the quota: %v, want ResourceExhausted", err)
	}
	register(t, lab, "lab-0")
	// A registration's labels are bounded too.
	many := map[string]string{}
	for i := 0; i < 33; i++ {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, labels := range []map[string]string{many, {"k": strings.Repeat("v", 300)}} {
		_, err := lab.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "lab-1", Model: testModel, DeviceClass: testClass, Labels: labels})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "labels") {
			t.Fatalf("oversized labels: %v", err)
		}
	}
	// Re-registering an executor one owns is not a new one.
	register(t, ex, "ex-00")

	// Pages of 7 cover all 31, each once, in order.
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		r, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if r.Total != 31 || len(r.Executors) > 7 {
			t.Fatalf("page %d: %d executors, total %d", pages, len(r.Executors), r.Total)
		}
		for _, x := range r.Executors {
			ids = append(ids, x.ExecutorId)
		}
		if token = r.NextPageToken; token == "" {
			break
		}
	}
	if len(ids) != 31 || ids[0] != "ex-00" || ids[30] != "lab-0" {
		t.Fatalf("paged through %d: %v", len(ids), ids)
	}
	// Filters.
	r, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{TokenName: "lab"})
	if err != nil || r.Total != 1 || r.Executors[0].ExecutorId != "lab-0" {
		t.Fatalf("by token: %v %v", r, err)
	}
	r, err = adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{IdPrefix: "ex-1"})
	if err != nil || r.Total != 10 {
		t.Fatalf("by prefix: %d %v", r.GetTotal(), err)
	}
	if _, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{PageSize: 1 << 20}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a page too large: %v", err)
	}

	// Removal frees the id and the quota, and deletes the window.
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	if _, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-05", Reports: g.Batch(1, 5)}); err != nil {
		t.Fatal(err)
	}
	rm, err := adm.RemoveExecutors(ctxFor(t, 10*time.Second), &api.RemoveExecutorsRequest{ExecutorIds: []string{"ex-05", "nobody"}})
	if err != nil || len(rm.Removed) != 1 || len(rm.Unknown) != 1 {
		t.Fatalf("remove: %v %v", rm, err)
	}
	if _, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-05", Reports: g.Batch(6, 1)}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("report as a removed executor: %v", err)
	}
	resp := register(t, lab, "ex-05") // free for anyone now
	if resp.AckedThroughSeq != 0 {
		t.Fatalf("a removed executor's window survived: acked through %d", resp.AckedThroughSeq)
	}
	register(t, ex, "ex-30") // the quota has room again
	// Not seen for a while: everything registered above.
	time.Sleep(50 * time.Millisecond)
	rm, err = adm.RemoveExecutors(ctxFor(t, 10*time.Second), &api.RemoveExecutorsRequest{NotSeenForMs: 20})
	if err != nil || len(rm.Removed) != 32 {
		t.Fatalf("remove stale: %d removed, %v", len(rm.GetRemoved()), err)
	}
}

func TestExecutorsExpire(t *testing.T) {
	e := newEnv(t)
	e.cfg.ExecutorExpiry = 300 * time.Millisecond
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "gone")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an executor not seen for %s is still listed", e.cfg.ExecutorExpiry)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The removal is durable.
	if err := srv.Stop(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.cfg.ExecutorExpiry = 0
	srv = start(t, e.cfg)
	r, err := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret)).ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{})
	if err != nil || r.Total != 0 {
		t.Fatalf("after a restart: %v %v", r, err)
	}
}

func TestUnpinOfAnUnpinnedKeyPublishesNothing(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	register(t, api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret)), "ex-1")
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	before, err := adm.GetPolicy(ctxFor(t, 10*time.Second), &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	_, err = adm.Unpin(ctxFor(t, 10*time.Second), &api.UnpinRequest{Key: testKey})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not pinned") {
		t.Fatalf("unpin of an unpinned key: %v", err)
	}
	after, _ := adm.GetPolicy(ctxFor(t, 10*time.Second), &api.GetPolicyRequest{Key: testKey})
	if after.Version != before.Version {
		t.Fatalf("version %d -> %d", before.Version, after.Version)
	}
	// A pin that expires is audited.
	if _, err := adm.Pin(ctxFor(t, 10*time.Second), &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 0, Bits: 32}, DurationMs: 200}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := adm.ListAudit(ctxFor(t, 10*time.Second), &api.ListAuditRequest{Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(a.Events); n == 2 && a.Events[0].Action == "pin" && a.Events[1].Action == "unpin" && strings.Contains(a.Events[1].By, "expired") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit: %v", a.Events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPolicyShowsItsGreedyArmAndPosterior(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	if _, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(1, 300)}); err != nil {
		t.Fatal(err)
	}
	waitLearned(t, adm, testKey, 300)
	p, err := adm.GetPolicy(ctxFor(t, 10*time.Second), &api.GetPolicyRequest{Key: testKey, BandwidthMbps: 20, RttMs: 30})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Summary
	if s == nil || s.Greedy == nil || s.StaticArm == nil || len(s.Top) != 5 || len(s.Stages) != 5 || s.Conditions.BandwidthMbps != 20 || s.CostFrom != "posterior" {
		t.Fatalf("summary %v", s)
	}
	if !(s.GreedyProbability > 0) || !(s.GreedyExpectedCost > 0) || s.Top[0].Probability < s.Top[4].Probability {
		t.Fatalf("summary %v", s)
	}
	t.Logf("greedy %v p=%.3g cost %.4g; static %v; stages %v", s.Greedy, s.GreedyProbability, s.GreedyExpectedCost, s.StaticArm, s.Stages)
	// Pinned, the policy chooses the pin with probability 1.
	if _, err := adm.Pin(ctxFor(t, 10*time.Second), &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 2, Bits: 8}}); err != nil {
		t.Fatal(err)
	}
	p, err = adm.GetPolicy(ctxFor(t, 10*time.Second), &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Summary; s.Greedy.Split != 2 || s.Greedy.Bits != 8 || s.GreedyProbability != 1 {
		t.Fatalf("pinned: greedy %v with probability %g", s.Greedy, s.GreedyProbability)
	}
}
