package controller_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

// TestKill9Repeatedly kills the controller with SIGKILL at random points
// under load, again and again, and after every restart checks the
// accounting: every acknowledged report is in the trace log exactly once (0
// lost, 0 doubled), no report is in it twice, and each executor's report
// count equals its traces. The seed is printed; DYNO_TEST_SEED replays one.
func TestKill9Repeatedly(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a controller process 12 times")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DYNO_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (DYNO_TEST_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	e := newEnv(t)
	e.cfg.PublishEvery = 100
	e.cfg.PublishInterval = 50 * time.Millisecond
	cm := testCostModel(t)
	const nExec, batch, kills = 4, 25, 12
	type executor struct {
		id   string
		gen  *fleet.Generator
		acks *fleet.Acks
	}
	execs := make([]*executor, nExec)
	for i := range execs {
		execs[i] = &executor{id: fmt.Sprintf("kill-%d", i), gen: fleet.NewGenerator(cm, testKey, uint64(i+1)), acks: fleet.NewAcks()}
	}
	check := func(round int, adm api.AdminClient) int {
		t.Helper()
		traces, n := exportTraces(t, adm)
		for _, x := range execs {
			for seq := range x.acks.Seqs {
				if c := traces[x.id][seq]; c != 1 {
					t.Fatalf("seed %d, after kill %d: %s: acknowledged report %d is in the trace log %d times", seed, round, x.id, seq, c)
				}
			}
		}
		for id, m := range traces {
			for seq, c := range m {
				if c != 1 {
					t.Fatalf("seed %d, after kill %d: %s: report %d is in the trace log %d times", seed, round, id, seq, c)
				}
			}
		}
		l, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range l.Executors {
			if x.Reports != uint64(len(traces[x.ExecutorId])) {
				t.Fatalf("seed %d, after kill %d: %s counts %d reports, the trace log holds %d", seed, round, x.ExecutorId, x.Reports, len(traces[x.ExecutorId]))
			}
		}
		return n
	}
	acked := 0
	for round := 0; round <= kills; round++ {
		c := e.startChild(t)
		conn := e.dial(t, c.addr, executorSecret)
		ex := api.NewExecutorClient(conn)
		adm := api.NewAdminClient(e.dial(t, c.addr, adminSecret))
		if round > 0 {
			n := check(round, adm)
			t.Logf("after kill %d: %d traces, %d reports acknowledged, all there once; counters equal the log", round, n, acked)
		}
		if round == kills {
			c.cmd.Process.Kill()
			c.cmd.Wait()
			break
		}
		var wg sync.WaitGroup
		ctx := ctxFor(t, time.Minute)
		for _, x := range execs {
			resp := register(t, ex, x.id)
			wg.Add(1)
			go func(x *executor, from uint64) {
				defer wg.Done()
				rs, err := ex.Report(ctx)
				if err != nil {
					return
				}
				st := fleet.NewStream(rs, x.id, 4, x.acks, nil)
				// Resend what is not durable, then go on.
				for seq := from; ; seq += batch {
					if err := st.Send(x.gen.Batch(seq, batch)); err != nil {
						return
					}
				}
			}(x, resp.AckedThroughSeq+1)
		}
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		c.kill9(t)
		wg.Wait()
		conn.Close()
		acked = 0
		for _, x := range execs {
			acked += x.acks.Count()
		}
	}
	if acked == 0 {
		t.Fatal("no report was acknowledged")
	}
}
