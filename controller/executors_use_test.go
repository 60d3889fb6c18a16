package controller_test

import (
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

// TestListExecutorsTopArm checks that ListExecutors reports, per executor,
// the policy version of its latest report and the arm most of its
// reports used, with that arm's share, as counted from what was sent.
func TestListExecutorsTopArm(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")

	const n = 600
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	reports := g.Batch(1, n)
	// Most reports use the first report's arm, as a converged policy would.
	for i, r := range reports {
		if i%3 != 0 {
			r.Arm = reports[0].Arm
			r.Bytes, r.Stages = reports[0].Bytes, reports[0].Stages
		}
	}
	counts := map[[2]uint32]int{}
	for _, r := range reports {
		counts[[2]uint32{r.Arm.Split, r.Arm.Bits}]++
	}
	rs, err := ex.Report(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	st := fleet.NewStream(rs, "ex-1", 4, fleet.NewAcks(), nil)
	for i := 0; i < n; i += 50 {
		if err := st.Send(reports[i : i+50]); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	waitLearned(t, adm, testKey, n)
	resp, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Executors) != 1 {
		t.Fatalf("%d executors", len(resp.Executors))
	}
	x := resp.Executors[0]
	top := reports[0].Arm
	want := float64(counts[[2]uint32{top.Split, top.Bits}]) / n
	if x.TopArm == nil || x.TopArm.Split != top.Split || x.TopArm.Bits != top.Bits {
		t.Fatalf("top arm %v, want s%d/b%d", x.TopArm, top.Split, top.Bits)
	}
	if d := x.TopArmShare - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("top arm share %.4f, want %.4f", x.TopArmShare, want)
	}
	if x.ReportedPolicyVersion != reports[n-1].PolicyVersion {
		t.Errorf("reported policy version %d, want %d", x.ReportedPolicyVersion, reports[n-1].PolicyVersion)
	}
}
