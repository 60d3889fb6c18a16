// Command loadgen measures the controller on this machine, with the
// controller in a child process on a loopback port (TLS, tokens, a real
// bbolt file with fsync), and prints what it measured:
//
//	go run ./controller/internal/loadgen ingest    # reports/s, durable, against a bare gRPC stream of the same messages
//	go run ./controller/internal/loadgen watchers  # p99 from publication to 1,000 watchers
//	go run ./controller/internal/loadgen memory    # controller memory with a million traces stored
//	go run ./controller/internal/loadgen all
//
// `loadgen serve` is the child: it runs the controller and, beside it, a
// bare Report server that acknowledges each batch as soon as it is
// received, with nothing else.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/controller/internal/fleet"
	"github.com/dynoml/dyno/costmodel"
)

const (
	adminToken    = "loadgen-admin-0123456789abcdef"
	executorToken = "loadgen-executor-0123456789abcdef"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen ingest|watchers|memory|all|serve [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "ingest", "watchers", "memory", "all":
		// This process plays a whole fleet (a thousand watchers): collect
		// less often than a single executor would.
		debug.SetGCPercent(400)
		err = measure(os.Args[1], os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// ---------------------------------------------------------------- child

// ready is what the child prints once it serves.
type ready struct {
	Addr, BareAddr string
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "folder with cert.pem, key.pem")
	storePath := fs.String("store", "", "store file")
	modelDir := fs.String("model-dir", "examples/mobilenetv2", "model folder")
	publishEvery := fs.Int("publish-every", 1000, "")
	publishInterval := fs.Duration("publish-interval", time.Second, "")
	noSync := fs.Bool("nosync", false, "")
	influxURL := fs.String("influx-url", "", "")
	fs.Parse(args)
	if path := os.Getenv("LOADGEN_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	tlsCfg, err := controller.ServerTLS(filepath.Join(*dir, "cert.pem"), filepath.Join(*dir, "key.pem"))
	if err != nil {
		return err
	}
	cfg := controller.Config{
		Listen: "127.0.0.1:0", TLS: tlsCfg, StorePath: *storePath, StoreNoSync: *noSync,
		Tokens: []controller.Token{
			controller.NewToken("loadgen-admin", adminToken, controller.ScopeAdmin),
			controller.NewToken("loadgen-fleet", executorToken, controller.ScopeExecutor),
		},
		ModelDirs: []string{*modelDir}, PublishEvery: *publishEvery, PublishInterval: *publishInterval,
		ReportRate: 1e6, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if *influxURL != "" {
		cfg.Influx = controller.InfluxConfig{URL: *influxURL, Bucket: "dyno/autogen", ReportPoints: true}
	}
	controller.TuneRuntime()
	s, err := controller.New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bare := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)), grpc.MaxRecvMsgSize(4<<20))
	api.RegisterExecutorServer(bare, bareServer{})
	go bare.Serve(lis)
	json.NewEncoder(os.Stdout).Encode(ready{Addr: s.Addr(), BareAddr: lis.Addr().String()})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	bare.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Stop(sctx)
}

// bareServer acknowledges every batch as soon as it is received: the same
// stream and messages as the controller's Report, without the controller.
type bareServer struct {
	api.UnimplementedExecutorServer
}

func (bareServer) Report(s api.Executor_ReportServer) error {
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&api.ReportAck{BatchId: b.BatchId, Accepted: uint32(len(b.Reports))}); err != nil {
			return err
		}
	}
}

// child is a running `loadgen serve`.
type child struct {
	cmd   *exec.Cmd
	ready ready
	tls   *tls.Config
}

func startChild(dir, store string, extra ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "-dir", dir, "-store", store}, extra...)
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd}
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("child did not start: %w", err)
	}
	if err := json.Unmarshal(line, &c.ready); err != nil {
		return nil, err
	}
	if c.tls, err = api.ClientTLS(filepath.Join(dir, "cert.pem"), ""); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	return c.cmd.Wait()
}

func (c *child) dial(addr, token string) (*grpc.ClientConn, error) {
	return api.Dial(addr, api.DialOptions{Token: token, TLS: c.tls,
		Extra: []grpc.DialOption{grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(16 << 20)}})
}

// ---------------------------------------------------------------- parent

type options struct {
	streams, batch, window, conns int
	rounds                        int
	duration                      time.Duration
	watchers, versions            int
	traces                        int
	modelDir                      string
	keep, verbose                 bool
	nosync                        bool
}

