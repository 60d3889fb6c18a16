package controller_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/controller/internal/fleet"
	"github.com/dynoml/dyno/store"
)

// policyFloors returns the floors a published version states and the ones
// its bandit state carries (what executors restore).
func policyFloors(t *testing.T, p *api.Policy) (stated, restored [2]float64) {
	t.Helper()
	data, err := p.DecodedBanditState()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bandit.Restore(testCostModel(t), data)
	if err != nil {
		t.Fatal(err)
	}
	e, b := pol.(*bandit.Dyno).Floors()
	return [2]float64{p.ExploreFloor, p.BaselineFloor}, [2]float64{e, b}
}

// TestSetFloors sets a key's exploration floors: the change is published
// in the version it names (stated and in the bandit state), a floor left
// out keeps its value, bad floors are refused naming the field, the change
// is audited, and a restart on the same store file keeps the floors, also
// through a reset, which rebuilds the policy from the key's record.
func TestSetFloors(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	sendReports(t, ex, "ex-1", 1, 100)
	waitLearned(t, adm, testKey, 100)
	ctx := ctxFor(t, time.Minute)

	p, err := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	def := [2]float64{bandit.DefaultExploreFloor, bandit.DefaultBaselineFloor}
	if s, r := policyFloors(t, p); s != def || r != def {
		t.Fatalf("a new key's floors: stated %v, in the state %v; want the defaults %v", s, r, def)
	}

	ch, err := adm.SetFloors(ctx, &api.SetFloorsRequest{Key: testKey, ExploreFloor: proto.Float64(0.2), BaselineFloor: proto.Float64(-0.5)})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Action != "floors" || ch.By != "ops" || ch.Version <= p.Version {
		t.Fatalf("change %v after version %d", ch, p.Version)
	}
	p, err = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	want := [2]float64{0.2, -1}
	if s, r := policyFloors(t, p); p.Version != ch.Version || p.Reason != "floors" || s != want || r != want || p.TotalReports != 100 {
		t.Fatalf("version %d (%s, %d reports): stated %v, in the state %v; want version %d with %v", p.Version, p.Reason, p.TotalReports, s, r, ch.Version, want)
	}

	// Only the baseline floor: the explore floor stays.
	if _, err := adm.SetFloors(ctx, &api.SetFloorsRequest{Key: testKey, BaselineFloor: proto.Float64(0.01)}); err != nil {
		t.Fatal(err)
	}
	want = [2]float64{0.2, 0.01}
	p, _ = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if s, r := policyFloors(t, p); s != want || r != want {
		t.Fatalf("after setting the baseline floor: stated %v, in the state %v; want %v", s, r, want)
	}

	version := p.Version
	for _, c := range []struct {
		req   *api.SetFloorsRequest
		code  codes.Code
		field string
	}{
		{&api.SetFloorsRequest{Key: testKey, ExploreFloor: proto.Float64(0.7)}, codes.InvalidArgument, "explore_floor"},
		{&api.SetFloorsRequest{Key: testKey, ExploreFloor: proto.Float64(0.1), BaselineFloor: proto.Float64(0.2)}, codes.InvalidArgument, "baseline_floor"},
		{&api.SetFloorsRequest{Key: testKey}, codes.InvalidArgument, "explore_floor"},
		{&api.SetFloorsRequest{ExploreFloor: proto.Float64(0.1)}, codes.InvalidArgument, "key"},
		{&api.SetFloorsRequest{Key: "no/such/key", ExploreFloor: proto.Float64(0.1)}, codes.NotFound, "no/such/key"},
	} {
		_, err := adm.SetFloors(ctx, c.req)
		if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.field) {
			t.Errorf("SetFloors %v: %v, want %s naming %s", c.req, err, c.code, c.field)
		}
	}
	if p, _ := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey}); p.Version != version {
		t.Fatalf("a refused change published version %d", p.Version)
	}

	if err := srv.Stop(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(e.cfg.StorePath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var events []store.Event
	var rec store.Key
	err = st.View(func(tx *store.Tx) error {
		rec, _, err = tx.Key(testKey)
		if err != nil {
			return err
		}
		return tx.ForEachEvent(0, func(ev store.Event) error {
			if ev.Action == "floors" {
				events = append(events, ev)
			}
			return nil
		})
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rec.ExploreFloor != 0.2 || rec.BaselineFloor != 0.01 {
		t.Fatalf("key record floors %g %g", rec.ExploreFloor, rec.BaselineFloor)
	}
	if len(events) != 2 || events[0].By != "ops" || events[0].Version != ch.Version {
		t.Fatalf("audit of the floors: %+v", events)
	}
	var d struct {
		Explore  *float64 `json:"explore_floor"`
		Baseline *float64 `json:"baseline_floor"`
	}
	if err := json.Unmarshal(events[1].Detail, &d); err != nil || d.Explore == nil || *d.Explore != 0.2 || d.Baseline == nil || *d.Baseline != 0.01 {
		t.Fatalf("audit detail %s: %v", events[1].Detail, err)
	}

	srv = start(t, e.cfg)
	adm = api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	ctx = ctxFor(t, time.Minute)
	p, err = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if s, r := policyFloors(t, p); s != want || r != want {
		t.Fatalf("after a restart: stated %v, in the state %v; want %v", s, r, want)
	}
	reset, err := adm.Reset(ctx, &api.ResetRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	p, _ = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if s, r := policyFloors(t, p); p.Version != reset.Version || s != want || r != want {
		t.Fatalf("after a reset (version %d of %d): stated %v, in the state %v; want %v", p.Version, reset.Version, s, r, want)
	}
	// Zero returns a floor to the default.
	if _, err := adm.SetFloors(ctx, &api.SetFloorsRequest{Key: testKey, ExploreFloor: proto.Float64(0)}); err != nil {
		t.Fatal(err)
	}
	p, _ = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if s, _ := policyFloors(t, p); s != [2]float64{bandit.DefaultExploreFloor, 0.01} {
		t.Fatalf("explore floor 0: %v, want the default", s)
	}
}

// TestSetFloorsNeedsDyno: the floors are dyno's; a key learning with
// another policy refuses them.
func TestSetFloorsNeedsDyno(t *testing.T) {
	e := newEnv(t)
	e.cfg.Bandit = bandit.NameEGreedy
	srv := start(t, e.cfg)
	register(t, api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret)), "ex-1")
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	_, err := adm.SetFloors(ctxFor(t, 10*time.Second), &api.SetFloorsRequest{Key: testKey, ExploreFloor: proto.Float64(0.1)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "egreedy") {
		t.Fatalf("floors of an epsilon-greedy key: %v, want FailedPrecondition", err)
	}
	p, err := adm.GetPolicy(ctxFor(t, 10*time.Second), &api.GetPolicyRequest{Key: testKey})
	if err != nil || p.ExploreFloor != 0 || p.BaselineFloor != 0 {
		t.Fatalf("an epsilon-greedy policy states floors %g %g (%v)", p.GetExploreFloor(), p.GetBaselineFloor(), err)
	}
}

// TestExportWritesWhatWasLogged: the trace log keeps each report's eligible
// set and allowed bits as the executor sent them, the export gives them
// back unchanged (none for a report that sent none, not the manifest's),
// also after a restart, and a report whose allowed bits or eligible set do
// not fit the key's manifest is refused naming the field.
func TestExportWritesWhatWasLogged(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	reg := register(t, ex, "ex-1")
	n := len(reg.Arms)
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	with, without := g.Report(1), g.Report(2)
	idx := -1
	for i, a := range reg.Arms {
		if proto.Equal(a, with.Arm) {
			idx = i
		}
	}
	with.Eligible = make([]byte, (n+7)/8)
	with.Eligible[idx/8] |= 1 << (idx % 8)
	with.Eligible[0] |= 1
	with.AllowedBits = []uint32{32, 16, 8, 6, 4, 3, 2}
	send := func(rs ...*api.Report) error {
		t.Helper()
		s, err := ex.Report(ctxFor(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer s.CloseSend()
		if err := s.Send(&api.ReportBatch{BatchId: 1, ExecutorId: "ex-1", Reports: rs}); err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	if err := send(with, without); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		mod   func(r *api.Report)
	}{
		{"allowed_bits", func(r *api.Report) { r.AllowedBits = []uint32{32, 8} }},
		{"eligible", func(r *api.Report) { r.Eligible = []byte{0} }},
	} {
		r := g.Report(3)
		r.Eligible = append([]byte{}, with.Eligible...)
		r.Arm = with.Arm
		r.Bytes = with.Bytes
		c.mod(r)
		if err := send(r); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.field) {
			t.Errorf("a report with a bad %s: %v, want InvalidArgument naming it", c.field, err)
		}
	}
	check := func(when string, adm api.AdminClient) {
		t.Helper()
		s, err := adm.ExportTraces(ctxFor(t, time.Minute), &api.ExportTracesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Traces) != 2 {
			t.Fatalf("%s: %d traces exported, want 2", when, len(b.Traces))
		}
		got0, got1 := b.Traces[0].Report, b.Traces[1].Report
		if !slices.Equal(got0.AllowedBits, with.AllowedBits) || !bytes.Equal(got0.Eligible, with.Eligible) || int(b.Traces[0].ArmIndex) != idx {
			t.Errorf("%s: the first trace exports allowed bits %v, eligible %x, arm %d; it was logged with %v, %x, arm %d",
				when, got0.AllowedBits, got0.Eligible, b.Traces[0].ArmIndex, with.AllowedBits, with.Eligible, idx)
		}
		if len(got1.AllowedBits) != 0 || len(got1.Eligible) != 0 {
			t.Errorf("%s: the second trace, logged without them, exports allowed bits %v and eligible %x", when, got1.AllowedBits, got1.Eligible)
		}
	}
	check("running", api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret)))
	if err := srv.Stop(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	srv = start(t, e.cfg)
	check("after a restart", api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret)))
}
