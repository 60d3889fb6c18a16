package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/controller/internal/fleet"
	"github.com/dynoml/dyno/controller/internal/influxtest"
)

// sendReports sends n reports of executor id in batches of 50 and waits
// for their acks.
func sendReports(t testing.TB, ex api.ExecutorClient, id string, from uint64, n int) *fleet.Acks {
	t.Helper()
	rs, err := ex.Report(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	acks := fleet.NewAcks()
	st := fleet.NewStream(rs, id, 4, acks, nil)
	g := fleet.NewGenerator(testCostModel(t), testKey, from)
	for seq := from; seq < from+uint64(n); seq += 50 {
		if err := st.Send(g.Batch(seq, int(min(50, from+uint64(n)-seq)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return acks
}

func waitStatus(t testing.TB, adm api.AdminClient, what string, ok func(*api.StatusResponse) bool) *api.StatusResponse {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := adm.Status(ctxFor(t, 10*time.Second), &api.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s: %v", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLearningCurvesQueriedBackFromInfluxDB(t *testing.T) {
	db := influxtest.New(t)
	e := newEnv(t)
	e.cfg.Influx = controller.InfluxConfig{URL: db.URL, Bucket: db.Bucket, ReportPoints: true, FlushInterval: 50 * time.Millisecond}
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-influx")
	const n = 600
	sendReports(t, ex, "ex-influx", 1, n)
	version := waitLearned(t, adm, testKey, n)
	waitStatus(t, adm, "the points to be written", func(s *api.StatusResponse) bool {
		return s.InfluxPointsWritten >= n+version && s.PoliciesPublished >= version
	})

	client := influxdb2.NewClient(db.URL, "")
	defer client.Close()
	q := client.QueryAPI("")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count := func(flux string) (map[string]int64, error) {
		res, err := q.Query(ctx, flux)
		if err != nil {
			return nil, err
		}
		out := map[string]int64{}
		for res.Next() {
			r := res.Record()
			v, _ := r.Value().(int64)
			out[fmt.Sprint(r.ValueByKey("explore"))] += v
		}
		return out, res.Err()
	}
	// Per report: one latency point each, tagged with the explore flag.
	reports, err := count(fmt.Sprintf(`from(bucket: %q) |> range(start: -1h)
		|> filter(fn: (r) => r._measurement == "dyno_report" and r._field == "latency_ms" and r.key == %q)
		|> group(columns: ["explore"]) |> count()`, db.Bucket, testKey))
	if err != nil {
		t.Fatal(err)
	}
	if reports["true"]+reports["false"] != n || reports["true"] == 0 || reports["false"] == 0 {
		t.Fatalf("report points by explore flag: %v, want %d in all", reports, n)
	}
	// Every report point carries the fields of the learning curves.
	res, err := q.Query(ctx, fmt.Sprintf(`from(bucket: %q) |> range(start: -1h)
		|> filter(fn: (r) => r._measurement == "dyno_report") |> group(columns: ["_field"]) |> count()`, db.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]int64{}
	for res.Next() {
		fields[res.Record().Field()] = res.Record().Value().(int64)
	}
	for _, f := range []string{"latency_ms", "device_ms", "network_ms", "cloud_ms", "bytes", "cost", "propensity", "accuracy"} {
		if fields[f] != n {
			t.Errorf("field %s: %d points, want %d (%v)", f, fields[f], n, fields)
		}
	}
	// Per version: the version, the posterior, the choices and the regret.
	res, err = q.Query(ctx, fmt.Sprintf(`from(bucket: %q) |> range(start: -1h)
		|> filter(fn: (r) => r._measurement == "dyno_policy" and r.key == %q)
		|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value") |> group()
		|> sort(columns: ["_time"])`, db.Bucket, testKey))
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	var last map[string]any
	for res.Next() {
		last = res.Record().Values()
		versions = append(versions, last["version"].(int64))
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if len(versions) < 2 || versions[len(versions)-1] != int64(version) {
		t.Fatalf("policy points for versions %v, latest %d", versions, version)
	}
	for _, f := range []string{"reports", "expected_cost", "static_cost", "chosen_split", "static_split", "observed_cost", "regret", "cumulative_regret"} {
		if _, ok := last[f]; !ok {
			t.Errorf("the last policy point has no %s: %v", f, last)
		}
	}
	posterior := 0
	for k := range last {
		if len(k) > 10 && k[:10] == "posterior_" {
			posterior++
		}
	}
	if posterior == 0 {
		t.Errorf("the last policy point has no posterior parameters: %v", last)
	}
}

func TestLearningGoesOnWhenInfluxDBIsDown(t *testing.T) {
	e := newEnv(t)
	e.cfg.Influx = controller.InfluxConfig{URL: "http://127.0.0.1:1", Bucket: "dyno/autogen", ReportPoints: true, FlushInterval: 20 * time.Millisecond, Buffer: 100}
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	start := time.Now()
	acks := sendReports(t, ex, "ex-1", 1, 2000)
	if acks.Accepted != 2000 {
		t.Fatalf("accepted %d", acks.Accepted)
	}
	waitLearned(t, adm, testKey, 2000)
	s := waitStatus(t, adm, "dropped points", func(s *api.StatusResponse) bool { return s.InfluxPointsDropped > 0 })
	if s.InfluxPointsWritten != 0 {
		t.Fatalf("%d points written to nowhere", s.InfluxPointsWritten)
	}
	t.Logf("2000 reports learned in %s with InfluxDB down: %d points dropped", time.Since(start).Round(time.Millisecond), s.InfluxPointsDropped)
}
