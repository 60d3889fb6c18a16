package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/device/client"
	"github.com/dynoml/dyno/executor/load"
)

// loadFlags are the flags of `dyno-executor load`.
type loadFlags struct {
	target, tokenFile, ca string
	insecure              bool
	rate                  float64
	inFlight, requests    int
	duration, timeout     time.Duration
	data, inputs          string
	model, deviceClass    string
	cloudClass            string
	feedback, json        bool
	seed                  uint64
	deviceSlowdown        float64
	every                 int
}

// newLoadCmd is `dyno-executor load`: an application load on a running
// device executor.
func newLoadCmd() *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "load --target ADDR --token-file FILE [--rate R | --in-flight N] [--data DIR | --inputs mnist|random]",
		Short: "Drive a running device executor through its Device API and measure it",
		Long: `load is an application: it sends requests to a device executor's Device API
(dyno-executor device --api-listen or --api-socket), at a fixed rate
(--rate, open loop, at most --in-flight outstanding) or with --in-flight
requests always in flight (closed loop), until --requests are answered or
--duration passes. Inputs come from --data DIR (the MNIST test set's files,
or one raw little-endian float32 *.f32 file per input with an optional
labels.txt) or --inputs (mnist, random). Labels go with the requests, or
with --feedback as Feedback after each answer.

It prints the throughput, the latency percentiles (as the client saw them),
the arms the executor chose and their shares, the accuracy on labelled
inputs, and, given the model folder (--model, --device-class), the cost
model's throughput 1/max(D, N, C) for those arms at the link the run
measured and the device's emulated slowdown, beside the stage bound from
the stages the executor measured.`,
		Example: `  dyno-executor load --target 127.0.0.1:7072 --token-file app.token --insecure --in-flight 4 \
    --requests 500 --inputs mnist --model models/mnist --device-class amd64-2cpu
  dyno-executor load --target unix:///run/dyno/device.sock --token-file app.token --insecure \
    --rate 20 --duration 30s --data ./images`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLoad(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "the device executor's Device API: host:port, unix:///absolute/path or unix:relative/path")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the Device API's token")
	fl.StringVar(&f.ca, "ca", "", "CA certificate (PEM) of the Device API's TLS certificate")
	fl.BoolVar(&f.insecure, "insecure", false, "plaintext to the Device API")
	fl.Float64Var(&f.rate, "rate", 0, "requests a second, open loop (0: closed loop with --in-flight)")
	fl.IntVar(&f.inFlight, "in-flight", 1, "requests in flight (closed loop), or at most outstanding (open loop)")
	fl.IntVar(&f.requests, "requests", 200, "requests to send (0: until --duration)")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (0: no bound)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "deadline of each call")
	fl.StringVar(&f.data, "data", "", "data set folder (MNIST test files, or *.f32 inputs with labels.txt)")
	fl.StringVar(&f.inputs, "inputs", "random", "without --data: mnist (labelled test images) or random")
	fl.StringVar(&f.model, "model", "", "model folder, for the cost model's prediction")
	fl.StringVar(&f.deviceClass, "device-class", "", "device class of the prediction (DIR/profiles/CLASS.json)")
	fl.StringVar(&f.cloudClass, "cloud-class", "", "cloud class (default: CLASS-cloud)")
	fl.BoolVar(&f.feedback, "feedback", false, "send labels as Feedback after each answer instead of with the request")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of random inputs")
	fl.Float64Var(&f.deviceSlowdown, "device-slowdown", 0, "the device's slowdown against its profile in the prediction (0: the executor's emulated slowdown; 1 for a profile of the emulated class itself)")
	fl.IntVar(&f.every, "every", 0, "print a progress line every this many answers (0: only the summary)")
	fl.BoolVar(&f.json, "json", false, "print the summary as one JSON object instead of lines")
	return cmd
}

