// Package link emulates the device-to-cloud link on one machine: a
// transfer takes the time a bandwidth trace says it takes from the moment
// it starts, plus a round trip. It is how the executors run in tests and
// the demo here; every figure that went through it is labelled emulated.
package link

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/dynoml/dyno/internal/bwtrace"
)

// Emulated is a link that follows a bandwidth trace from Start. It is safe
// for concurrent use; transfers share nothing (each sees the trace as if
// it had the link to itself).
type Emulated struct {
	Trace *bwtrace.Trace
	// RTTMs is the round trip added to every transfer.
	RTTMs float64
	// Start is the instant the trace's time 0 maps to; Offset shifts it,
	// seconds (executors on one trace start at different points).
	Start  time.Time
	Offset float64
	// Sleep waits; nil means a timer honouring the context. Tests replace
	// it to run faster than real time.
	Sleep func(ctx context.Context, d time.Duration) error
}

// New is a link following trace from now, offset seconds in.
func New(trace *bwtrace.Trace, rttMs, offset float64) (*Emulated, error) {
	if trace == nil {
		return nil, fmt.Errorf("link: no bandwidth trace")
	}
	if math.IsNaN(rttMs) || math.IsInf(rttMs, 0) || rttMs < 0 {
		return nil, fmt.Errorf("link: round trip %g ms is not a finite non-negative number", rttMs)
	}
	if trace.Mean() <= 0 {
		return nil, fmt.Errorf("link: trace %s never delivers anything", trace.Name)
	}
	return &Emulated{Trace: trace, RTTMs: rttMs, Start: time.Now(), Offset: offset}, nil
}

// Transfer is one send across the link.
type Transfer struct {
	// TransferMs is how long the link was busy with the bytes; RTTMs the
	// round trip on top.
	TransferMs float64
	RTTMs      float64
}

// Send waits as long as sending bytes from now takes on the trace, plus
// the round trip, and says how long each part took.
func (l *Emulated) Send(ctx context.Context, bytes int) (Transfer, error) {
	return l.send(ctx, bytes, true)
}

// Transmit waits only as long as the bytes keep the link busy (the
// transfer), not the round trip, which it states in the Transfer for the
// caller to wait: a pipelined sender holds the link for the transfer
// alone, and the next request's bytes may follow while the round trip of
// the last is still under way.
func (l *Emulated) Transmit(ctx context.Context, bytes int) (Transfer, error) {
	return l.send(ctx, bytes, false)
}

func (l *Emulated) send(ctx context.Context, bytes int, withRTT bool) (Transfer, error) {
	now := time.Since(l.Start).Seconds() + l.Offset
	end, err := l.Trace.TransferEnd(now, float64(bytes)*8)
	if err != nil {
		return Transfer{}, err
	}
	tr := Transfer{TransferMs: (end - now) * 1000, RTTMs: l.RTTMs}
	wait := tr.TransferMs
	if withRTT {
		wait += tr.RTTMs
	}
	if err := l.sleep(ctx, time.Duration(wait*float64(time.Millisecond))); err != nil {
		return Transfer{}, err
	}
	return tr, nil
}

func (l *Emulated) sleep(ctx context.Context, d time.Duration) error {
	if l.Sleep != nil {
		return l.Sleep(ctx, d)
	}
	return SleepContext(ctx, d)
}

// SleepContext waits d, or until ctx ends (its error then).
func SleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Estimator tracks the link as an executor sees it: an exponentially
// weighted mean of the throughput of its recent transfers and of their
// round trips. It knows nothing of the trace; it is what a real executor
// would measure. It is safe for concurrent use.
type Estimator struct {
	mu        sync.Mutex
	alpha     float64
	bandwidth float64 // Mbit/s
	rtt       float64 // ms
}

// NewEstimator starts from a guess of the bandwidth (Mbit/s) and round
// trip (ms); alpha in (0, 1] is the weight of each new transfer.
func NewEstimator(bandwidthMbps, rttMs, alpha float64) (*Estimator, error) {
	if !(bandwidthMbps > 0) || math.IsInf(bandwidthMbps, 0) || !(rttMs >= 0) || math.IsInf(rttMs, 0) || !(alpha > 0 && alpha <= 1) {
		return nil, fmt.Errorf("link: estimator needs a positive bandwidth, a non-negative round trip and alpha in (0, 1]; got %g Mbit/s, %g ms, %g", bandwidthMbps, rttMs, alpha)
	}
	return &Estimator{alpha: alpha, bandwidth: bandwidthMbps, rtt: rttMs}, nil
}

// Observe folds in a transfer of bytes that kept the link busy for
// transferMs and had a round trip of rttMs. Transfers too small or too
// quick to time (under 1 kB or 0.1 ms) update only the round trip.
func (e *Estimator) Observe(bytes int, transferMs, rttMs float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rttMs >= 0 && !math.IsInf(rttMs, 0) {
		e.rtt += e.alpha * (rttMs - e.rtt)
	}
	if bytes >= 1000 && transferMs >= 0.1 && !math.IsInf(transferMs, 0) {
		mbps := float64(bytes) * 8 / (transferMs * 1e3)
		e.bandwidth += e.alpha * (mbps - e.bandwidth)
	}
}

// Estimate returns the current bandwidth (Mbit/s) and round trip (ms).
func (e *Estimator) Estimate() (bandwidthMbps, rttMs float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bandwidth, e.rtt
}
