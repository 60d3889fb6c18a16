package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/cloud"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/device/client"
	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/executor/load"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/internal/bwtrace"
	"github.com/dynoml/dyno/model/mnist"
)

// readToken reads a bearer token file: its first line, trimmed.
func readToken(path, what string) (string, error) {
	if path == "" {
		return "", usageError{fmt.Errorf("%s: a token file is required", what)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	tok, _, _ := strings.Cut(string(data), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("%s: %s is empty", what, path)
	}
	return tok, nil
}

// dialOptions builds how to reach a server: TLS trusting ca, or plaintext.
func dialOptions(token, ca string, insecure bool) (api.DialOptions, error) {
	o := api.DialOptions{Token: token, Insecure: insecure}
	if !insecure {
		var err error
		if o.TLS, err = api.ClientTLS(ca, ""); err != nil {
			return o, fmt.Errorf("CA certificate: %w", err)
		}
	}
	return o, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// newCloudCmd is `dyno-executor cloud`: serve api.Cloud.
func newCloudCmd() *cobra.Command {
	var (
		models            []string
		listen, tokenFile string
		certFile, keyFile string
		insecure          bool
		workers, threads  int
		maxQueue          int
		logLevel          string
		provider          string
		gpu               int
	)
	cmd := &cobra.Command{
		Use:   "cloud --model DIR [--model DIR ...] --token-file FILE",
		Short: "Serve the cloud side: run the blocks after a device's split",
		Long: `cloud loads every block of each model folder (model.json and blocks/*.onnx,
as 'dynoctl model split' or 'make models' writes them) into ONNX Runtime and
serves the Cloud gRPC service: a device executor sends the tensor at its
split, packed, and gets the model's output back with the time it queued,
the time unpacking took and the time the blocks took.

Device executors must send the secret in --token-file as a bearer token.
Serve TLS with --tls-cert and --tls-key, or plaintext with --insecure (for
one machine or a trusted network only).`,
		Example: `  dyno-executor cloud --model models/mobilenetv2 --listen 127.0.0.1:7071 --token-file cloud.token --insecure`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(models) == 0 {
				return usageError{errors.New("--model: give at least one model folder")}
			}
			if !insecure && (certFile == "" || keyFile == "") {
				return usageError{errors.New("give --tls-cert and --tls-key, or --insecure to serve plaintext")}
			}
			token, err := readToken(tokenFile, "--token-file")
			if err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			prov, err := ort.ParseProvider(provider)
			if err != nil {
				return usageError{fmt.Errorf("--provider: %w", err)}
			}
			var chains []*ort.Chain
			defer func() {
				for _, c := range chains {
					c.Close()
				}
			}()
			for _, dir := range models {
				c, err := ort.OpenChain(dir, ort.Options{Threads: threads, Provider: prov, Device: gpu})
				if err != nil {
					return err
				}
				chains = append(chains, c)
			}
			srv, err := cloud.NewServerQueue(chains, workers, maxQueue)
			if err != nil {
				return err
			}
			var opts []grpc.ServerOption
			if !insecure {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return err
				}
				opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
			}
			gs := cloud.NewGRPCServer(srv, token, opts...)
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			log.Info("cloud executor serving", "addr", lis.Addr().String(), "models", strings.Join(srv.Models(), ","), "workers", max(workers, 1), "max-queue", maxQueue, "tls", !insecure)
			go func() {
				<-cmd.Context().Done()
				gs.GracefulStop()
			}()
			return gs.Serve(lis)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&models, "model", nil, "model folder to serve (repeatable)")
	fl.StringVar(&listen, "listen", "127.0.0.1:7071", "gRPC listen address")
	fl.StringVar(&tokenFile, "token-file", "", "file holding the bearer token device executors must send")
	fl.StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&keyFile, "tls-key", "", "TLS private key (PEM)")
	fl.BoolVar(&insecure, "insecure", false, "serve plaintext")
	fl.IntVar(&workers, "workers", 1, "requests run at once; the rest queue")
	fl.IntVar(&maxQueue, "max-queue", cloud.DefaultMaxQueue, "requests that may wait for a worker; beyond them a request is refused (ResourceExhausted) and the device finishes it")
	fl.IntVar(&threads, "threads", 0, "ONNX Runtime intra-op threads per session (0: its default)")
	fl.StringVar(&provider, "provider", "cpu", "ONNX Runtime execution provider: cpu, cuda or tensorrt (cuda and tensorrt need a GPU build of the library, see docs/deploy.md)")
	fl.IntVar(&gpu, "gpu", 0, "GPU the cuda and tensorrt providers run on")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// deviceFlags are the flags of `dyno-executor device`.
type deviceFlags struct {
	id, model, deviceClass, cloudClass, objective       string
	controller, controllerCA, tokenFile                 string
	cloudAddr, cloudCA, cloudTokenFile                  string
	insecure                                            bool
	trace                                               string
	rttMs, traceOffset, bandwidthGuess, slowdown, alpha float64
	requests, every, threads                            int
	inputs                                              string
	seed                                                uint64
	compress                                            bool
	flush, registerWait                                 time.Duration
	logLevel                                            string
	serve                                               serveFlags
	inFlight                                            int
}

// newDeviceCmd is `dyno-executor device`: the device side, emulated.
func newDeviceCmd() *cobra.Command {
	var f deviceFlags
	cmd := &cobra.Command{
		Use:   "device --model DIR --device-class CLASS --controller ADDR --cloud ADDR [--trace FILE --slowdown F]",
		Short: "Run the device side: decide, run blocks 1..s, send the split, report",
		Long: `device registers with the controller for the key (model, device class,
objective), restores the policy the controller publishes and keeps it fresh,
and serves requests: for each it measures its context (the bandwidth and
round trip of its recent transfers, the cloud's last queueing), lets the
policy choose an arm (split s, bits b) with its probability, runs blocks 1..s
with ONNX Runtime, packs the tensor at the split to b bits, sends it to the
cloud executor, and reports every stage's time, the bytes sent and whether
the answer was right to the controller. Reports are batched and kept until
the controller acknowledges them; while it is away the executor keeps
deciding with the policy it holds.

With --trace the link is EMULATED, and every line printed says so: a
transfer takes what the bandwidth trace says (plus --rtt); --slowdown
stretches every device stage to emulate a slower device than this host.
Without them the executor runs on the real device and the real network: the
transfer time of a request is its call's time less the cloud's own work and
the round trip, which a ping of the cloud measures every two seconds. The cost model comes from DIR/profiles/CLASS.json and
the cloud's profile, as the controller builds it.

Inputs: --inputs mnist serves the MNIST test set with its labels (accuracy
is reported); random serves normal noise without labels (no accuracy).`,
		Example: `  dyno-executor device --id phone-1 --model models/mobilenetv2 --device-class amd64-2cpu \
    --controller 127.0.0.1:7070 --token-file executor.token --cloud 127.0.0.1:7071 \
    --cloud-token-file cloud.token --insecure --trace ../shared/traces/norway-3g/FILE \
    --rtt 40 --slowdown 8 --inputs random --requests 500
  dyno-executor device --id jetson-7 --model models/mobilenetv2 --device-class jetson-xavier-nx \
    --controller ctl.example:7070 --ca ctl.crt --token-file executor.token \
    --cloud gpu.example:7071 --cloud-ca gpu.crt --cloud-token-file cloud.token --inputs random`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDevice(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "executor id, unique and stable (default: the host name and the device class)")
	fl.StringVar(&f.model, "model", "", "model folder: model.json, blocks/, accuracy.json, profiles/")
	fl.StringVar(&f.deviceClass, "device-class", "", "device class: its profile is DIR/profiles/CLASS.json")
	fl.StringVar(&f.cloudClass, "cloud-class", "", "cloud class (default: CLASS-cloud, as make models names it)")
	fl.StringVar(&f.objective, "objective", "", "objective name the controller knows (empty: default)")
	fl.StringVar(&f.controller, "controller", "127.0.0.1:7070", "controller address")
	fl.StringVar(&f.controllerCA, "ca", "", "CA certificate (PEM) the controller's certificate is checked against")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the executor token for the controller")
	fl.StringVar(&f.cloudAddr, "cloud", "127.0.0.1:7071", "cloud executor address")
	fl.StringVar(&f.cloudCA, "cloud-ca", "", "CA certificate (PEM) for the cloud executor")
	fl.StringVar(&f.cloudTokenFile, "cloud-token-file", "", "file holding the cloud executor's token")
	fl.BoolVar(&f.insecure, "insecure", false, "plaintext to the controller and the cloud executor")
	fl.StringVar(&f.trace, "trace", "", "bandwidth trace the emulated link follows (shared/traces format); empty: the real network")
	fl.Float64Var(&f.rttMs, "rtt", 40, "emulated round trip, ms (with --trace); otherwise the first guess of the real one")
	fl.Float64Var(&f.traceOffset, "trace-offset", 0, "start this many seconds into the trace")
	fl.Float64Var(&f.bandwidthGuess, "bandwidth-guess", 1, "bandwidth estimate before the first transfer, Mbit/s")
	fl.Float64Var(&f.alpha, "estimate-weight", 0.2, "weight of each transfer in the bandwidth and round-trip estimates")
	fl.Float64Var(&f.slowdown, "slowdown", 1, "emulated device slowdown: device stages take this many times what they take here")
	fl.IntVar(&f.requests, "requests", 500, "requests to serve (0: until interrupted)")
	fl.IntVar(&f.every, "every", 50, "print a progress line every this many requests")
	fl.IntVar(&f.threads, "threads", 1, "ONNX Runtime intra-op threads per session")
	fl.StringVar(&f.inputs, "inputs", "mnist", "mnist (labelled test images) or random")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the policy's exploration and of random inputs")
	fl.BoolVar(&f.compress, "compress", true, "zstd-compress packed tensors")
	fl.DurationVar(&f.flush, "flush", 30*time.Second, "at the end, wait this long for the controller to acknowledge every report")
	fl.DurationVar(&f.registerWait, "register-wait", 2*time.Minute, "at the start, wait this long for an unreachable cloud executor or controller")
	fl.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	fl.IntVar(&f.inFlight, "in-flight", 1, "without --api-listen/--api-socket: the built-in workload keeps this many requests in flight")
	f.serve.register(fl)
	return cmd
}

func runDevice(cmd *cobra.Command, f deviceFlags) error {
	switch {
	case f.model == "" || f.deviceClass == "":
		return usageError{errors.New("--model and --device-class are required")}
	case f.inputs != "mnist" && f.inputs != "random":
		return usageError{fmt.Errorf("--inputs %q: want mnist or random", f.inputs)}
	case f.every <= 0:
		return usageError{fmt.Errorf("--every %d: want at least 1", f.every)}
	case f.inFlight <= 0:
		return usageError{fmt.Errorf("--in-flight %d: want at least 1", f.inFlight)}
	}
	if err := f.serve.check(); err != nil {
		return err
	}
	if f.cloudClass == "" {
		f.cloudClass = f.deviceClass + "-cloud"
	}
	if f.id == "" {
		host, _ := os.Hostname()
		f.id = host + "-" + f.deviceClass
	}
	log, err := newLogger(cmd.ErrOrStderr(), f.logLevel)
	if err != nil {
		return err
	}
	token, err := readToken(f.tokenFile, "--token-file")
	if err != nil {
		return err
	}
	cloudToken, err := readToken(f.cloudTokenFile, "--cloud-token-file")
	if err != nil {
		return err
	}
	cm, err := costmodel.LoadDir(f.model, f.deviceClass, f.cloudClass)
	if err != nil {
		return err
	}
	var l *link.Emulated
	linkLabel := "real network"
	if f.trace != "" {
		tr, err := bwtrace.LoadTrace(f.trace)
		if err != nil {
			return err
		}
		if l, err = link.New(tr, f.rttMs, f.traceOffset); err != nil {
			return usageError{err}
		}
		linkLabel = fmt.Sprintf("link %s + %g ms", filepath.Base(tr.Name), f.rttMs)
	}
	est, err := link.NewEstimator(f.bandwidthGuess, f.rttMs, f.alpha)
	if err != nil {
		return usageError{err}
	}
	chain, err := ort.OpenChain(f.model, ort.Options{Threads: f.threads})
	if err != nil {
		return err
	}
	defer chain.Close()
	var inputs device.Inputs
	if !f.serve.serving() {
		if inputs, err = builtinInputs(f.inputs, cm.Manifest.Name, int(cm.Manifest.Input.Elements), f.seed); err != nil {
			return err
		}
	}
	ctlOpt, err := dialOptions(token, f.controllerCA, f.insecure)
	if err != nil {
		return err
	}
	ctlConn, err := api.Dial(f.controller, ctlOpt)
	if err != nil {
		return err
	}
	defer ctlConn.Close()
	cloudOpt, err := dialOptions(cloudToken, f.cloudCA, f.insecure)
	if err != nil {
		return err
	}
	cloudOpt.Extra = append(cloudOpt.Extra, cloud.DialOptions()...)
	cloudConn, err := api.Dial(f.cloudAddr, cloudOpt)
	if err != nil {
		return err
	}
	defer cloudConn.Close()

	ctx := cmd.Context()
	regCtx, cancel := context.WithTimeout(ctx, f.registerWait)
	agent, err := device.New(regCtx, device.Config{
		ExecutorID: f.id, DeviceClass: f.deviceClass, Objective: f.objective, CostModel: cm, Chain: chain,
		Controller: api.NewExecutorClient(ctlConn), Cloud: api.NewCloudClient(cloudConn), Link: l, Estimator: est,
		Slowdown: f.slowdown, Compress: f.compress, Seed: f.seed, Logger: log, Version: "dyno-executor",
		Depth: f.serve.depth, FeedbackWindow: f.serve.feedbackWindow, ShadowShare: f.serve.shadowShare,
	})
	cancel()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	label := f.id + " [real device, real network]"
	if l != nil || f.slowdown > 1 {
		label = fmt.Sprintf("%s [EMULATED: device %gx this host, %s]", f.id, f.slowdown, linkLabel)
	}
	fmt.Fprintf(out, "%s: key %s, policy v%d\n", label, agent.Key(), agent.PolicyVersion())
	// The executor's loops outlive an interrupt long enough to flush.
	agent.Start(context.WithoutCancel(ctx))
	if f.serve.serving() {
		return serveDevice(ctx, out, log, agent, f.serve, f.flush, label)
	}
	// The built-in workload is an application of the Device API: the
	// executor serves it on a private unix socket, and a load client
	// drives it.
	srv, target, token, err := servePrivate(agent)
	if err != nil {
		return errors.Join(err, agent.Stop(f.flush))
	}
	c, err := client.Dial(target, client.Options{Dial: api.DialOptions{Token: token, Insecure: true}})
	if err != nil {
		srv.stop()
		return errors.Join(err, agent.Stop(f.flush))
	}
	var win, all window
	k := cm.Manifest.K()
	sum, runErr := load.Run(ctx, load.Config{
		Client: c, Inputs: inputs, Shape: cm.Manifest.Input.Shape, Requests: f.requests, InFlight: f.inFlight,
		Each: func(s load.Sample) {
			win.add(s, k)
			all.add(s, k)
			if all.n%f.every == 0 {
				fmt.Fprintf(out, "%s: %d requests; last %d: %s, policy v%d\n", label, all.n, win.n, win.summary(), s.Resp.GetPolicyVersion())
				win = window{}
			}
		},
	})
	c.Close()
	srv.stop()
	stopErr := agent.Stop(f.flush)
	fmt.Fprintf(out, "%s: done, %d requests: %s; %.2f req/s, latency p50 %.1f p95 %.1f ms; %d reports dropped; %d finished on the device because the cloud was unreachable\n",
		label, all.n, all.summary(), sum.Throughput(), sum.Percentile(0.5), sum.Percentile(0.95), agent.Dropped(), agent.Fallbacks())
	return errors.Join(runErr, stopErr)
}

// builtinInputs are the inputs of the built-in workload: mnist (the test
// set, labelled) or random (normal noise, unlabelled).
func builtinInputs(kind, model string, elements int, seed uint64) (device.Inputs, error) {
	if kind == "random" {
		return &device.Random{Elements: elements, Rng: rand.New(rand.NewPCG(seed, 0x696e))}, nil
	}
	if model != "mnist" {
		return nil, usageError{fmt.Errorf("--inputs mnist serves MNIST images; model %s needs --inputs random", model)}
	}
	dir, err := mnist.Dir()
	if err != nil {
		return nil, err
	}
	set, err := mnist.LoadTest(dir)
	if err != nil {
		return nil, err
	}
	return &device.MNIST{Set: set}, nil
}

// window summarises a run of results.
type window struct {
	n, offloaded, labelled, correct int
	latency                         float64
	arms                            map[costmodel.Arm]int
}

func (w *window) add(s load.Sample, k int) {
	if w.arms == nil {
		w.arms = map[costmodel.Arm]int{}
	}
	w.n++
	w.latency += s.Resp.GetStages().GetLatencyMs()
	arm := costmodel.Arm{Split: int(s.Resp.GetArm().GetSplit()), Bits: int(s.Resp.GetArm().GetBits())}
	if arm.Split < k {
		w.offloaded++
	}
	if s.Label >= 0 {
		w.labelled++
		if s.Correct {
			w.correct++
		}
	}
	w.arms[arm]++
}

func (w *window) summary() string {
	if w.n == 0 {
		return "nothing served"
	}
	arms := load.ByUse(w.arms)
	s := fmt.Sprintf("mean latency %.1f ms, offloaded %.0f%%, top arm %v (%.0f%%)", w.latency/float64(w.n),
		100*float64(w.offloaded)/float64(w.n), arms[0].Arm, 100*float64(arms[0].N)/float64(w.n))
	if w.labelled > 0 {
		s += fmt.Sprintf(", accuracy %.3f", float64(w.correct)/float64(w.labelled))
	}
	return s
}
