package controller_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
)

// adminCalls makes every Admin call once; streams are read to their first
// message, where a refusal shows.
var adminCalls = map[string]func(ctx context.Context, a api.AdminClient) error{
	"Status": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.Status(ctx, &api.StatusRequest{})
		return err
	},
	"ListKeys": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.ListKeys(ctx, &api.ListKeysRequest{})
		return err
	},
	"GetPolicy": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.GetPolicy(ctx, &api.GetPolicyRequest{Key: testKey})
		return err
	},
	"Pin": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 0, Bits: 32}})
		return err
	},
	"Unpin": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.Unpin(ctx, &api.UnpinRequest{Key: testKey})
		return err
	},
	"Reset": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.Reset(ctx, &api.ResetRequest{Key: testKey})
		return err
	},
	"SetObjective": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.SetObjective(ctx, &api.SetObjectiveRequest{Key: testKey, Objective: &api.Objective{Kind: "max-throughput"}})
		return err
	},
	"ExportTraces": func(ctx context.Context, a api.AdminClient) error {
		s, err := a.ExportTraces(ctx, &api.ExportTracesRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	},
	"ListExecutors": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.ListExecutors(ctx, &api.ListExecutorsRequest{})
		return err
	},
	"RemoveExecutors": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.RemoveExecutors(ctx, &api.RemoveExecutorsRequest{ExecutorIds: []string{"nobody"}})
		return err
	},
	"SetFloors": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.SetFloors(ctx, &api.SetFloorsRequest{Key: testKey, ExploreFloor: proto.Float64(0.1)})
		return err
	},
	"ListAudit": func(ctx context.Context, a api.AdminClient) error {
		_, err := a.ListAudit(ctx, &api.ListAuditRequest{})
		return err
	},
	"Backup": func(ctx context.Context, a api.AdminClient) error {
		s, err := a.Backup(ctx, &api.BackupRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	},
}

// syncBuffer is a log sink safe for concurrent use.
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

func TestEveryAdminCallIsRefusedWithoutAnAdminToken(t *testing.T) {
	e := newEnv(t)
	var logs syncBuffer
	e.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	srv := start(t, e.cfg)
	defer func() {
		out := logs.String()
		if !strings.Contains(out, "refused call") || !strings.Contains(out, "PermissionDenied") && !strings.Contains(out, "lacks the admin scope") {
			t.Errorf("refusals are not logged:\n%s", out)
		}
		for _, secret := range []string{executorSecret, wrongSecret, adminSecret} {
			if strings.Contains(out, secret) {
				t.Errorf("the log holds a secret:\n%s", out)
			}
		}
	}()
	register(t, api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret)), "ex-1")
	if got := len(adminCalls); got != len(api.Admin_ServiceDesc.Methods)+len(api.Admin_ServiceDesc.Streams) {
		t.Fatalf("the test covers %d admin calls, the service has %d", got, len(api.Admin_ServiceDesc.Methods)+len(api.Admin_ServiceDesc.Streams))
	}
	creds := []struct {
		name, token string
		code        codes.Code
	}{
		{"executor token", executorSecret, codes.PermissionDenied},
		{"no token", "", codes.Unauthenticated},
		{"wrong token", wrongSecret, codes.Unauthenticated},
	}
	for _, c := range creds {
		a := api.NewAdminClient(e.dial(t, srv.Addr(), c.token))
		for name, call := range adminCalls {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				err := call(ctxFor(t, 10*time.Second), a)
				if status.Code(err) != c.code {
					t.Fatalf("got %v, want %s", err, c.code)
				}
				if strings.Contains(err.Error(), executorSecret) || strings.Contains(err.Error(), wrongSecret) {
					t.Fatalf("the error repeats the secret: %v", err)
				}
			})
		}
	}
	// The admin token passes every one of them.
	a := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	for name, call := range adminCalls {
		err := call(ctxFor(t, 10*time.Second), a)
		if name == "Unpin" && status.Code(err) == codes.FailedPrecondition {
			continue // the key is not pinned: answered, not refused
		}
		if err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("%s with the admin token: %v", name, err)
		}
	}
}

func TestExecutorCallsNeedTheExecutorScope(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	cases := []struct {
		name, token string
		code        codes.Code
	}{
		{"admin-only token", adminSecret, codes.PermissionDenied},
		{"no token", "", codes.Unauthenticated},
		{"wrong token", wrongSecret, codes.Unauthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := api.NewExecutorClient(e.dial(t, srv.Addr(), c.token))
			ctx := ctxFor(t, 10*time.Second)
			_, err := ex.Register(ctx, &api.RegisterRequest{ExecutorId: "x", Model: testModel, DeviceClass: testClass})
			if status.Code(err) != c.code {
				t.Fatalf("Register: %v, want %s", err, c.code)
			}
			rs, err := ex.Report(ctx)
			if err == nil {
				_, err = rs.Recv()
			}
			if status.Code(err) != c.code {
				t.Fatalf("Report: %v, want %s", err, c.code)
			}
			ws, err := ex.WatchPolicies(ctx)
			if err == nil {
				_, err = ws.Recv()
			}
			if status.Code(err) != c.code {
				t.Fatalf("WatchPolicies: %v, want %s", err, c.code)
			}
		})
	}
}

func TestHealthAndReflectionNeedNoToken(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	conn := e.dial(t, srv.Addr(), "")
	ctx := ctxFor(t, 10*time.Second)
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "dyno.v1.Executor"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"dyno.v1.Executor", "dyno.v1.Admin", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, not %s", names, want)
		}
	}
}

func TestPlaintextClientIsRefused(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	conn, err := api.Dial(srv.Addr(), api.DialOptions{Token: adminSecret, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = api.NewAdminClient(conn).Status(ctxFor(t, 5*time.Second), &api.StatusRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call to a TLS listener: %v, want Unavailable", err)
	}
}

func TestTokensFile(t *testing.T) {
	cases := []struct {
		name, file string
		wantErr    string
	}{
		{"plain and hashed", "# ops\nops admin,executor " + adminSecret + "\nfleet executor sha256:" + strings.Repeat("ab", 32) + "\n", ""},
		{"unknown scope", "ops root " + adminSecret + "\n", "unknown scope"},
		{"short secret", "ops admin short\n", "shorter than 16"},
		{"bad digest", "ops admin sha256:zz\n", "sha256"},
		{"duplicate", "ops admin " + adminSecret + "\nops admin " + executorSecret + "\n", "duplicate"},
		{"fields", "ops admin\n", "NAME SCOPES SECRET"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts, err := controller.ReadTokens(strings.NewReader(c.file))
			if c.wantErr == "" {
				if err != nil || len(ts) != 2 {
					t.Fatalf("%v, %d tokens", err, len(ts))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), adminSecret) {
				t.Fatalf("the error repeats the secret: %v", err)
			}
		})
	}
}
