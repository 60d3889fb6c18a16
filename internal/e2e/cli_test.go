package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/executor/cli"
	"github.com/dynoml/dyno/executor/ort/orttest"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExecutorCommands runs `dyno-executor cloud` and `dyno-executor device`
// as an operator would, over TLS with token files, against a TLS controller:
// the device serves its requests, says they are emulated, and the command
// refuses a wrong cloud token with a clear error.
func TestExecutorCommands(t *testing.T) {
	dir := orttest.Model(t, "mnist")
	root := orttest.Root(t)
	work := t.TempDir()
	certPEM, keyPEM, err := controller.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"tls.crt": string(certPEM), "tls.key": string(keyPEM),
		"executor.token": executorSecret + "\n", "cloud.token": cloudSecret + "\n", "wrong.token": "not-the-cloud-secret-0123456789\n",
		"app.token": deviceSecret + "\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := controller.New(controller.Config{
		Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, StorePath: filepath.Join(work, "dyno.db"),
		Tokens:    []controller.Token{controller.NewToken("fleet", executorSecret, controller.ScopeExecutor)},
		ModelDirs: []string{dir}, CloudClass: "amd64-2cpu-cloud", PublishEvery: 20, PublishInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	defer ctl.Stop(context.Background())

	cloudAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var cloudOut syncBuffer
	cloudDone := make(chan int, 1)
	go func() {
		cloudDone <- cli.Main(ctx, []string{"cloud", "--model", dir, "--listen", cloudAddr, "--token-file", filepath.Join(work, "cloud.token"),
			"--tls-cert", filepath.Join(work, "tls.crt"), "--tls-key", filepath.Join(work, "tls.key")}, &cloudOut, &cloudOut)
	}()
	defer func() {
		cancel()
		if code := <-cloudDone; code != 0 {
			t.Errorf("cloud executor exited %d: %s", code, cloudOut.String())
		}
	}()
	for i := 0; i < 100 && !strings.Contains(cloudOut.String(), "serving"); i++ {
		time.Sleep(50 * time.Millisecond)
	}

	trace := filepath.Join(root, "..", "shared", "traces", "norway-3g", "tram.jernbanetorget-ljabru-report.2010-12-09_1222CET.log")
	device := func(cloudToken string) (int, string) {
		var out bytes.Buffer
		code := cli.Main(context.Background(), []string{"device", "--id", "phone-cli", "--model", dir, "--device-class", "amd64-2cpu",
			"--controller", ctl.Addr(), "--ca", filepath.Join(work, "tls.crt"), "--token-file", filepath.Join(work, "executor.token"),
			"--cloud", cloudAddr, "--cloud-ca", filepath.Join(work, "tls.crt"), "--cloud-token-file", filepath.Join(work, cloudToken),
			"--trace", trace, "--rtt", "5", "--slowdown", "30", "--requests", "60", "--every", "20"}, &out, &out)
		return code, out.String()
	}
	code, out := device("cloud.token")
	if code != 0 {
		t.Fatalf("device exited %d:\n%s", code, out)
	}
	for _, want := range []string{"EMULATED: device 30x this host", "key mnist/amd64-2cpu/default", "20 requests; last 20", "done, 60 requests", "accuracy", "0 reports dropped"} {
		if !strings.Contains(out, want) {
			t.Errorf("device output lacks %q:\n%s", want, out)
		}
	}
	// A token the cloud refuses stops the device before its first request,
	// saying so.
	if code, out := device("wrong.token"); code == 0 || !strings.Contains(out, "the cloud executor") || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("wrong cloud token: exit %d:\n%s", code, out)
	}

	// The device serving the Device API over TLS, and an application
	// driving it with `load`.
	apiAddr := freeAddr(t)
	dctx, dcancel := context.WithCancel(context.Background())
	defer dcancel()
	var devOut syncBuffer
	devDone := make(chan int, 1)
	go func() {
		devDone <- cli.Main(dctx, []string{"device", "--id", "phone-api", "--model", dir, "--device-class", "amd64-2cpu",
			"--controller", ctl.Addr(), "--ca", filepath.Join(work, "tls.crt"), "--token-file", filepath.Join(work, "executor.token"),
			"--cloud", cloudAddr, "--cloud-ca", filepath.Join(work, "tls.crt"), "--cloud-token-file", filepath.Join(work, "cloud.token"),
			"--trace", trace, "--rtt", "5", "--slowdown", "10", "--api-listen", apiAddr, "--api-token-file", filepath.Join(work, "app.token"),
			"--api-tls-cert", filepath.Join(work, "tls.crt"), "--api-tls-key", filepath.Join(work, "tls.key"), "--depth", "4"}, &devOut, &devOut)
	}()
	for i := 0; i < 200 && !strings.Contains(devOut.String(), "serving the Device API"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	load := func(token string) (int, string) {
		var out bytes.Buffer
		code := cli.Main(context.Background(), []string{"load", "--target", apiAddr, "--ca", filepath.Join(work, "tls.crt"),
			"--token-file", filepath.Join(work, token), "--requests", "40", "--in-flight", "4", "--inputs", "mnist",
			"--model", dir, "--device-class", "amd64-2cpu"}, &out, &out)
		return code, out.String()
	}
	code, out = load("app.token")
	if code != 0 {
		t.Fatalf("load exited %d:\n%s\ndevice:\n%s", code, out, devOut.String())
	}
	for _, want := range []string{"EMULATED", "40 served", "req/s", "p50", "p99", "accuracy", "stage bound", "cost model 1/max(D,N,C)", "measured/predicted"} {
		if !strings.Contains(out, want) {
			t.Errorf("load output lacks %q:\n%s", want, out)
		}
	}
	if code, out := load("wrong.token"); code == 0 || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("load with a wrong token: exit %d:\n%s", code, out)
	}
	dcancel()
	if code := <-devDone; code != 0 || !strings.Contains(devOut.String(), "stopped; 0 reports dropped") {
		t.Errorf("device serving the API exited %d:\n%s", code, devOut.String())
	}
}
