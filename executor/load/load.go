// Package load drives a running device executor through its Device API,
// as applications would: at a fixed rate (open loop) or with a fixed
// number of requests in flight (closed loop), from a data set folder or
// built-in inputs, and summarises what it measured (throughput, latency
// percentiles, arm shares, accuracy) beside what the cost model predicts
// for the arms the executor chose.
package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/device/client"
)

// Config configures a run.
type Config struct {
	Client *client.Client
	// Inputs supplies the requests (called from one goroutine at a time).
	Inputs device.Inputs
	// Shape is the model's input shape (Describe gives it).
	Shape []int64
	// Requests bounds the run (0: until Duration, or the inputs run out).
	Requests int
	// Duration bounds the run (0: no bound).
	Duration time.Duration
	// Rate, when positive, sends that many requests a second whatever the
	// answers (open loop), with at most InFlight outstanding (a tick that
	// finds InFlight outstanding is skipped and counted). Zero runs a
	// closed loop of InFlight requests in flight.
	Rate     float64
	InFlight int
	// Feedback sends labels as Feedback after the answer, rather than with
	// the request.
	Feedback bool
	// Each, when not nil, sees every answered request (from many
	// goroutines, one at a time).
	Each func(Sample)
}

// Sample is one answered request.
type Sample struct {
	Resp *api.DeviceInferResponse
	// Label is the input's label (negative: none); Correct whether the
	// output's argmax is it.
	Label   int
	Correct bool
	// LatencyMs is the call's time as the client saw it.
	LatencyMs float64
}

// Summary is what a run measured.
type Summary struct {
	Served, Refused, Skipped, Fallbacks int
	Elapsed                             time.Duration
	Latencies                           []float64 // sorted, ms
	Arms                                map[costmodel.Arm]int
	Labelled, Correct                   int
	FeedbackRefused                     int
	// Sums of the measured stages of the served requests, ms and bytes.
	Device, Network, RTT, Cloud, Bytes float64
	// Per arm, the sums of the measured device, transfer and cloud stages.
	armStages map[costmodel.Arm]*[3]float64
}

// Throughput is the served requests per second.
func (s *Summary) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Served) / s.Elapsed.Seconds()
}

// Percentile is the latency at q in [0, 1] (nearest rank), ms.
func (s *Summary) Percentile(q float64) float64 {
	if len(s.Latencies) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(s.Latencies)))) - 1
	return s.Latencies[min(max(i, 0), len(s.Latencies)-1)]
}

// Accuracy is the share of labelled requests answered right (NaN: none).
func (s *Summary) Accuracy() float64 {
	if s.Labelled == 0 {
		return math.NaN()
	}
	return float64(s.Correct) / float64(s.Labelled)
}

// MeasuredBandwidthMbps is the bytes sent over the time the link was busy
// with them (0: nothing sent).
func (s *Summary) MeasuredBandwidthMbps() float64 {
	if s.Network <= 0 {
		return 0
	}
	return s.Bytes * 8 / (s.Network * 1e3)
}

// StageBound is 1 / max(D, N, C) of the measured stages, mixed over the
// arms in their shares: what the pipeline can deliver from what each stage
// took, requests per second.
func (s *Summary) StageBound() float64 {
	if s.Served == 0 {
		return 0
	}
	var d, n, c float64
	for _, st := range s.armStages {
		d, n, c = d+st[0], n+st[1], c+st[2]
	}
	return float64(s.Served) * 1000 / max(d, n, c)
}

// Predicted is the cost model's throughput for the arms in their shares,
// 1 / max(D, N, C) with every stage mixed over the arms, in cond
// (requests per second), and the arm share it covered (arms the model
// does not know are left out).
func (s *Summary) Predicted(cm *costmodel.Model, cond costmodel.Conditions) (rps float64) {
	var d, n, c float64
	total := 0
	for arm, k := range s.Arms {
		i, ok := cm.Index(arm)
		if !ok {
			continue
		}
		p := cm.Predict(i, cond)
		w := float64(k)
		d, n, c = d+w*p.Device(), n+w*p.NetworkMs, c+w*p.Cloud()
		total += k
	}
	if total == 0 || max(d, n, c) <= 0 {
		return 0
	}
	return float64(total) * 1000 / max(d, n, c)
}

