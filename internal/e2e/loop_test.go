package e2e_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/cloud"
	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/executor/link"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/internal/bwtrace"
	"github.com/dynoml/dyno/model/mnist"
)

const (
	executorSecret = "executor-secret-0123456789abcdef"
	adminSecret    = "admin-secret-0123456789abcdef01"
	cloudSecret    = "cloud-secret-0123456789abcdef012"
)

// images serves MNIST test images in order, with their labels.
type images struct {
	set *mnist.Set
	i   int
	// gate, when set, is called before input gateAt is given out.
	gate   func()
	gateAt int
}

func (s *images) Next() (device.Input, bool) {
	if s.i >= s.set.Count() {
		return device.Input{}, false
	}
	if s.gate != nil && s.i == s.gateAt {
		s.gate()
	}
	in := device.Input{X: s.set.Image(s.i), Label: int(s.set.Labels[s.i])}
	s.i++
	return in, true
}

// waitLearned waits, up to ten seconds, until the agent holds a policy the
// controller published from reports (version 2 or later); the test's
// assertions then say whether it came.
func waitLearned(ctx context.Context, a *device.Agent) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for a.PolicyVersion() < 2 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// startController serves the model folder on addr with the store at path.
func startController(t *testing.T, addr, path, dir string) *controller.Server {
	t.Helper()
	ctl, err := controller.New(controller.Config{
		Listen: addr, Insecure: true, StorePath: path,
		Tokens: []controller.Token{controller.NewToken("ops", adminSecret, controller.ScopeAdmin),
			controller.NewToken("fleet", executorSecret, controller.ScopeExecutor)},
		ModelDirs: []string{dir}, CloudClass: "amd64-2cpu-cloud", PublishEvery: 25, PublishInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	return ctl
}

// freeAddr returns a loopback address no one listens on, for a server that
// must come back on the same one.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// startCloud serves the chain as a cloud executor on loopback and returns a
// client of it.
func startCloud(t *testing.T, chain *ort.Chain) api.CloudClient {
	c, _ := startCloudStop(t, chain)
	return c
}

// startCloudStop is startCloud that also returns a function stopping the
// server.
func startCloudStop(t *testing.T, chain *ort.Chain) (api.CloudClient, func()) {
	t.Helper()
	srv, err := cloud.NewServer([]*ort.Chain{chain}, 1)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := cloud.NewGRPCServer(srv, cloudSecret)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := api.Dial(lis.Addr().String(), api.DialOptions{Token: cloudSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return api.NewCloudClient(conn), gs.Stop
}

// status asks the controller at addr for its status.
func status(t *testing.T, ctx context.Context, addr string) *api.StatusResponse {
	t.Helper()
	admin, err := api.Dial(addr, api.DialOptions{Token: adminSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	st, err := api.NewAdminClient(admin).Status(ctx, &api.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fixture is what both tests run on: the MNIST classifier's sessions,
// cost model and test set, a cloud executor serving it, a real 3G trace
// and a client of the controller at addr.
type fixture struct {
	dir     string
	chain   *ort.Chain
	cm      *costmodel.Model
	test    *mnist.Set
	trace   *bwtrace.Trace
	cloud   api.CloudClient
	control api.ExecutorClient
}

func newFixture(t *testing.T, addr string) *fixture {
	t.Helper()
	f := &fixture{dir: orttest.Model(t, "mnist")}
	var err error
	if f.chain, err = ort.OpenChain(f.dir, ort.Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.chain.Close() })
	f.cloud = startCloud(t, f.chain)
	conn, err := api.Dial(addr, api.DialOptions{Token: executorSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.control = api.NewExecutorClient(conn)
	tracePath := filepath.Join(orttest.Root(t), "..", "shared", "traces", "norway-3g", "tram.jernbanetorget-ljabru-report.2010-12-09_1222CET.log")
	if f.trace, err = bwtrace.LoadTrace(tracePath); err != nil {
		t.Fatalf("the real 3G traces are in ../shared/traces: %v", err)
	}
	dataDir, err := mnist.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if f.test, err = mnist.LoadTest(dataDir); err != nil {
		t.Fatal(err)
	}
	if f.cm, err = costmodel.LoadDir(f.dir, "amd64-2cpu", "amd64-2cpu-cloud"); err != nil {
		t.Fatal(err)
	}
	return f
}

// agent registers an emulated device executor.
func (f *fixture) agent(t *testing.T, ctx context.Context, id string, slowdown, offset float64, seed uint64) *device.Agent {
	t.Helper()
	l, err := link.New(f.trace, 5, offset)
	if err != nil {
		t.Fatal(err)
	}
	est, _ := link.NewEstimator(1, 5, 0.2)
	a, err := device.New(ctx, device.Config{ExecutorID: id, DeviceClass: "amd64-2cpu", CostModel: f.cm, Chain: f.chain,
		Controller: f.control, Cloud: f.cloud, Link: l, Estimator: est, Slowdown: slowdown, Compress: true, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestWholeLoop runs two emulated devices against a controller and a cloud
// executor: every request is served, every report reaches the controller's
// trace log, and the devices pick up policies the controller published from
// their reports.
func TestWholeLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), orttest.Model(t, "mnist"))
	defer ctl.Stop(context.Background())
	f := newFixture(t, ctl.Addr())
	cm := f.cm

	// Device 1 is forty times slower than its profile says: offloading
	// pays there once dyno has learned the device stage, so the cloud half
	// of the loop is exercised by what is learned, not by chance
	// exploration. Each device waits, halfway, for a learned policy.
	const requests = 150
	slowdowns := []float64{1, 40}
	var wg sync.WaitGroup
	agents := make([]*device.Agent, 2)
	results := make([][]device.Result, 2)
	errs := make([]error, 2)
	for d := range agents {
		a := f.agent(t, ctx, []string{"phone-a", "phone-b"}[d], slowdowns[d], float64(100*d), uint64(d))
		agents[d] = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := &images{set: f.test.Head(requests), gateAt: requests / 2, gate: func() { waitLearned(ctx, a) }}
			errs[d] = a.Run(ctx, in, requests, 10*time.Second, func(r device.Result) { results[d] = append(results[d], r) })
		}()
	}
	wg.Wait()
	offloadedAll := 0
	for d, a := range agents {
		if errs[d] != nil {
			t.Fatalf("device %d: %v", d, errs[d])
		}
		if len(results[d]) != requests || a.Dropped() != 0 {
			t.Fatalf("device %d: %d results, %d reports dropped", d, len(results[d]), a.Dropped())
		}
		correct, offloaded, versions := 0, 0, map[uint64]bool{}
		for _, r := range results[d] {
			if r.Correct {
				correct++
			}
			if r.Arm.Split < cm.Manifest.K() {
				offloaded++
				if r.Stages.Bytes <= 0 || r.Stages.NetworkMs <= 0 || r.Stages.CloudMs <= 0 {
					t.Errorf("device %d: an offloaded request without link or cloud times: %+v", d, r.Stages)
				}
			}
			versions[r.Version] = true
		}
		offloadedAll += offloaded
		t.Logf("device %d (slowdown %g): %d/%d correct, %d offloaded, %d policy versions used, key %s", d, slowdowns[d], correct, requests, offloaded, len(versions), a.Key())
		if correct < requests*9/10 {
			t.Errorf("device %d: %d of %d correct: the split pipeline mangles the tensors", d, correct, requests)
		}
		if len(versions) < 2 {
			t.Errorf("device %d decided with one policy version only: the watcher never delivered a learned one", d)
		}
	}
	if offloadedAll == 0 {
		t.Error("no request was offloaded: the cloud half of the loop went untested")
	}
	// Every report is in the controller's log.
	if st := status(t, ctx, ctl.Addr()); st.GetTraces() != 2*requests {
		t.Errorf("controller holds %d traces, want %d", st.GetTraces(), 2*requests)
	}
}

// TestControllerOutage stops the controller while a device serves requests
// and starts it again on the same store and address: the device keeps
// deciding with the policy it holds, buffers its reports, and after the
// restart every report is in the log once.
func TestControllerOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	addr := freeAddr(t)
	store := filepath.Join(t.TempDir(), "dyno.db")
	dir := orttest.Model(t, "mnist")
	ctl := startController(t, addr, store, dir)
	f := newFixture(t, addr)
	a := f.agent(t, ctx, "phone-a", 4, 0, 1)

	const requests = 300
	down, up := make(chan struct{}), make(chan struct{})
	var during int // requests served while the controller was down
	served := 0
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, &device.MNIST{Set: f.test.Head(requests)}, requests, 30*time.Second, func(device.Result) {
			served++
			select {
			case <-down:
				select {
				case <-up:
				default:
					during++
				}
			default:
			}
			if served == 50 {
				down <- struct{}{} // hand over to the test, which stops the controller
				<-down
			}
		})
	}()
	<-down
	if err := ctl.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	close(down)
	time.Sleep(time.Second)
	ctl = startController(t, addr, store, dir)
	defer ctl.Stop(context.Background())
	close(up)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if served != requests || a.Dropped() != 0 {
		t.Fatalf("served %d of %d, dropped %d reports", served, requests, a.Dropped())
	}
	if during == 0 {
		t.Fatal("no request was served while the controller was down: the test proves nothing")
	}
	st := status(t, ctx, addr)
	t.Logf("served %d requests while the controller was down; after the restart: %d traces, %d duplicates dropped", during, st.GetTraces(), st.GetReportsDuplicate())
	if st.GetTraces() != requests {
		t.Errorf("controller holds %d traces, want %d", st.GetTraces(), requests)
	}
}

// TestRealNetwork runs a device executor without emulation: the link is
// loopback, its round trip measured by pings, and every offloaded request
// splits the call's time into transfer and round trip.
func TestRealNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), orttest.Model(t, "mnist"))
	defer ctl.Stop(context.Background())
	f := newFixture(t, ctl.Addr())
	est, _ := link.NewEstimator(100, 1, 0.2)
	a, err := device.New(ctx, device.Config{ExecutorID: "real", DeviceClass: "amd64-2cpu", CostModel: f.cm, Chain: f.chain,
		Controller: f.control, Cloud: f.cloud, Estimator: est, PingEvery: 20 * time.Millisecond, Seed: 3,
		// The device is emulated forty times slower than its profile (the
		// link is real): offloading pays once dyno has learned it, so the
		// real-network path is exercised by what is learned.
		Slowdown: 40})
	if err != nil {
		t.Fatal(err)
	}
	const requests = 200
	offloaded := 0
	var rtt float64
	err = a.Run(ctx, &device.MNIST{Set: f.test.Head(requests)}, requests, 10*time.Second, func(r device.Result) {
		if r.Arm.Split < f.cm.Manifest.K() {
			offloaded++
			s := r.Stages
			if s.NetworkMs < 0 || s.RTTMs < 0 || s.CloudMs <= 0 || s.Bytes <= 0 {
				t.Errorf("offloaded request with stages %+v", s)
			}
			rtt += s.RTTMs
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, ctx, ctl.Addr()); st.GetTraces() != requests {
		t.Errorf("controller holds %d traces, want %d", st.GetTraces(), requests)
	}
	t.Logf("%d of %d requests offloaded over loopback", offloaded, requests)
	if offloaded == 0 {
		t.Error("no request offloaded over a 100 Mbit/s, 1 ms link guess: the real-network path went untested")
	} else if rtt <= 0 {
		t.Error("offloaded requests carry no round trip: the pings measured nothing")
	}
}

// TestCloudOutage pins the key to an offloading arm and stops the cloud
// executor while a device serves requests: every request is still
// answered, finished on the device, and only those that reached the cloud
// are reported.
func TestCloudOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctl := startController(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "dyno.db"), orttest.Model(t, "mnist"))
	defer ctl.Stop(context.Background())
	f := newFixture(t, ctl.Addr())
	cc, stop := startCloudStop(t, f.chain)
	f.cloud = cc
	a := f.agent(t, ctx, "phone-a", 1, 0, 1)
	admin, err := api.Dial(ctl.Addr(), api.DialOptions{Token: adminSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := api.NewAdminClient(admin).Pin(ctx, &api.PinRequest{Key: a.Key(), Arm: &api.Arm{Split: 2, Bits: 8}, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	const requests = 120
	served, fallbacks, correct := 0, 0, 0
	err = a.Run(ctx, &device.MNIST{Set: f.test.Head(requests)}, requests, 10*time.Second, func(r device.Result) {
		served++
		if r.Fallback {
			fallbacks++
		}
		if r.Correct {
			correct++
		}
		if served == 40 {
			stop()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d served, %d finished on the device, %d correct", served, fallbacks, correct)
	if served != requests || fallbacks == 0 || int64(fallbacks) != a.Fallbacks() || correct < requests*9/10 {
		t.Fatalf("served %d of %d, %d fallbacks (agent says %d), %d correct", served, requests, fallbacks, a.Fallbacks(), correct)
	}
	if st := status(t, ctx, ctl.Addr()); st.GetTraces() != uint64(requests-fallbacks) {
		t.Errorf("controller holds %d traces, want the %d requests the cloud answered", st.GetTraces(), requests-fallbacks)
	}
}

// TestDeviceWaitsForTheController starts a device executor before its
// controller: registration waits, and the device serves once it is up.
func TestDeviceWaitsForTheController(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := freeAddr(t)
	f := newFixture(t, addr)
	type result struct {
		a   *device.Agent
		err error
	}
	started := make(chan result, 1)
	l, _ := link.New(f.trace, 5, 0)
	est, _ := link.NewEstimator(1, 5, 0.2)
	go func() {
		a, err := device.New(ctx, device.Config{ExecutorID: "early", DeviceClass: "amd64-2cpu", CostModel: f.cm, Chain: f.chain,
			Controller: f.control, Cloud: f.cloud, Link: l, Estimator: est, Seed: 1})
		started <- result{a, err}
	}()
	time.Sleep(time.Second)
	select {
	case r := <-started:
		t.Fatalf("New returned with no controller up: %v", r.err)
	default:
	}
	ctl := startController(t, addr, filepath.Join(t.TempDir(), "dyno.db"), f.dir)
	defer ctl.Stop(context.Background())
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	a := r.a
	if err := a.Run(ctx, &device.MNIST{Set: f.test.Head(20)}, 20, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if st := status(t, ctx, addr); st.GetTraces() != 20 {
		t.Errorf("controller holds %d traces, want 20", st.GetTraces())
	}
}