func measure(mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	var o options
	fs.IntVar(&o.streams, "streams", 64, "concurrent executor report streams")
	fs.IntVar(&o.batch, "batch", 100, "reports per batch")
	fs.IntVar(&o.window, "window", 8, "batches in flight per stream")
	fs.IntVar(&o.conns, "conns", 16, "connections the streams and watchers share")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each ingest measurement runs in all")
	fs.IntVar(&o.rounds, "rounds", 5, "alternating rounds of the bare and the controller measurement")
	fs.IntVar(&o.watchers, "watchers", 1000, "policy watchers")
	fs.IntVar(&o.versions, "versions", 20, "versions published to the watchers")
	fs.IntVar(&o.traces, "traces", 1_000_000, "traces to store for the memory measurement")
	fs.StringVar(&o.modelDir, "model-dir", "examples/mobilenetv2", "model folder")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder")
	fs.BoolVar(&o.verbose, "v", false, "print more detail")
	fs.BoolVar(&o.nosync, "nosync", false, "skip fsync in the store (not durable; for comparison only)")
	fs.Parse(args)
	if path := os.Getenv("LOADGEN_CPUPROFILE_PARENT"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "dyno-loadgen-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	certPEM, keyPEM, err := controller.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	fmt.Printf("loadgen: %d CPUs, GOMAXPROCS %d, %s; controller in a child process, TLS on loopback, store in %s (fsync %v)\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), dir, !o.nosync)
	fmt.Printf("this CPU now: SHA-256 at %.0f MB/s on one core (a yardstick: a shared machine's speed drifts)\n", cpuYardstick())
	run := func(name string, fn func(*options, string) error) error {
		fmt.Printf("\n== %s (load average before: %s)\n", name, loadAverage())
		err := fn(&o, dir)
		fmt.Printf("(load average after: %s)\n", loadAverage())
		return err
	}
	switch mode {
	case "ingest":
		return run("ingest", ingest)
	case "watchers":
		return run("watchers", watchers)
	case "memory":
		return run("memory", memory)
	}
	for _, m := range []struct {
		name string
		fn   func(*options, string) error
	}{{"ingest", ingest}, {"watchers", watchers}, {"memory", memory}} {
		if err := run(m.name, m.fn); err != nil {
			return err
		}
	}
	return nil
}

// classes are the device classes the simulated fleet spreads over.
var classes = []string{"phone-low", "phone-high", "jetson-xavier-nx"}

// executor is one simulated executor: its id, key and generator.
type executor struct {
	id, key string
	gen     *fleet.Generator
}