// MeanLatency is the mean client latency, ms.
func (s *Summary) MeanLatency() float64 {
	if len(s.Latencies) == 0 {
		return math.NaN()
	}
	sum := 0.0
	for _, v := range s.Latencies {
		sum += v
	}
	return sum / float64(len(s.Latencies))
}

// CalibratedAccuracy is the calibration table's accuracy of the arms in
// their shares (for unlabelled inputs); NaN when no arm is calibrated.
func (s *Summary) CalibratedAccuracy(cm *costmodel.Model) float64 {
	var acc float64
	n := 0
	bases := cm.Bases()
	for arm, k := range s.Arms {
		i, ok := cm.Index(arm)
		if !ok || !bases[i].Calibrated && arm.Split != cm.Manifest.K() {
			continue
		}
		acc += float64(k) * bases[i].Accuracy
		n += k
	}
	if n == 0 {
		return math.NaN()
	}
	return acc / float64(n)
}

// ArmCount is an arm and how many requests used it.
type ArmCount struct {
	Arm costmodel.Arm
	N   int
}

// ByUse lists the arms of counts, most used first (ties by name).
func ByUse(counts map[costmodel.Arm]int) []ArmCount {
	arms := make([]ArmCount, 0, len(counts))
	for a, n := range counts {
		arms = append(arms, ArmCount{a, n})
	}
	sort.Slice(arms, func(i, j int) bool {
		return arms[i].N > arms[j].N || arms[i].N == arms[j].N && arms[i].Arm.String() < arms[j].Arm.String()
	})
	return arms
}

// ArmShares lists the arms by share, most used first.
func (s *Summary) ArmShares() string {
	arms := ByUse(s.Arms)
	var parts []string
	for i, x := range arms {
		if i == 5 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%v %.0f%%", x.Arm, 100*float64(x.N)/float64(max(s.Served, 1))))
	}
	return strings.Join(parts, ", ")
}

// String is the summary in one line.
func (s *Summary) String() string {
	out := fmt.Sprintf("%d served in %.1f s: %.2f req/s, latency p50 %.1f p95 %.1f p99 %.1f ms, %.0f bytes/request, arms %s",
		s.Served, s.Elapsed.Seconds(), s.Throughput(), s.Percentile(0.5), s.Percentile(0.95), s.Percentile(0.99),
		s.Bytes/float64(max(s.Served, 1)), s.ArmShares())
	if s.Labelled > 0 {
		out += fmt.Sprintf(", accuracy %.3f", s.Accuracy())
	}
	out += fmt.Sprintf("; %d refused (ResourceExhausted)", s.Refused)
	if s.Skipped > 0 {
		out += fmt.Sprintf(", %d ticks skipped (in flight full)", s.Skipped)
	}
	if s.Fallbacks > 0 {
		out += fmt.Sprintf(", %d finished on the device (cloud unreachable)", s.Fallbacks)
	}
	return out
}

// run is the state of one run.
type run struct {
	cfg Config
	mu  sync.Mutex // inputs, the summary and Each
	sum Summary
	n   int // requests taken from the inputs
	err error
}

// next takes the next input, or false when the run is over.
func (r *run) next() (device.Input, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil || r.cfg.Requests > 0 && r.n >= r.cfg.Requests {
		return device.Input{}, false
	}
	in, ok := r.cfg.Inputs.Next()
	if !ok {
		return device.Input{}, false
	}
	r.n++
	in.X = slices.Clone(in.X) // a generator may reuse its buffer
	return in, true
}

