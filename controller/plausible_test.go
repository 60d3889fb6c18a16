package controller_test

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

// TestImplausibleReportsAreRefused sends, to a real server, the reports
// that finite-only validation let through, and checks that each is refused
// naming its field and bound, and that nothing of them is learned.
func TestImplausibleReportsAreRefused(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	cases := []struct {
		name, field, bound string
		modify             func(r *api.Report)
	}{
		{"device_ms 1e308", "stages.device_ms", "bound of 600000", func(r *api.Report) { r.Stages.DeviceMs = 1e308 }},
		{"bandwidth 1.8e308", "conditions.bandwidth_mbps", "[0.001, 1e+06]", func(r *api.Report) { r.Conditions.BandwidthMbps = math.MaxFloat64 }},
		{"propensity 5e-324", "propensity", "floor of 1e-06", func(r *api.Report) { r.Propensity = 5e-324 }},
		{"queue 1e300", "conditions.cloud_queue_ms", "bound of 600000", func(r *api.Report) { r.Conditions.CloudQueueMs = 1e300 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := g.Report(1)
			c.modify(r)
			_, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: []*api.Report{r}})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field+": ") || !strings.Contains(err.Error(), c.bound) {
				t.Fatalf("got %v, want InvalidArgument naming %s and %q", err, c.field, c.bound)
			}
		})
	}
	st, err := adm.Status(ctxFor(t, 10e9), &api.StatusRequest{})
	if err != nil || st.Traces != 0 {
		t.Fatalf("traces after the refusals: %v %v", st, err)
	}
}
