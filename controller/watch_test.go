package controller_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller/internal/fleet"
)

// TestWatchAckNack checks the xDS-like exchange: an ACK records the version
// the executor holds, a NACK records why it kept the older one, a stale
// nonce is ignored, and a resubscription with the latest version sends
// nothing new.
func TestWatchAckNack(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	register(t, ex, "ex-1")
	ctx := ctxFor(t, time.Minute)
	s, err := ex.WatchPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&api.PolicyRequest{ExecutorId: "ex-1", Key: testKey}); err != nil {
		t.Fatal(err)
	}
	u1, err := s.Recv()
	if err != nil || u1.Version != 1 || u1.Nonce == "" || u1.Policy.GetVersion() != 1 || len(u1.Policy.BanditState) == 0 {
		t.Fatalf("first update %v %v", u1, err)
	}
	s.Send(&api.PolicyRequest{ExecutorId: "ex-1", Key: testKey, VersionInfo: 1, ResponseNonce: u1.Nonce})
	executor := func() *api.ExecutorInfo {
		t.Helper()
		r, err := adm.ListExecutors(ctx, &api.ListExecutorsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Executors[0]
	}
	waitFor := func(what string, ok func(*api.ExecutorInfo) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(executor()); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited for %s: %v", what, executor())
			}
		}
	}
	waitFor("the ACK of version 1", func(x *api.ExecutorInfo) bool { return x.AckedVersion == 1 && x.Connected })

	ch, err := adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: 1, Bits: 8}})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := s.Recv()
	if err != nil || u2.Version != ch.Version || u2.Policy.Pin == nil {
		t.Fatalf("pinned update %v %v", u2, err)
	}
	// A stale nonce is ignored; the NACK of the current one is recorded.
	s.Send(&api.PolicyRequest{ExecutorId: "ex-1", Key: testKey, VersionInfo: 99, ResponseNonce: u1.Nonce})
	s.Send(&api.PolicyRequest{ExecutorId: "ex-1", Key: testKey, VersionInfo: 1, ResponseNonce: u2.Nonce, ErrorDetail: "cannot restore: unknown kind"})
	waitFor("the NACK", func(x *api.ExecutorInfo) bool { return x.LastNack != "" })
	if x := executor(); x.AckedVersion != 1 {
		t.Fatalf("a stale nonce moved the acked version: %v", x)
	}
	s.CloseSend()

	// Resubscribing with the latest version sends nothing until the next.
	s2, err := ex.WatchPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2.Send(&api.PolicyRequest{ExecutorId: "ex-1", Key: testKey, VersionInfo: ch.Version})
	un, err := adm.Unpin(ctx, &api.UnpinRequest{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	u3, err := s2.Recv()
	if err != nil || u3.Version != un.Version {
		t.Fatalf("after resubscribing at %d: %v %v, want version %d", ch.Version, u3, err, un.Version)
	}
	s2.CloseSend()

	// Unknown keys and executors are refused.
	s3, _ := ex.WatchPolicies(ctx)
	s3.Send(&api.PolicyRequest{ExecutorId: "nobody", Key: testKey})
	if _, err := s3.Recv(); err == nil {
		t.Fatal("an unregistered executor watched")
	}
}

// TestSlowWatcherNeverBlocksTheOthers holds one watcher that never reads
// while versions are published: the others get every version, and the
// slow one, when it reads, gets the latest.
func TestSlowWatcherNeverBlocksTheOthers(t *testing.T) {
	e := newEnv(t)
	srv := start(t, e.cfg)
	ex := api.NewExecutorClient(e.dial(t, srv.Addr(), executorSecret))
	adm := api.NewAdminClient(e.dial(t, srv.Addr(), adminSecret))
	ctx := ctxFor(t, time.Minute)
	for _, id := range []string{"fast-1", "fast-2", "slow"} {
		register(t, ex, id)
	}
	// The slow watcher has its own connection, so that its unread data
	// fills its own flow-control windows.
	slowConn, err := api.Dial(srv.Addr(), api.DialOptions{Token: executorSecret, TLS: &tls.Config{RootCAs: e.caPool, MinVersion: tls.VersionTLS13},
		Extra: []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)}})
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	slow, err := api.NewExecutorClient(slowConn).WatchPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow.Send(&api.PolicyRequest{ExecutorId: "slow", Key: testKey})
	var fast []*fleet.Watcher
	for _, id := range []string{"fast-1", "fast-2"} {
		w, err := fleet.Watch(ctx, ex, id, testKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		fast = append(fast, w)
	}
	const versions = 300
	var last uint64
	for i := 0; i < versions; i++ {
		var ch *api.AdminChange
		if i%2 == 0 {
			ch, err = adm.Pin(ctx, &api.PinRequest{Key: testKey, Arm: &api.Arm{Split: uint32(i % 5), Bits: 8}})
		} else {
			ch, err = adm.Unpin(ctx, &api.UnpinRequest{Key: testKey})
		}
		if err != nil {
			t.Fatal(err)
		}
		last = ch.Version
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		for _, w := range fast {
			if err := w.WaitVersion(wctx, last); err != nil {
				t.Fatalf("a fast watcher is held up: %v", err)
			}
		}
		cancel()
	}
	for _, w := range fast {
		if _, rs := w.Current(); len(rs) != versions+1 {
			t.Fatalf("a fast watcher got %d versions, want %d", len(rs), versions+1)
		}
	}
	// The slow watcher now reads: it ends at the latest, having skipped.
	var got []uint64
	for {
		u, err := slow.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u.Version)
		slow.Send(&api.PolicyRequest{ExecutorId: "slow", Key: testKey, VersionInfo: u.Version, ResponseNonce: u.Nonce})
		if u.Version == last {
			break
		}
	}
	if len(got) > versions {
		t.Fatalf("the slow watcher got every version (%d): nothing was skipped", len(got))
	}
	t.Logf("the slow watcher received %d of %d versions, ending at the latest", len(got), versions+1)
}
