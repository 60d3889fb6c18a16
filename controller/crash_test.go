package controller_test

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

// exportTraces reads the whole trace log: (executor, report seq) -> count.
func exportTraces(t testing.TB, adm api.AdminClient) (map[string]map[uint64]int, int) {
	t.Helper()
	s, err := adm.ExportTraces(ctxFor(t, time.Minute), &api.ExportTracesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[uint64]int{}
	n := 0
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, n
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range b.Traces {
			m := out[tr.ExecutorId]
			if m == nil {
				m = map[uint64]int{}
				out[tr.ExecutorId] = m
			}
			m[tr.Report.Seq]++
			n++
		}
	}
}

// waitLearned waits until the key has learned want reports in all and has
// nothing pending, and returns its version.
func waitLearned(t testing.TB, adm api.AdminClient, key string, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := adm.ListKeys(ctxFor(t, 10*time.Second), &api.ListKeysRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range r.Keys {
			if k.Key != key {
				continue
			}
			if k.PendingReports == 0 && k.TotalReports == want {
				return k.Version
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s: %d reports learned in all (%d pending), want %d", key, k.TotalReports, k.PendingReports, want)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKill9UnderLoad kills the controller process with SIGKILL while
// executors report and watch, restarts it on the same store, and checks
// that every acknowledged report is in the trace log and in the learned
// state, that resent reports are not counted twice, and that watchers
// resynchronise to the latest version.
func TestKill9UnderLoad(t *testing.T) {
	e := newEnv(t)
	e.cfg.PublishEvery = 100
	e.cfg.PublishInterval = 50 * time.Millisecond
	c1 := e.startChild(t)
	conn := e.dial(t, c1.addr, executorSecret)
	ex := api.NewExecutorClient(conn)
	cm := testCostModel(t)
	const nExec, batch = 6, 40
	type executor struct {
		id      string
		gen     *fleet.Generator
		acks    *fleet.Acks
		sent    uint64
		watcher *fleet.Watcher
	}
	ctx := ctxFor(t, 5*time.Minute)
	execs := make([]*executor, nExec)
	for i := range execs {
		x := &executor{id: fmt.Sprintf("crash-%d", i), acks: fleet.NewAcks()}
		register(t, ex, x.id)
		x.gen = fleet.NewGenerator(cm, testKey, uint64(i+1))
		w, err := fleet.Watch(ctx, ex, x.id, testKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		x.watcher = w
		execs[i] = x
	}
	var wg sync.WaitGroup
	for _, x := range execs {
		wg.Add(1)
		go func(x *executor) {
			defer wg.Done()
			rs, err := ex.Report(ctx)
			if err != nil {
				return
			}
			st := fleet.NewStream(rs, x.id, 4, x.acks, nil)
			for {
				reports := x.gen.Batch(x.sent+1, batch)
				if err := st.Send(reports); err != nil {
					return // the controller died
				}
				x.sent += batch
			}
		}(x)
	}
	// Let some thousands of reports be acknowledged, then kill.
	for {
		n := 0
		for _, x := range execs {
			n += x.acks.Count()
		}
		if n >= 3000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c1.kill9(t)
	wg.Wait()
	acked := 0
	held := map[string]uint64{}
	for _, x := range execs {
		acked += x.acks.Count()
		held[x.id], _ = x.watcher.Current()
		x.watcher.Close()
	}
	conn.Close()
	t.Logf("killed with %d reports acknowledged", acked)

	c2 := e.startChild(t)
	ex = api.NewExecutorClient(e.dial(t, c2.addr, executorSecret))
	adm := api.NewAdminClient(e.dial(t, c2.addr, adminSecret))

	// Every acknowledged report is in the trace log, once.
	traces, n := exportTraces(t, adm)
	for _, x := range execs {
		for seq := range x.acks.Seqs {
			if traces[x.id][seq] != 1 {
				t.Fatalf("%s: acknowledged report %d is in the trace log %d times", x.id, seq, traces[x.id][seq])
			}
		}
	}
	if n < acked {
		t.Fatalf("%d traces for %d acknowledged reports", n, acked)
	}
	// ...and in the state: the key learned exactly the traces.
	waitLearned(t, adm, testKey, uint64(n))

	// Watchers resynchronise to the latest version.
	p, err := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range execs {
		resp := register(t, ex, x.id)
		if resp.AckedThroughSeq < x.acks.Through {
			t.Fatalf("%s: registered with acked_through %d, the acks said %d", x.id, resp.AckedThroughSeq, x.acks.Through)
		}
		w, err := fleet.Watch(ctx, ex, x.id, testKey, held[x.id])
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WaitVersion(ctx, p.Version); err != nil {
			t.Fatalf("%s held version %d: %v", x.id, held[x.id], err)
		}
		w.Close()
	}

	// Resending everything counts nothing twice.
	want := 0
	for _, x := range execs {
		rs, err := ex.Report(ctx)
		if err != nil {
			t.Fatal(err)
		}
		again := fleet.NewAcks()
		st := fleet.NewStream(rs, x.id, 4, again, nil)
		for seq := uint64(1); seq <= x.sent; seq += batch {
			if err := st.Send(x.gen.Batch(seq, batch)); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if again.Duplicates != len(traces[x.id]) || again.Accepted+again.Duplicates != int(x.sent) {
			t.Fatalf("%s: resent %d: %d accepted, %d duplicates; the log held %d", x.id, x.sent, again.Accepted, again.Duplicates, len(traces[x.id]))
		}
		want += int(x.sent)
	}
	traces, n = exportTraces(t, adm)
	if n != want {
		t.Fatalf("%d traces after resending, want %d", n, want)
	}
	for id, m := range traces {
		for seq, c := range m {
			if c != 1 {
				t.Fatalf("%s: report %d in the log %d times", id, seq, c)
			}
		}
	}
	waitLearned(t, adm, testKey, uint64(want))
}