// registerFleet registers n executors over the classes.
func registerFleet(ctx context.Context, o *options, conns []*grpc.ClientConn, n int, prefix string) ([]*executor, error) {
	cms := map[string]*costmodel.Model{}
	for _, c := range classes {
		cm, err := fleet.LoadModel(o.modelDir, c, "cloud-t4")
		if err != nil {
			return nil, err
		}
		cms[c] = cm
	}
	out := make([]*executor, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range out {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			class := classes[i%len(classes)]
			id := fmt.Sprintf("%s-%04d", prefix, i)
			r, err := api.NewExecutorClient(conns[i%len(conns)]).Register(ctx, &api.RegisterRequest{ExecutorId: id, Model: "mobilenetv2", DeviceClass: class})
			if err != nil {
				errs <- fmt.Errorf("register %s: %w", id, err)
				return
			}
			out[i] = &executor{id: id, key: r.Key, gen: fleet.NewGenerator(cms[class], r.Key, uint64(i+1))}
		}(i)
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

func dialMany(c *child, addr, token string, n int) ([]*grpc.ClientConn, error) {
	var out []*grpc.ClientConn
	for i := 0; i < n; i++ {
		cc, err := c.dial(addr, token)
		if err != nil {
			return nil, err
		}
		out = append(out, cc)
	}
	return out, nil
}

func closeAll(cs []*grpc.ClientConn) {
	for _, c := range cs {
		c.Close()
	}
}

// drive runs one report stream per executor against addr for d, with
// templates of batch reports re-numbered before each send, and returns the
// reports acknowledged per second.
func drive(c *child, o *options, addr string, execs []*executor, d time.Duration, total int) (float64, int, error) {
	conns, err := dialMany(c, addr, executorToken, o.conns)
	if err != nil {
		return 0, 0, err
	}
	defer closeAll(conns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked atomic.Int64
	type state struct {
		st   *fleet.Stream
		tmpl [][]*api.Report
		seq  uint64
	}
	states := make([]*state, len(execs))
	for i, e := range execs {
		rs, err := api.NewExecutorClient(conns[i%len(conns)]).Report(ctx)
		if err != nil {
			return 0, 0, err
		}
		s := &state{st: fleet.NewStream(rs, e.id, o.window, nil, func(n int) { acked.Add(int64(n)) })}
		// Distinct templates, one per batch in flight, so that a batch
		// is never re-numbered while gRPC may still be encoding it.
		for j := 0; j < o.window+1; j++ {
			s.tmpl = append(s.tmpl, e.gen.Batch(1, o.batch))
		}
		states[i] = s
	}
	// Continue each executor's numbering across measurements.
	for i, e := range execs {
		states[i].seq = seqs[e.id]
	}
	var wg sync.WaitGroup
	var stopFlag atomic.Bool
	var sent atomic.Int64
	errc := make(chan error, len(states))
	startAt := time.Now()
	for i := range states {
		wg.Add(1)
		go func(s *state) {
			defer wg.Done()
			for k := 0; !stopFlag.Load(); k++ {
				if total > 0 && sent.Add(int64(o.batch)) > int64(total) {
					break
				}
				b := s.tmpl[k%len(s.tmpl)]
				for _, r := range b {
					s.seq++
					r.Seq = s.seq
				}
				if err := s.st.Send(b); err != nil {
					errc <- err
					return
				}
			}
			if err := s.st.Close(); err != nil {
				errc <- err
			}
		}(states[i])
	}
	if total == 0 {
		time.Sleep(d)
		stopFlag.Store(true)
	}
	wg.Wait()
	elapsed := time.Since(startAt)
	for i, e := range execs {
		seqs[e.id] = states[i].seq
	}
	close(errc)
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	n := acked.Load()
	return float64(n) / elapsed.Seconds(), int(n), nil
}

// seqs is the last report number of each executor, across measurements.
var seqs = map[string]uint64{}

func ingest(o *options, dir string) error {
	extra := []string{"-model-dir", o.modelDir}
	if o.nosync {
		extra = append(extra, "-nosync")
	}
	c, err := startChild(dir, filepath.Join(dir, "ingest.db"), extra...)
	if err != nil {
		return err
	}
	defer c.stop()
	conns, err := dialMany(c, c.ready.Addr, executorToken, 4)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	execs, err := registerFleet(ctx, o, conns, o.streams, "ingest")
	if err != nil {
		return err
	}
	msg := &api.ReportBatch{BatchId: 1, ExecutorId: execs[0].id, Reports: execs[0].gen.Batch(1, o.batch)}
	fmt.Printf("%d executor streams over %d connections, %d reports a batch (%d bytes a batch, %d a report), %d batches in flight a stream, %s each\n",
		o.streams, o.conns, o.batch, protoSize(msg), protoSize(msg)/o.batch, o.window, o.duration)
	// Warm both up, then alternate rounds of each, so that whatever else
	// the machine does weighs on both alike.
	if _, _, err := drive(c, o, c.ready.BareAddr, execs, time.Second, 0); err != nil {
		return fmt.Errorf("bare warm-up: %w", err)
	}
	if _, _, err := drive(c, o, c.ready.Addr, execs, time.Second, 0); err != nil {
		return fmt.Errorf("controller warm-up: %w", err)
	}
	var bareN, ctlN int
	var bareT, ctlT float64
	round := o.duration / time.Duration(o.rounds)
	for r := 0; r < o.rounds; r++ {
		rate, n, err := drive(c, o, c.ready.BareAddr, execs, round, 0)
		if err != nil {
			return fmt.Errorf("bare: %w", err)
		}
		bareN, bareT = bareN+n, bareT+float64(n)/rate
		rate2, n2, err := drive(c, o, c.ready.Addr, execs, round, 0)
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		ctlN, ctlT = ctlN+n2, ctlT+float64(n2)/rate2
		if o.verbose {
			fmt.Printf("  round %d: bare %.0f/s, controller %.0f/s (load %s)\n", r+1, rate, rate2, loadAverage())
		}
	}
	bare, ctl := float64(bareN)/bareT, float64(ctlN)/ctlT
	fmt.Printf("bare gRPC stream (ack on receipt):            %9.0f reports/s (%d acked in %.1fs)\n", bare, bareN, bareT)
	fmt.Printf("controller (validated, committed, fsynced):   %9.0f reports/s (%d acked in %.1fs)\n", ctl, ctlN, ctlT)
	fmt.Printf("ratio controller/bare: %.2f\n", ctl/bare)
	adm := api.NewAdminClient(mustDial(c, c.ready.Addr, adminToken))
	st, err := adm.Status(ctx, &api.StatusRequest{})
	if err != nil {
		return err
	}
	fmt.Printf("controller: %d traces, %d commits (%.0f reports a commit), %d policy versions, store %.1f MiB, peak RSS %.0f MiB\n",
		st.Traces, st.Commits, float64(st.ReportsAccepted)/float64(max(st.Commits, 1)), st.PoliciesPublished, float64(st.StoreBytes)/(1<<20), float64(st.PeakRssBytes)/(1<<20))
	// Learning is asynchronous to the acks: say how far behind it was.
	keys, err := adm.ListKeys(ctx, &api.ListKeysRequest{})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	startLearn := time.Now()
	for {
		keys, err = adm.ListKeys(ctx, &api.ListKeysRequest{})
		if err != nil {
			return err
		}
		pending := uint64(0)
		for _, k := range keys.Keys {
			pending += k.PendingReports
		}
		if pending == 0 || time.Now().After(deadline) {
			fmt.Printf("learning caught up %.1fs after the last ack (pending %d)\n", time.Since(startLearn).Seconds(), pending)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// cpuYardstick hashes for a fixed amount of work and returns MB/s.
func cpuYardstick() float64 {
	buf := make([]byte, 1<<20)
	start := time.Now()
	for i := 0; i < 256; i++ {
		sha256.Sum256(buf)
	}
	return 256 / time.Since(start).Seconds()
}

// cpuTime is the user and system CPU time a process has used so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	const ticks = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / ticks
}

// loadAverage is the 1-minute load average: other work on the machine
// skews every figure here.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func mustDial(c *child, addr, token string) *grpc.ClientConn {
	cc, err := c.dial(addr, token)
	if err != nil {
		panic(err)
	}
	return cc
}

func protoSize(m proto.Message) int { return proto.Size(m) }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(p*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func watchers(o *options, dir string) error {
	c, err := startChild(dir, filepath.Join(dir, "watch.db"), "-model-dir", o.modelDir, "-publish-interval", "1h", "-publish-every", "1000000000")
	if err != nil {
		return err
	}
	defer c.stop()
	conns, err := dialMany(c, c.ready.Addr, executorToken, o.conns)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// One key, so that every version goes to every watcher.
	saved := classes
	classes = classes[:1]
	execs, err := registerFleet(ctx, o, conns, o.watchers, "watch")
	classes = saved
	if err != nil {
		return err
	}
	key := execs[0].key
	ws := make([]*fleet.Watcher, len(execs))
	for i, e := range execs {
		w, err := fleet.Watch(ctx, api.NewExecutorClient(conns[i%len(conns)]), e.id, e.key, 0)
		if err != nil {
			return err
		}
		ws[i] = w
	}
	for _, w := range ws {
		if err := w.WaitVersion(ctx, 1); err != nil {
			return err
		}
	}
	adm := api.NewAdminClient(mustDial(c, c.ready.Addr, adminToken))
	p, err := adm.GetPolicy(ctx, &api.GetPolicyRequest{Key: key})
	if err != nil {
		return err
	}
	fmt.Printf("%d watchers of %s over %d connections hold version %d (%d bytes of bandit state)\n", len(ws), key, o.conns, p.Version, len(p.BanditState))
	var last uint64
	cpuServer0, cpuClient0 := cpuTime(c.cmd.Process.Pid), cpuTime(os.Getpid())
	t0 := time.Now()
	for v := 0; v < o.versions; v++ {
		var ch *api.AdminChange
		if v%2 == 0 {
			ch, err = adm.Pin(ctx, &api.PinRequest{Key: key, Arm: &api.Arm{Split: 0, Bits: 32}})
		} else {
			ch, err = adm.Unpin(ctx, &api.UnpinRequest{Key: key})
		}
		if err != nil {
			return err
		}
		last = ch.Version
		for _, w := range ws {
			if err := w.WaitVersion(ctx, last); err != nil {
				return err
			}
		}
	}
	wall := time.Since(t0)
	cpuServer, cpuClient := cpuTime(c.cmd.Process.Pid)-cpuServer0, cpuTime(os.Getpid())-cpuClient0
	var delays []time.Duration
	byVersion := map[uint64][]time.Duration{}
	missed := 0
	for _, w := range ws {
		_, rs := w.Current()
		got := 0
		for _, r := range rs {
			if r.Version > 1 {
				delays = append(delays, r.Delay)
				byVersion[r.Version] = append(byVersion[r.Version], r.Delay)
				got++
			}
		}
		missed += o.versions - got
		w.Close()
	}
	if o.verbose {
		for v := uint64(2); v <= last; v++ {
			d := byVersion[v]
			fmt.Printf("  version %d: first %s, median %s, last %s\n", v, percentile(d, 0).Round(100*time.Microsecond),
				percentile(d, 0.5).Round(100*time.Microsecond), percentile(d, 1).Round(100*time.Microsecond))
		}
	}
	fmt.Printf("%d versions (pin/unpin, each committed before it is sent) to %d watchers: %d deliveries, %d skipped\n", o.versions, len(ws), len(delays), missed)
	per := func(d time.Duration) time.Duration {
		return (d / time.Duration(o.versions)).Round(100 * time.Microsecond)
	}
	fmt.Printf("per version: %s wall; CPU %s in the controller, %s in the %d watchers (this process)\n", per(wall), per(cpuServer), per(cpuClient), len(ws))
	fmt.Printf("publication to watcher: p50 %s, p99 %s, max %s\n", percentile(delays, 0.5).Round(10*time.Microsecond),
		percentile(delays, 0.99).Round(10*time.Microsecond), percentile(delays, 1).Round(10*time.Microsecond))
	return nil
}

func memory(o *options, dir string) error {
	store := filepath.Join(dir, "memory.db")
	c, err := startChild(dir, store, "-model-dir", o.modelDir)
	if err != nil {
		return err
	}
	conns, err := dialMany(c, c.ready.Addr, executorToken, 4)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	execs, err := registerFleet(ctx, o, conns, o.streams, "mem")
	closeAll(conns)
	if err != nil {
		return err
	}
	start := time.Now()
	rate, n, err := drive(c, o, c.ready.Addr, execs, 0, o.traces)
	if err != nil {
		return err
	}
	adm := api.NewAdminClient(mustDial(c, c.ready.Addr, adminToken))
	// Let the learners finish, so that the figure includes them.
	for {
		keys, err := adm.ListKeys(ctx, &api.ListKeysRequest{})
		if err != nil {
			return err
		}
		pending := uint64(0)
		for _, k := range keys.Keys {
			pending += k.PendingReports
		}
		if pending == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	st, err := adm.Status(ctx, &api.StatusRequest{})
	if err != nil {
		return err
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	fmt.Printf("ingested %d reports in %s (%.0f/s); store %.0f MiB with %d traces\n", n, time.Since(start).Round(time.Second), rate, float64(st.StoreBytes)/(1<<20), st.Traces)
	fmt.Printf("controller after ingesting: Go heap %.0f MiB (runtime %.0f MiB); RSS %.0f MiB = %.0f MiB anonymous + %.0f MiB file-backed (the store's memory map); peak RSS %.0f MiB\n",
		mib(st.HeapBytes), mib(st.GoSysBytes), mib(st.RssBytes), mib(st.AnonRssBytes), mib(st.FileRssBytes), mib(st.PeakRssBytes))
	if err := c.stop(); err != nil {
		return err
	}
	c, err = startChild(dir, store, "-model-dir", o.modelDir)
	if err != nil {
		return err
	}
	defer c.stop()
	adm = api.NewAdminClient(mustDial(c, c.ready.Addr, adminToken))
	st, err = adm.Status(ctx, &api.StatusRequest{})
	if err != nil {
		return err
	}
	fmt.Printf("controller restarted on the same store (%d traces): Go heap %.0f MiB (runtime %.0f MiB); RSS %.0f MiB = %.0f MiB anonymous + %.0f MiB file-backed; peak RSS %.0f MiB\n",
		st.Traces, mib(st.HeapBytes), mib(st.GoSysBytes), mib(st.RssBytes), mib(st.AnonRssBytes), mib(st.FileRssBytes), mib(st.PeakRssBytes))
	return nil
}
