package controller_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

const intruderSecret = "intruder-secret-0123456789abcdef"

// streamErr sends one message on a stream and returns the error that ends
// it (nil if an answer came).
func watchOnce(t testing.TB, ex api.ExecutorClient, id string) error {
	t.Helper()
	ws, err := ex.WatchPolicies(ctxFor(t, 10*time.Second))
	if err != nil {
		return err
	}
	if err := ws.Send(&api.PolicyRequest{ExecutorId: id, Key: testKey}); err != nil {
		_, err = ws.Recv()
		return err
	}
	_, err = ws.Recv()
	return err
}

func TestExecutorIDBelongsToItsFirstRegistrant(t *testing.T) {
	e := newEnv(t)
	e.cfg.Tokens = append(e.cfg.Tokens, controller.NewToken("intruder", intruderSecret, controller.ScopeExecutor))
	srv := start(t, e.cfg)
	owner := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	other := api.NewExecutorClient(e.dial(t, srv.Addr(), intruderSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	_, err := owner.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "victim", Model: testModel, DeviceClass: testClass, Labels: map[string]string{"site": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	if _, err := reportOnce(t, owner, &api.ReportBatch{ExecutorId: "victim", Reports: g.Batch(1, 5)}); err != nil {
		t.Fatal(err)
	}

	// Another token: Register, Report and Watch as the victim are refused.
	_, err = other.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "victim", Model: testModel, DeviceClass: testClass})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "belongs to another identity") {
		t.Fatalf("Register as another's executor: %v, want PermissionDenied", err)
	}
	_, err = reportOnce(t, other, &api.ReportBatch{ExecutorId: "victim", Reports: g.Batch(6, 5)})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Report as another's executor: %v, want PermissionDenied", err)
	}
	if err := watchOnce(t, other, "victim"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Watch as another's executor: %v, want PermissionDenied", err)
	}
	// The victim's record is as its owner left it.
	l, err := adm.ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Executors) != 1 || l.Executors[0].TokenName != "fleet" || l.Executors[0].Labels["site"] != "a" || l.Executors[0].Reports != 5 {
		t.Fatalf("after the intruder: %v", l.Executors)
	}
	// The owner goes on: re-registering and reporting work.
	register(t, owner, "victim")
	ack, err := reportOnce(t, owner, &api.ReportBatch{ExecutorId: "victim", Reports: g.Batch(6, 5)})
	if err != nil || ack.Accepted != 5 || ack.AckedThroughSeq != 10 {
		t.Fatalf("owner after the intruder: %v %v", ack, err)
	}
	// The intruder's own executors are its own.
	register(t, other, "intruder-1")
}

func TestSequenceNumbersMoveForwardInABoundedStep(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	register(t, ex, "ex-1")
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	if _, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(1, 10)}); err != nil {
		t.Fatal(err)
	}
	// Reports numbered near 2^64 would move the window past every
	// real report to come: the batch is refused.
	jump := g.Batch(1<<63, 100)
	_, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: jump})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "seq") || !strings.Contains(err.Error(), "at most 1048576 ahead") {
		t.Fatalf("a jump of 2^63: %v, want InvalidArgument naming seq", err)
	}
	// A step inside the bound is taken.
	ack, err := reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(10+1<<20, 1)})
	if err != nil || ack.Accepted != 1 {
		t.Fatalf("a step of 2^20: %v %v", ack, err)
	}
	// The real reports that follow are taken, not dropped as duplicates.
	ack, err = reportOnce(t, ex, &api.ReportBatch{ExecutorId: "ex-1", Reports: g.Batch(11, 10)})
	if err != nil || ack.Accepted != 10 || ack.Duplicates != 0 {
		t.Fatalf("after the refused jump: %v %v", ack, err)
	}
}

func TestTokensMayBeLimitedToExecutorIDs(t *testing.T) {
	e := newEnv(t)
	ts, err := controller.ReadTokens(strings.NewReader("cams executor " + intruderSecret + " ids=cam-*,door-[0-9] max-executors=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Tokens = append(e.cfg.Tokens, ts...)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), intruderSecret))
	register(t, ex, "cam-1")
	register(t, ex, "door-7")
	for _, id := range []string{"lab-1", "door-77"} {
		_, err := ex.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: id, Model: testModel, DeviceClass: testClass})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "cam-*, door-[0-9]") {
			t.Fatalf("%s: %v, want PermissionDenied naming the patterns", id, err)
		}
	}
	// The quota of two is used up.
	_, err = ex.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "cam-2", Model: testModel, DeviceClass: testClass})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("beyond the quota: %v, want ResourceExhausted", err)
	}
	for _, bad := range []string{"x executor " + intruderSecret + " ids=[\n", "x executor " + intruderSecret + " max-executors=0\n", "x executor " + intruderSecret + " colour=red\n"} {
		if _, err := controller.ReadTokens(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), ""))
	for _, scheme := range []string{"bearer", "BEARER", "Bearer", "bEaReR"} {
		ctx := metadata.AppendToOutgoingContext(ctxFor(t, 10*time.Second), "authorization", scheme+" "+adminSecret)
		if _, err := adm.Status(ctx, &api.StatusRequest{}); err != nil {
			t.Errorf("%s: %v", scheme, err)
		}
	}
	ctx := metadata.AppendToOutgoingContext(ctxFor(t, 10*time.Second), "authorization", "Basic "+adminSecret)
	if _, err := adm.Status(ctx, &api.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Basic: %v", err)
	}
}

