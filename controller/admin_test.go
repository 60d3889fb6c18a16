package controller_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
	"github.com/dynoml/dyno/store"
)

// TestOperatorChanges pins, unpins, sets the objective and resets a key
// while an executor watches, and checks that each takes effect in the
// version it names and is recorded with who and when.
func TestOperatorChanges(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	ctx := ctxFor(t, time.Minute)
	w, err := fleet.Watch(ctx, ex, "ex-1", testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sendReports(t, ex, "ex-1", 1, 300)
	waitLearned(t, adm, testKey, 300)

	// received returns the update of version v.
	received := func(v uint64) fleet.Received {
		t.Helper()
		if err := w.WaitVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
		_, rs := w.Current()
		for _, r := range rs {
			if r.Version == v {
				return r
			}
		}
		t.Fatalf("version %d skipped", v)
		return fleet.Received{}
	}

	before := time.Now()
	pin, err := adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 2, Bits: 8}, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if pin.By != "ops" || pin.Action != "pin" || time.Unix(0, pin.AtUnixNano).Before(before.Add(-time.Second)) {
		t.Fatalf("pin change: %v", pin)
	}
	if r := received(pin.Version); r.Reason != "pin" || r.Pin == nil || r.Pin.Arm.Split != 2 || r.Pin.Arm.Bits != 8 || r.Pin.By != "ops" {
		t.Fatalf("version %d: %+v", pin.Version, r)
	}
	p, err := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil || p.Version != pin.Version || p.Pin == nil {
		t.Fatalf("policy after pin: %v %v", p, err)
	}

	unpin, err := adm.Unpin(ctx, &api.UnpinRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if r := received(unpin.Version); r.Reason != "unpin" || r.Pin != nil || unpin.Version <= pin.Version {
		t.Fatalf("version %d: %+v", unpin.Version, r)
	}

	obj, err := adm.SetObjective(ctx, &api.SetObjectiveRequest{Key: testKey, Objective: &api.Objective{Kind: "min-cloud-cost", LatencySloMs: 150, AccuracyFloor: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	received(obj.Version)
	p, _ = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if p.Version != obj.Version || p.Objective.Kind != "min-cloud-cost" || p.Objective.LatencySloMs != 150 || p.Reports != 300 {
		t.Fatalf("policy after objective: v%d %v, %d reports", p.Version, p.Objective, p.Reports)
	}

	reset, err := adm.Reset(ctx, &api.ResetRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	received(reset.Version)
	p, _ = adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if p.Reports != 0 || p.TotalReports != 300 || p.Objective.Kind != "min-cloud-cost" {
		t.Fatalf("after reset: %d reports, %d in all, objective %v", p.Reports, p.TotalReports, p.Objective)
	}
	// The trace log is kept.
	if _, n := exportTraces(t, adm); n != 300 {
		t.Fatalf("%d traces after reset", n)
	}

	// A pin for a while lifts itself.
	timed, err := adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 0, Bits: 32}, DurationMs: 300})
	if err != nil {
		t.Fatal(err)
	}
	if r := received(timed.Version); r.Pin == nil || r.Pin.UntilUnixNano == 0 {
		t.Fatalf("timed pin: %+v", r)
	}
	if r := received(timed.Version + 1); r.Pin != nil || r.Reason != "unpin" {
		t.Fatalf("after the pin's time: %+v", r)
	}

	// Bad changes are refused naming the field.
	for name, call := range map[string]func() error{
		"unknown arm": func() error {
			_, err := adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 1, Bits: 5}})
			return err
		},
		"no arm": func() error { _, err := adm.Pin(ctx, &api.PinRequest{Key: testKey}); return err },
		"bad objective": func() error {
			_, err := adm.SetObjective(ctx, &api.SetObjectiveRequest{Key: testKey, Objective: &api.Objective{Kind: "min-cloud-cost"}})
			return err
		},
		"negative duration": func() error {
			_, err := adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 1, Bits: 8}, DurationMs: -1})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := adm.Reset(ctx, &api.ResetRequest{Key: "no/such/key"}); status.Code(err) != codes.NotFound {
		t.Errorf("reset of an unknown key: %v", err)
	}

	// Who and when, in the store's audit log.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(e.cfg.StorePath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var events []store.Event
	st.View(func(tx *store.Tx) error {
		return tx.ForEachEvent(0, func(ev store.Event) error { events = append(events, ev); return nil })
	})
	var actions []string
	for _, ev := range events {
		actions = append(actions, ev.Action)
		if ev.By == "" || ev.At.IsZero() || ev.Version == 0 || ev.Key != testKey {
			t.Errorf("event without who, when or version: %+v", ev)
		}
	}
	if got := strings.Join(actions, ","); got != "pin,unpin,objective,reset,pin,unpin" {
		t.Fatalf("audit log %s", got)
	}
	var o struct{ Kind string }
	json.Unmarshal(events[2].Detail, &o)
	if o.Kind != "min-cloud-cost" || events[5].By != "controller (pin expired)" {
		t.Fatalf("audit details: %s, %s", events[2].Detail, events[5].By)
	}
}

func TestListings(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	ctx := ctxFor(t, time.Minute)
	if _, err := ex.Register(ctx, &api.RegisterRequest{ExecutorId: "ex-1", Model: testModel, DeviceClass: testClass, Labels: map[string]string{"site": "lab"}, Version: "1.2"}); err != nil {
		t.Fatal(err)
	}
	sendReports(t, ex, "ex-1", 1, 120)
	waitLearned(t, adm, testKey, 120)
	keys, err := adm.ListKeys(ctx, &api.ListKeysRequest{})
	if err != nil || len(keys.Keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	k := keys.Keys[0]
	if k.Key != testKey || k.Model != testModel || k.DeviceClass != testClass || k.ObjectiveName != "default" || k.Executors != 1 || k.Version < 1 || k.Objective.Kind != "min-latency" {
		t.Fatalf("key %v", k)
	}
	execs, err := adm.ListExecutors(ctx, &api.ListExecutorsRequest{})
	if err != nil || len(execs.Executors) != 1 {
		t.Fatalf("executors %v %v", execs, err)
	}
	x := execs.Executors[0]
	if x.ExecutorId != "ex-1" || x.Key != testKey || x.Reports != 120 || x.AckedThroughSeq != 120 || x.Labels["site"] != "lab" || x.Version != "1.2" || x.TokenName != "fleet" {
		t.Fatalf("executor %v", x)
	}
	s, err := adm.Status(ctx, &api.StatusRequest{})
	if err != nil || s.Traces != 120 || s.ReportsAccepted != 120 || s.Keys != 1 || s.Executors != 1 || s.SchemaVersion != store.SchemaVersion || s.RssBytes == 0 {
		t.Fatalf("status %v %v", s, err)
	}
	// Register with what the controller does not know.
	for name, req := range map[string]*api.RegisterRequest{
		"model":          {ExecutorId: "x", Model: "nosuch", DeviceClass: testClass},
		"device_class":   {ExecutorId: "x", Model: testModel, DeviceClass: "toaster"},
		"objective_name": {ExecutorId: "x", Model: testModel, DeviceClass: testClass, ObjectiveName: "fastest"},
		"executor_id":    {ExecutorId: "a/b", Model: testModel, DeviceClass: testClass},
	} {
		_, err := ex.Register(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), name) {
			t.Errorf("register with a bad %s: %v", name, err)
		}
	}
}