func runLoad(cmd *cobra.Command, f loadFlags) error {
	switch {
	case f.target == "":
		return usageError{errors.New("--target is required")}
	case f.requests == 0 && f.duration <= 0:
		return usageError{errors.New("give --requests or --duration: the run needs a bound")}
	case f.requests < 0 || f.inFlight < 1:
		return usageError{fmt.Errorf("--requests %d, --in-flight %d: want zero or more, and at least 1", f.requests, f.inFlight)}
	case !(f.rate >= 0) || math.IsInf(f.rate, 0):
		return usageError{fmt.Errorf("--rate %g: want zero or a finite positive rate", f.rate)}
	case f.every < 0:
		return usageError{fmt.Errorf("--every %d: want zero or more", f.every)}
	case (f.model == "") != (f.deviceClass == ""):
		return usageError{errors.New("--model and --device-class go together (the prediction needs both)")}
	case f.deviceSlowdown != 0 && !(f.deviceSlowdown >= 1) || math.IsInf(f.deviceSlowdown, 0):
		return usageError{fmt.Errorf("--device-slowdown %g: want 0 (the executor's) or a finite factor of at least 1", f.deviceSlowdown)}
	case f.data == "" && f.inputs != "mnist" && f.inputs != "random":
		return usageError{fmt.Errorf("--inputs %q: want mnist or random", f.inputs)}
	}
	token, err := readToken(f.tokenFile, "--token-file")
	if err != nil {
		return err
	}
	opt, err := dialOptions(token, f.ca, f.insecure)
	if err != nil {
		return err
	}
	c, err := client.Dial(f.target, client.Options{Dial: opt, Timeout: f.timeout})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	desc, err := c.Describe(ctx)
	if err != nil {
		return fmt.Errorf("the device executor at %s: %w", f.target, err)
	}
	if f.deviceSlowdown > 0 {
		desc.DeviceSlowdown = f.deviceSlowdown
	}
	elements := 1
	for _, d := range desc.GetInputShape() {
		elements *= int(d)
	}
	var inputs device.Inputs
	if f.data != "" {
		if inputs, err = load.Folder(f.data, elements); err != nil {
			return err
		}
	} else if inputs, err = builtinInputs(f.inputs, desc.GetModel(), elements, f.seed); err != nil {
		return err
	}
	var cm *costmodel.Model
	if f.model != "" {
		if f.cloudClass == "" {
			f.cloudClass = f.deviceClass + "-cloud"
		}
		if cm, err = costmodel.LoadDir(f.model, f.deviceClass, f.cloudClass); err != nil {
			return err
		}
		if cm.Manifest.Name != desc.GetModel() {
			return usageError{fmt.Errorf("--model %s is model %s; the executor serves %s", f.model, cm.Manifest.Name, desc.GetModel())}
		}
	}
	out := cmd.OutOrStdout()
	if f.json {
		sum, runErr := load.Run(ctx, load.Config{Client: c, Inputs: inputs, Shape: desc.GetInputShape(), Requests: f.requests,
			Duration: f.duration, Rate: f.rate, InFlight: f.inFlight, Feedback: f.feedback})
		if sum != nil {
			if err := writeLoadJSON(out, sum, cm, desc); err != nil {
				return errors.Join(runErr, err)
			}
		}
		return runErr
	}
	mode := fmt.Sprintf("closed loop, %d in flight", f.inFlight)
	if f.rate > 0 {
		mode = fmt.Sprintf("open loop at %g req/s, at most %d outstanding", f.rate, f.inFlight)
	}
	where := "real device"
	if e := desc.GetEmulated(); e != "" {
		where = "EMULATED: " + e
	}
	fmt.Fprintf(out, "load: %s at %s [%s], key %s, depth %d; %s\n", desc.GetModel(), f.target, where, desc.GetKey(), desc.GetDepth(), mode)
	var each func(load.Sample)
	if f.every > 0 {
		var win window
		served, k := 0, 0 // k: the block count, the largest split
		for _, a := range desc.GetArms() {
			k = max(k, int(a.GetSplit()))
		}
		each = func(s load.Sample) {
			win.add(s, k)
			if served++; served%f.every == 0 {
				fmt.Fprintf(out, "load: %d answered; last %d: %s, policy v%d\n", served, win.n, win.summary(), s.Resp.GetPolicyVersion())
				win = window{}
			}
		}
	}
	sum, runErr := load.Run(ctx, load.Config{Client: c, Inputs: inputs, Shape: desc.GetInputShape(), Requests: f.requests,
		Duration: f.duration, Rate: f.rate, InFlight: f.inFlight, Feedback: f.feedback, Each: each})
	if sum != nil {
		printLoad(out, sum, cm, desc)
	}
	return runErr
}