func TestReflectionCanBeTurnedOff(t *testing.T) {
	e := newEnv(t)
	e.cfg.NoReflection = true
	srv := start(t, e.cfg)
	rc, err := reflectionpb.NewServerReflectionClient(e.dial(t, srv.Addr(), "")).ServerReflectionInfo(ctxFor(t, 10*time.Second))
	if err == nil {
		// Send answers io.EOF when the server has already ended the
		// stream; its status comes from Recv then, as from a sent request.
		if err = rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err == nil || errors.Is(err, io.EOF) {
			_, err = rc.Recv()
		}
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection with NoReflection: %v, want Unimplemented", err)
	}
}

// clientCert makes a client certificate for subject cn signed by ca.
func clientCert(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestMutualTLSBindsExecutorsToCertificateSubjects(t *testing.T) {
	e := newEnv(t)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dyno test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.crt")
	os.WriteFile(certFile, e.certPEM, 0o644)
	os.WriteFile(keyFile, e.keyPEM, 0o600)
	os.WriteFile(caFile, pemCert(caDER), 0o644)
	e.cfg.TLS, err = controller.ServerMutualTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := start(t, e.cfg)
	dialAs := func(cn string) api.ExecutorClient {
		cfg := &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{clientCert(t, ca, caKey, cn)}}
		conn, err := api.Dial(srv.Addr(), api.DialOptions{Token: executorSecret, TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return api.NewExecutorClient(conn)
	}
	// The same token, two certificates: the id belongs to the first subject.
	a, b := dialAs("phone-a"), dialAs("phone-b")
	register(t, a, "phone-a")
	_, err = b.Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "phone-a", Model: testModel, DeviceClass: testClass})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "CN=phone-b") {
		t.Fatalf("another subject registering phone-a: %v, want PermissionDenied", err)
	}
	g := fleet.NewGenerator(testCostModel(t), testKey, 1)
	if _, err := reportOnce(t, b, &api.ReportBatch{ExecutorId: "phone-a", Reports: g.Batch(1, 1)}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("another subject reporting as phone-a: %v", err)
	}
	if _, err := reportOnce(t, a, &api.ReportBatch{ExecutorId: "phone-a", Reports: g.Batch(1, 1)}); err != nil {
		t.Fatalf("the owner reporting: %v", err)
	}
	opsCfg := &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{clientCert(t, ca, caKey, "ops")}}
	opsConn, err := api.Dial(srv.Addr(), api.DialOptions{Token: adminSecret, TLS: opsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer opsConn.Close()
	l, err := api.NewAdminClient(opsConn).ListExecutors(ctxFor(t, 10*time.Second), &api.ListExecutorsRequest{})
	if err != nil || len(l.Executors) != 1 || l.Executors[0].Owner != "cert:CN=phone-a" {
		t.Fatalf("owner: %v %v", l, err)
	}
	// Without a client certificate the handshake fails.
	conn, err := api.Dial(srv.Addr(), api.DialOptions{Token: executorSecret, TLS: &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS13}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := api.NewExecutorClient(conn).Register(ctxFor(t, 10*time.Second), &api.RegisterRequest{ExecutorId: "x", Model: testModel, DeviceClass: testClass}); status.Code(err) != codes.Unavailable {
		t.Fatalf("no client certificate: %v, want Unavailable", err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestDrainTurnsHealthBeforeTheListenerCloses checks what probes see on
// SIGTERM (Run drains, then stops): NOT_SERVING while new connections are
// still accepted.
func TestDrainTurnsHealthBeforeTheListenerCloses(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	done := make(chan struct{})
	go func() {
		srv.Drain(time.Minute)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A new connection each time: the listener is still open.
		h, err := healthpb.NewHealthClient(e.dial(t, srv.Addr(), "")).Check(ctxFor(t, 5*time.Second), &healthpb.HealthCheckRequest{Service: "dyno.v1.Executor"})
		if err != nil {
			t.Fatalf("health while draining: %v", err)
		}
		if h.Status == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health is %v while draining", h.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Work in flight is still served while draining.
	if _, err := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret)).Status(ctxFor(t, 5*time.Second), &api.StatusRequest{}); err != nil {
		t.Fatalf("a call while draining: %v", err)
	}
	if err := srv.Stop(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	<-done // Stop ends the drain
}

// TestSIGTERMDrainsBeforeTheListenerCloses sends SIGTERM to a controller
// process and probes it the way a load balancer does, on a new connection
// each time: it answers NOT_SERVING while it drains, then stops.
func TestSIGTERMDrainsBeforeTheListenerCloses(t *testing.T) {
	e := newEnv(t)
	e.cfg.DrainDelay = 2 * time.Second
	c := e.startChild(t)
	probe := func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		conn, err := api.Dial(c.addr, api.DialOptions{TLS: &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS13}})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		h, err := healthpb.NewHealthClient(conn).Check(ctxFor(t, 2*time.Second), &healthpb.HealthCheckRequest{})
		return h.GetStatus(), err
	}
	if st, err := probe(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("before SIGTERM: %v %v", st, err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sawDraining := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := probe()
		if err != nil {
			break // the listener has closed
		}
		if st == healthpb.HealthCheckResponse_NOT_SERVING {
			sawDraining = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawDraining {
		t.Fatal("no probe saw NOT_SERVING before the listener closed")
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("the controller did not exit cleanly: %v", err)
	}
}
