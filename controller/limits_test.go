package controller_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

// reportOnce sends one batch on a new stream and returns the ack or the
// error that ended the stream.
func reportOnce(t testing.TB, ex api.ExecutorClient, b *api.ReportBatch) (*api.ReportAck, error) {
	t.Helper()
	rs, err := ex.Report(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(b); err != nil {
		_, err = rs.Recv()
		return nil, err
	}
	ack, err := rs.Recv()
	rs.CloseSend()
	return ack, err
}

func TestInvalidBatchIsRejectedWhole(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	reports := g.Batch(1, 10)
	reports[7].Propensity = 1.5
	_, err := reportOnce(t, ex, &api.ReportBatch{BatchId: 3, ExecutorId: "ex-1", Reports: reports})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "batch 3: reports[7] (seq 8): propensity: 1.5 is outside (0, 1]") {
		t.Fatalf("got %v", err)
	}
	s, _ := adm.Status(ctxFor(t, 10*time.Second), &api.StatusRequest{})
	if s.Traces != 0 || s.ReportsRejected != 10 {
		t.Fatalf("after a rejected batch: %d traces, %d rejected", s.Traces, s.ReportsRejected)
	}
	// An unregistered executor cannot report.
	_, err = reportOnce(t, ex, &api.ReportBatch{ExecutorId: "nobody", Reports: g.Batch(1, 1)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("unregistered executor: %v", err)
	}
}

func TestPerExecutorLimits(t *testing.T) {
	e := newEnv(t)
	e.cfg.ReportRate = 100
	e.cfg.ReportBurst = 200
	e.cfg.MaxBatchReports = 300
	e.cfg.MaxMessageBytes = 64 << 10
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	reg := register(t, ex, "ex-1")
	if l := reg.Limits; l.ReportsPerSecond != 100 || l.ReportBurst != 200 || l.MaxBatchReports != 300 || l.MaxMessageBytes != 64<<10 {
		t.Fatalf("limits %v", l)
	}
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	// Within the burst: accepted at once.
	if ack, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(1, 150)}); err != nil || ack.Accepted != 150 {
		t.Fatalf("within the burst: %v %v", ack, err)
	}
	// Over the rate by more than a second's worth: refused.
	_, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(151, 250)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "rate") {
		t.Fatalf("over the rate: %v", err)
	}
	// A batch over the count limit.
	_, err = reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(151, 301)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("over the batch limit: %v, want InvalidArgument", err)
	}
	// A message over the size limit.
	big := g.Batch(151, 10)
	big[0].RequestId = strings.Repeat("x", 100<<10)
	_, err = reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: big})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the message size: %v", err)
	}
	// Another executor has its own budget.
	register(t, ex, "ex-2")
	g2 := fleet.NewGenerator(testCostModel(t), testKey, 2)
	if ack, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-2", Reports: g2.Batch(1, 150)}); err != nil || ack.Accepted != 150 {
		t.Fatalf("second executor: %v %v", ack, err)
	}
}

// TestRestartRestoresEverything stops the controller cleanly and starts a
// new one on the same file: keys, versions, pins, objectives, executors and
// traces are all there, and resent reports are recognised.
func TestRestartRestoresEverything(t *testing.T) {
	e := newEnv(t)
	srv, err := controller.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	ctx := ctxFor(t, time.Minute)
	register(t, ex, "ex-1")
	sendReports(t, ex, "ex-1", 1, 500)
	waitLearned(t, adm, testKey, 500)
	if _, err := adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 3, Bits: 16}}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.SetObjective(ctx, &api.SetObjectiveRequest{Key: testKey, Objective: &api.Objective{Kind: "max-throughput", AccuracyFloor: 0.6}}); err != nil {
		t.Fatal(err)
	}
	before, _ := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Without the model folder: the store holds the models too.
	e.cfg.ModelDirs = nil
	srv2 := start(t, e.cfg)
	ex = api.NewExecutorClient(e.dial(t, srv2.Addr(), executorSecret))
	adm = api.NewAdminClient(e.dial(t, srv2.Addr(), adminSecret))
	after, err := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version || after.Pin == nil || after.Pin.Arm.Split != 3 || after.Objective.Kind != "max-throughput" || after.TotalReports != 500 {
		t.Fatalf("after restart: %v\nbefore: %v", after, before)
	}
	x, _ := adm.ListExecutors(ctx, &api.ListExecutorsRequest{})
	if len(x.Executors) != 1 || x.Executors[0].AckedThroughSeq != 500 || x.Executors[0].Reports != 500 {
		t.Fatalf("executors after restart: %v", x)
	}
	if _, n := exportTraces(t, adm); n != 500 {
		t.Fatalf("%d traces after restart", n)
	}
	// The executor is recognised without registering again, and its
	// resent reports are not applied twice.
	acks := sendReports(t, ex, "ex-1", 451, 100)
	if acks.Duplicates != 50 || acks.Accepted != 50 {
		t.Fatalf("resent across the restart: %+v", acks)
	}
	waitLearned(t, adm, testKey, 550)
}

func TestRefusesAFileThatIsNotAStore(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "notes.txt")
	os.WriteFile(path, []byte(strings.Repeat("my notes\n", 1000)), 0o644)
	e.cfg.StorePath = path
	_, err := controller.New(e.cfg)
	if err == nil || !strings.Contains(err.Error(), "not a dyno store") {
		t.Fatalf("got %v", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != strings.Repeat("my notes\n", 1000) {
		t.Fatal("the file was changed")
	}
}

func TestGenCertAndToken(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	var out, errOut strings.Builder
	if code := controller.Main([]string{"gen-cert", "-cert", cert, "-key", key, "-hosts", "127.0.0.1,localhost"}, &out, &errOut); code != 0 {
		t.Fatalf("gen-cert: %d %s", code, errOut.String())
	}
	if _, err := controller.ServerTLS(cert, key); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	out.Reset()
	if code := controller.Main([]string{"gen-token", "-name", "ops", "-scopes", "admin"}, &out, &errOut); code != 0 {
		t.Fatalf("gen-token: %d %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	line := strings.TrimSpace(strings.TrimPrefix(lines[1], "tokens line:"))
	ts, err := controller.ReadTokens(strings.NewReader(line))
	if err != nil || len(ts) != 1 || ts[0].Name != "ops" {
		t.Fatalf("the printed line does not read back: %q %v", line, err)
	}
	// serve refuses to start without TLS or tokens.
	for _, args := range [][]string{{"serve", "-store", filepath.Join(dir, "s.db")}, {"serve", "-insecure", "-store", filepath.Join(dir, "s.db")}} {
		errOut.Reset()
		if code := controller.Main(args, &out, &errOut); code != 2 {
			t.Fatalf("%v: exit %d, %s", args, code, errOut.String())
		}
	}
}

func TestTraceRetention(t *testing.T) {
	e := newEnv(t)
	e.cfg.Retention.MaxCount = 200
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	sendReports(t, ex, "ex-1", 1, 1000)
	waitLearned(t, adm, testKey, 1000)
	// Whole blocks (batches of 50) go: at most 200 + 50 stay.
	s := waitStatus(t, adm, "retention", func(s *api.StatusResponse) bool { return s.Traces <= 250 })
	if s.LastTraceSeq != 1000 || s.Traces < 200 {
		t.Fatalf("after retention: %d traces, %d..%d", s.Traces, s.FirstTraceSeq, s.LastTraceSeq)
	}
}
