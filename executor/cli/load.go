package cli

import (
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
	feedback              bool
	seed                  uint64
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
	fl.StringVar(&f.target, "target", "", "the device executor's Device API: host:port or unix:///path")
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
	case (f.model == "") != (f.deviceClass == ""):
		return usageError{errors.New("--model and --device-class go together (the prediction needs both)")}
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
	mode := fmt.Sprintf("closed loop, %d in flight", f.inFlight)
	if f.rate > 0 {
		mode = fmt.Sprintf("open loop at %g req/s, at most %d outstanding", f.rate, f.inFlight)
	}
	where := "real device"
	if e := desc.GetEmulated(); e != "" {
		where = "EMULATED: " + e
	}
	fmt.Fprintf(out, "load: %s at %s [%s], key %s, depth %d; %s\n", desc.GetModel(), f.target, where, desc.GetKey(), desc.GetDepth(), mode)
	sum, runErr := load.Run(ctx, load.Config{Client: c, Inputs: inputs, Shape: desc.GetInputShape(), Requests: f.requests,
		Duration: f.duration, Rate: f.rate, InFlight: f.inFlight, Feedback: f.feedback})
	if sum != nil {
		printLoad(out, sum, cm, desc)
	}
	return runErr
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
	bw := sum.MeasuredBandwidthMbps()
	cond := costmodel.Conditions{BandwidthMbps: bw, RTTMs: sum.RTT / n, DeviceSlowdown: max(desc.GetDeviceSlowdown(), 1)}
	if bw <= 0 {
		cond.BandwidthMbps = 1 // nothing was sent: the link plays no part
	}
	pred := sum.Predicted(cm, cond)
	fmt.Fprintf(out, "load: cost model 1/max(D,N,C) for these arms at %.2f Mbit/s, device slowdown %g: %.2f req/s; measured/predicted %.2f\n",
		cond.BandwidthMbps, cond.DeviceSlowdown, pred, sum.Throughput()/pred)
}
