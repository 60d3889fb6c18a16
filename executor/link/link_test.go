package link_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/internal/bwtrace"
)

func trace(t *testing.T, text string) *bwtrace.Trace {
	t.Helper()
	tr, err := bwtrace.ReadTrace("t", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Send waits what the trace says the bytes take from now, plus the round
// trip, and reports both parts.
func TestSendFollowsTheTrace(t *testing.T) {
	l, err := link.New(trace(t, "0 8\n10 8\n"), 30, 0) // 8 Mbit/s: 1 MB a second
	if err != nil {
		t.Fatal(err)
	}
	var slept time.Duration
	l.Sleep = func(_ context.Context, d time.Duration) error { slept = d; return nil }
	tr, err := l.Send(context.Background(), 250000)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(tr.TransferMs-250) > 1e-6 || tr.RTTMs != 30 || slept != 280*time.Millisecond {
		t.Fatalf("transfer %g ms, rtt %g ms, slept %v; want 250, 30, 280ms", tr.TransferMs, tr.RTTMs, slept)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Sleep = nil
	if _, err := l.Send(ctx, 1e6); err == nil {
		t.Error("a cancelled send returned no error")
	}
}

func TestNewRefusesBadLinks(t *testing.T) {
	if _, err := link.New(nil, 10, 0); err == nil {
		t.Error("no trace accepted")
	}
	if _, err := link.New(trace(t, "0 1\n1 1\n"), math.NaN(), 0); err == nil {
		t.Error("NaN round trip accepted")
	}
	if _, err := link.New(trace(t, "0 0\n1 0\n"), 10, 0); err == nil || !strings.Contains(err.Error(), "never delivers") {
		t.Errorf("dead trace: %v", err)
	}
}

// The estimator moves toward what transfers show, by alpha, and ignores
// transfers too small to time for the bandwidth.
func TestEstimator(t *testing.T) {
	e, err := link.NewEstimator(1, 40, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(125000, 100, 20) // 10 Mbit/s, 20 ms
	bw, rtt := e.Estimate()
	if bw != 5.5 || rtt != 30 {
		t.Fatalf("after one transfer: %g Mbit/s, %g ms; want 5.5, 30", bw, rtt)
	}
	e.Observe(10, 0.01, 30) // too small for the bandwidth
	if bw2, rtt2 := e.Estimate(); bw2 != 5.5 || rtt2 != 30 {
		t.Fatalf("a tiny transfer moved the estimate: %g Mbit/s, %g ms", bw2, rtt2)
	}
	for _, bad := range [][3]float64{{0, 40, 0.5}, {1, -1, 0.5}, {1, 40, 0}, {1, 40, 1.5}, {math.Inf(1), 40, 0.5}} {
		if _, err := link.NewEstimator(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("estimator %v accepted", bad)
		}
	}
}