// loadJSON is the summary of `load --json`.
type loadJSON struct {
	Model              string             `json:"model"`
	Key                string             `json:"key"`
	Emulated           string             `json:"emulated,omitempty"`
	Served             int                `json:"served"`
	Refused            int                `json:"refused"`
	Fallbacks          int                `json:"fallbacks"`
	Seconds            float64            `json:"seconds"`
	Throughput         float64            `json:"throughput_rps"`
	MeanMs             float64            `json:"latency_mean_ms"`
	P50Ms              float64            `json:"latency_p50_ms"`
	P95Ms              float64            `json:"latency_p95_ms"`
	P99Ms              float64            `json:"latency_p99_ms"`
	BytesPerRequest    float64            `json:"bytes_per_request"`
	Arms               map[string]float64 `json:"arm_shares"`
	TopArm             string             `json:"top_arm"`
	Accuracy           *float64           `json:"accuracy,omitempty"`
	CalibratedAccuracy *float64           `json:"calibrated_accuracy,omitempty"`
	StageBound         float64            `json:"stage_bound_rps"`
	Predicted          *float64           `json:"predicted_rps,omitempty"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func writeLoadJSON(out io.Writer, sum *load.Summary, cm *costmodel.Model, desc *api.DeviceDescribeResponse) error {
	j := loadJSON{Model: desc.GetModel(), Key: desc.GetKey(), Emulated: desc.GetEmulated(), Served: sum.Served, Refused: sum.Refused,
		Fallbacks: sum.Fallbacks, Seconds: sum.Elapsed.Seconds(), Throughput: sum.Throughput(), MeanMs: sum.MeanLatency(),
		P50Ms: sum.Percentile(0.5), P95Ms: sum.Percentile(0.95), P99Ms: sum.Percentile(0.99),
		BytesPerRequest: sum.Bytes / float64(max(sum.Served, 1)), Arms: map[string]float64{}, Accuracy: finite(sum.Accuracy()),
		StageBound: sum.StageBound()}
	top := 0
	for arm, n := range sum.Arms {
		j.Arms[arm.String()] = float64(n) / float64(max(sum.Served, 1))
		if n > top || n == top && arm.String() < j.TopArm {
			top, j.TopArm = n, arm.String()
		}
	}
	if cm != nil && sum.Served > 0 {
		j.CalibratedAccuracy = finite(sum.CalibratedAccuracy(cm))
		j.Predicted = finite(sum.Predicted(cm, predictionConditions(sum, desc)))
	}
	for _, p := range []*float64{&j.MeanMs, &j.P50Ms, &j.P95Ms, &j.P99Ms} {
		if math.IsNaN(*p) {
			*p = 0
		}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// predictionConditions are the conditions of the cost model's prediction
// for a run: the bandwidth and round trip it measured, the executor's
// emulated slowdown.
func predictionConditions(sum *load.Summary, desc *api.DeviceDescribeResponse) costmodel.Conditions {
	n := float64(max(sum.Served, 1))
	cond := costmodel.Conditions{BandwidthMbps: sum.MeasuredBandwidthMbps(), RTTMs: sum.RTT / n, DeviceSlowdown: max(desc.GetDeviceSlowdown(), 1)}
	if cond.BandwidthMbps <= 0 {
		cond.BandwidthMbps = 1 // nothing was sent: the link plays no part
	}
	return cond
}

// printLoad prints a run's summary and, with a cost model, its prediction.
func printLoad(out io.Writer, sum *load.Summary, cm *costmodel.Model, desc *api.DeviceDescribeResponse) {
	fmt.Fprintf(out, "load: %s\n", sum)
	if sum.FeedbackRefused > 0 {
		fmt.Fprintf(out, "load: %d feedback calls refused (their reports had gone)\n", sum.FeedbackRefused)
	}
	if sum.Served == 0 {
		return
	}
	n := float64(sum.Served)
	fmt.Fprintf(out, "load: measured stages per request: device %.1f ms, transfer %.1f ms (+ round trip %.1f), cloud %.1f ms; stage bound 1/max(D,N,C) %.2f req/s\n",
		sum.Device/n, sum.Network/n, sum.RTT/n, sum.Cloud/n, sum.StageBound())
	if cm == nil {
		return
	}
	cond := predictionConditions(sum, desc)
	pred := sum.Predicted(cm, cond)
	fmt.Fprintf(out, "load: cost model 1/max(D,N,C) for these arms at %.2f Mbit/s, device slowdown %g: %.2f req/s; measured/predicted %.2f\n",
		cond.BandwidthMbps, cond.DeviceSlowdown, pred, sum.Throughput()/pred)
}
