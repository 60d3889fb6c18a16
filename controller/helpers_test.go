package controller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/controller/internal/fleet"
	"github.com/dynoml/dyno/costmodel"
)

// Secrets of the test tokens.
const (
	adminSecret    = "admin-secret-0123456789abcdef"
	executorSecret = "executor-secret-0123456789abcdef"
	wrongSecret    = "wrong-secret-0123456789abcdef"
)

// testModel is the model every test learns: MobileNetV2 on a low-end phone.
const (
	testModelDir = "../examples/mobilenetv2"
	testModel    = "mobilenetv2"
	testClass    = "phone-low"
	testKey      = "mobilenetv2/phone-low/default"
)

// env is a controller's configuration in a temporary folder: a self-signed
// certificate, one admin and one executor token, the store file.
type env struct {
	dir             string
	cfg             controller.Config
	caPool          *x509.CertPool
	certPEM, keyPEM []byte
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, err := controller.GenerateCert([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	e := &env{dir: dir, caPool: pool, certPEM: certPEM, keyPEM: keyPEM}
	e.cfg = controller.Config{
		Listen:    "127.0.0.1:0",
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		StorePath: filepath.Join(dir, "dyno.db"),
		Tokens: []controller.Token{
			controller.NewToken("ops", adminSecret, controller.ScopeAdmin),
			controller.NewToken("fleet", executorSecret, controller.ScopeExecutor),
		},
		ModelDirs:       []string{testModelDir},
		PublishEvery:    200,
		PublishInterval: 100 * time.Millisecond,
		Logger:          testLogger(t),
	}
	return e
}

// testLogger logs to the test's output when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start runs a controller until the test ends.
func start(t testing.TB, cfg controller.Config) *controller.Server {
	t.Helper()
	s, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// dial connects with a token ("" for none) and closes at the end.
func (e *env) dial(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := api.Dial(addr, api.DialOptions{Token: token, TLS: &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS13}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// register registers an executor of the test model.
func register(t testing.TB, c api.ExecutorClient, id string) *api.RegisterResponse {
	t.Helper()
	resp, err := c.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: id, Model: testModel, DeviceClass: testClass})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	return resp
}

// testCostModel is the cost model of the test key.
func testCostModel(t testing.TB) *costmodel.Model {
	t.Helper()
	cm, err := fleet.LoadModel(testModelDir, testClass, "cloud-t4")
	if err != nil {
		t.Fatal(err)
	}
	return cm
}
