package controller_test

import (
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

func TestReportAckWatch(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	conn := e.dial(t, srv.Addr(), executorSecret)
	ex := api.NewExecutorClient(conn)
	reg := register(t, ex, "ex-1")
	if reg.Key != testKey || reg.Policy == nil || reg.Policy.Version != 1 {
		t.Fatalf("register: %+v", reg)
	}
	ctx := ctxFor(t, 30*time.Second)
	w, err := fleet.Watch(ctx, ex, "ex-1", testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitVersion(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rs, err := ex.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acks := fleet.NewAcks()
	st := fleet.NewStream(rs, "ex-1", 8, acks, nil)
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	seq := uint64(1)
	for i := 0; i < 20; i++ {
		if err := st.Send(g.Batch(seq, 50)); err != nil {
			t.Fatal(err)
		}
		seq += 50
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if acks.Accepted != 1000 || acks.Duplicates != 0 || acks.Through != 1000 {
		t.Fatalf("acks: %+v", acks)
	}
	if err := w.WaitVersion(ctx, 5); err != nil {
		t.Fatal(err)
	}
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	st2, err := adm.Status(ctx, &api.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status: %+v", st2)
	p, err := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("policy v%d reports %d reason %s state %d bytes", p.Version, p.Reports, p.Reason, len(p.BanditState))
	w.Close()
}