// Run drives the executor until the run's bound, ctx ends or a request
// fails for another reason than the executor's depth (that error is
// returned with what was measured until then).
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Client == nil || cfg.Inputs == nil {
		return nil, errors.New("load: config needs a client and inputs")
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 1
	}
	if math.IsNaN(cfg.Rate) || cfg.Rate < 0 || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("load: rate %g: want zero (closed loop) or a positive number of requests a second", cfg.Rate)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	r := &run{cfg: cfg, sum: Summary{Arms: map[costmodel.Arm]int{}, armStages: map[costmodel.Arm]*[3]float64{}}}
	start := time.Now()
	var wg sync.WaitGroup
	if cfg.Rate == 0 {
		for range cfg.InFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					in, ok := r.next()
					if !ok {
						return
					}
					r.one(ctx, in)
				}
			}()
		}
	} else {
		slots := make(chan struct{}, cfg.InFlight)
		every := time.Duration(float64(time.Second) / cfg.Rate)
		tick := time.NewTicker(every)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				r.mu.Lock()
				r.sum.Skipped++
				r.mu.Unlock()
				continue
			}
			in, ok := r.next()
			if !ok {
				<-slots
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				r.one(ctx, in)
			}()
		}
		tick.Stop()
	}
	wg.Wait()
	r.sum.Elapsed = time.Since(start)
	slices.Sort(r.sum.Latencies)
	err := r.err
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
	}
	return &r.sum, err
}

// one sends a request and folds in its answer.
func (r *run) one(ctx context.Context, in device.Input) {
	ci := client.Input{X: in.X, Shape: r.cfg.Shape}
	if in.Label >= 0 && !r.cfg.Feedback {
		l := int32(in.Label)
		ci.Label = &l
	}
	t := time.Now()
	resp, err := r.cfg.Client.Infer(ctx, ci)
	ms := float64(time.Since(t)) / float64(time.Millisecond)
	if err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case status.Code(err) == codes.ResourceExhausted:
			r.sum.Refused++
		case ctx.Err() != nil:
		case r.err == nil:
			r.err = fmt.Errorf("load: request %d: %w", r.n, err)
		}
		return
	}
	s := Sample{Resp: resp, Label: in.Label, LatencyMs: ms}
	if in.Label >= 0 {
		s.Correct = argmax(resp.GetOutput().GetData()) == in.Label
	}
	fbRefused := false
	if in.Label >= 0 && r.cfg.Feedback && !resp.GetFallback() {
		if _, err := r.cfg.Client.Label(ctx, resp.GetRequestId(), int32(in.Label)); err != nil {
			fbRefused = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := &r.sum
	if fbRefused {
		sum.FeedbackRefused++
	}
	sum.Served++
	sum.Latencies = append(sum.Latencies, ms)
	if resp.GetFallback() {
		sum.Fallbacks++
	}
	arm := costmodel.Arm{Split: int(resp.GetArm().GetSplit()), Bits: int(resp.GetArm().GetBits())}
	sum.Arms[arm]++
	st := resp.GetStages()
	d, n, c := st.GetDeviceMs()+st.GetPackMs(), st.GetNetworkMs(), st.GetCloudQueueMs()+st.GetUnpackMs()+st.GetCloudMs()
	sum.Device, sum.Network, sum.RTT, sum.Cloud, sum.Bytes = sum.Device+d, sum.Network+n, sum.RTT+st.GetRttMs(), sum.Cloud+c, sum.Bytes+resp.GetBytes()
	as := sum.armStages[arm]
	if as == nil {
		as = &[3]float64{}
		sum.armStages[arm] = as
	}
	as[0], as[1], as[2] = as[0]+d, as[1]+n, as[2]+c
	if in.Label >= 0 {
		sum.Labelled++
		if s.Correct {
			sum.Correct++
		}
	}
	if r.cfg.Each != nil {
		r.cfg.Each(s)
	}
}

func argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if best < 0 || x > v[best] {
			best = i
		}
	}
	return best
}
