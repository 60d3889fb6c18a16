package api_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
)

// TestIsHandshakeFailure tells a certificate that does not match (fails at
// once) from a server that is not there (worth waiting for), both of which
// gRPC reports as Unavailable.
func TestIsHandshakeFailure(t *testing.T) {
	dir := t.TempDir()
	pair := func(name string) string {
		c, k, err := controller.GenerateCert([]string{"127.0.0.1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".key", k, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	served, other := pair("served.crt"), pair("other.crt")
	cert, err := tls.LoadX509KeyPair(served, served+".key")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	defer gs.Stop()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()

	call := func(addr, ca string) error {
		cfg, err := api.ClientTLS(ca, "")
		if err != nil {
			t.Fatal(err)
		}
		cc, err := api.Dial(addr, api.DialOptions{TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	for _, tc := range []struct {
		name      string
		err       error
		handshake bool
	}{
		{"trusted", call(lis.Addr().String(), served), false},
		{"another certificate", call(lis.Addr().String(), other), true},
		{"nothing listening", call(down, served), false},
		{"not a status", errors.New("authentication handshake failed"), false},
	} {
		if got := api.IsHandshakeFailure(tc.err); got != tc.handshake {
			t.Errorf("%s: IsHandshakeFailure(%v) = %v, want %v", tc.name, tc.err, got, tc.handshake)
		}
	}
}
