package dynoctl_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/internal/dynoctl"
	"github.com/dynoml/dyno/store"
	"github.com/dynoml/dyno/tracelog"
)

const (
	adminSecret    = "admin-secret-0123456789abcdef"
	executorSecret = "executor-secret-0123456789abcdef"
	key            = "mobilenetv2/phone-low/default"
)

// controllerEnv runs a controller with TLS and writes what dynoctl needs to
// reach it: the CA file and token files.
type controllerEnv struct {
	addr, ca, adminToken, execToken, wrongToken, store string
	pool                                               *x509.CertPool
}

func startController(t *testing.T) *controllerEnv {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, err := controller.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	e := &controllerEnv{ca: filepath.Join(dir, "ca.pem"), adminToken: filepath.Join(dir, "admin.token"),
		execToken: filepath.Join(dir, "exec.token"), wrongToken: filepath.Join(dir, "wrong.token"), store: filepath.Join(dir, "dyno.db")}
	os.WriteFile(e.ca, certPEM, 0o644)
	os.WriteFile(e.adminToken, []byte(adminSecret+"\n"), 0o600)
	os.WriteFile(e.execToken, []byte(executorSecret), 0o600)
	os.WriteFile(e.wrongToken, []byte("not-a-token-0123456789"), 0o600)
	e.pool = x509.NewCertPool()
	e.pool.AppendCertsFromPEM(certPEM)
	s, err := controller.New(controller.Config{
		Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, StorePath: e.store,
		Tokens:    []controller.Token{controller.NewToken("ops", adminSecret, controller.ScopeAdmin), controller.NewToken("fleet", executorSecret, controller.ScopeExecutor)},
		ModelDirs: []string{"../../examples/mobilenetv2"}, PublishEvery: 10, PublishInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	e.addr = s.Addr()
	e.register(t)
	return e
}

// register registers an executor and sends it 20 device-only reports.
func (e *controllerEnv) register(t *testing.T) {
	conn, err := api.Dial(e.addr, api.DialOptions{Token: executorSecret, TLS: &tls.Config{RootCAs: e.pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ex := api.NewExecutorClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := ex.Register(ctx, &api.RegisterRequest{ExecutorId: "ex-1", Model: "mobilenetv2", DeviceClass: "phone-low"})
	if err != nil {
		t.Fatal(err)
	}
	deviceOnly := r.Arms[len(r.Arms)-1]
	rs, err := ex.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &api.ReportBatch{BatchId: 1, ExecutorId: "ex-1"}
	for i := 1; i <= 20; i++ {
		b.Reports = append(b.Reports, &api.Report{Seq: uint64(i), Arm: deviceOnly, Propensity: 1, Conditions: &api.Conditions{BandwidthMbps: 5, RttMs: 30},
			Stages: &api.Stages{DeviceMs: 80 + float64(i), LatencyMs: 90 + float64(i)}, StartUnixNano: time.Now().UnixNano()})
	}
	if err := rs.Send(b); err != nil {
		t.Fatal(err)
	}
	if ack, err := rs.Recv(); err != nil || ack.Accepted != 20 {
		t.Fatalf("ack %v %v", ack, err)
	}
	rs.CloseSend()
}

// run runs dynoctl against the controller with the admin token.
func (e *controllerEnv) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return e.runWith(t, e.adminToken, args...)
}

func (e *controllerEnv) runWith(t *testing.T, tokenFile string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{}, args...)
	full = append(full, "--addr", e.addr, "--ca", e.ca, "--timeout", "20s")
	if tokenFile != "" {
		full = append(full, "--token-file", tokenFile)
	}
	code := dynoctl.Main(full, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAdminCommands(t *testing.T) {
	t.Setenv("DYNO_TOKEN", "")
	e := startController(t)
	cases := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"status", []string{"status"}, 0, "20 accepted"},
		{"keys", []string{"keys"}, 0, key},
		{"executors", []string{"executors"}, 0, "ex-1"},
		{"policy show", []string{"policy", "show", key}, 0, "version"},
		{"policy show greedy", []string{"policy", "show", key, "--bandwidth", "20"}, 0, "greedy arm"},
		{"policy show posterior", []string{"policy", "show", key}, 0, "posterior transfer"},
		{"policy show unknown key", []string{"policy", "show", "no/such/key"}, 3, "NotFound"},
		{"policy show bad key", []string{"policy", "show", "nokey"}, 2, "model/device-class/objective"},
		{"pin", []string{"pin", key, "--split", "2", "--bits", "8", "--for", "1h", "--reason", "test"}, 0, "pin " + key + ": in effect from version"},
		{"pin without bits", []string{"pin", key, "--split", "2"}, 2, "--split and --bits"},
		{"pin of an arm the model lacks", []string{"pin", key, "--split", "2", "--bits", "5"}, 3, "InvalidArgument"},
		{"unpin", []string{"unpin", key}, 0, "unpin " + key},
		{"objective set", []string{"objective", "set", key, "--kind", "min-cloud-cost", "--slo", "120", "--floor", "0.6"}, 0, "objective " + key},
		{"objective set without slo", []string{"objective", "set", key, "--kind", "min-cloud-cost"}, 2, "SLO"},
		{"policy show default floors", []string{"policy", "show", key}, 0, "explore 0.02, baseline 0.001"},
		{"policy explore", []string{"policy", "explore", key, "--explore-floor", "0.1", "--baseline-floor", "-1"}, 0, "floors " + key + ": in effect from version"},
		{"policy show floors", []string{"policy", "show", key}, 0, "explore 0.1, baseline off"},
		{"policy explore one floor", []string{"policy", "explore", key, "--baseline-floor", "0.02"}, 0, "floors " + key},
		{"policy explore out of bounds", []string{"policy", "explore", key, "--explore-floor", "0.9"}, 2, "explore_floor"},
		{"policy explore nothing", []string{"policy", "explore", key}, 2, "--explore-floor or --baseline-floor"},
		{"policy explore unknown key", []string{"policy", "explore", "no/such/key", "--explore-floor", "0.1"}, 3, "NotFound"},
		{"reset", []string{"reset", key}, 0, "reset " + key},
		{"policy show floors after reset", []string{"policy", "show", key}, 0, "explore 0.1, baseline 0.02"},
		{"unknown flag", []string{"keys", "--nope"}, 2, "unknown flag"},
		{"traces of an unknown key", []string{"traces", "export", "--out", "-", "--key", "no/such/key"}, 3, "NotFound"},
		{"traces bad since", []string{"traces", "export", "--out", "-", "--since", "yesterday"}, 2, "--since"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := e.run(t, c.args...)
			if code != c.code || !strings.Contains(out+errOut, c.contains) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", code, c.code, out, errOut, c.contains)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		code, out, _ := e.run(t, "keys", "--json")
		var v struct {
			Keys []struct {
				Key, Version string
				Pin          any
			}
		}
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || len(v.Keys) != 1 || v.Keys[0].Key != key {
			t.Fatalf("keys --json: %d %s", code, out)
		}
		code, out, _ = e.run(t, "status", "--json")
		var s map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s["traces"] != "20" {
			t.Fatalf("status --json: %d %s", code, out)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		for name, tok := range map[string]string{"executor token": e.execToken, "wrong token": e.wrongToken} {
			code, _, errOut := e.runWith(t, tok, "reset", key)
			if code != 1 || !(strings.Contains(errOut, "PermissionDenied") || strings.Contains(errOut, "Unauthenticated")) {
				t.Errorf("%s: exit %d: %s", name, code, errOut)
			}
		}
		if code, _, errOut := e.runWith(t, "", "status"); code != 2 || !strings.Contains(errOut, "no token") {
			t.Errorf("no token: exit %d: %s", code, errOut)
		}
		var out, errOut bytes.Buffer
		code := dynoctl.Main([]string{"status", "--addr", "127.0.0.1:1", "--ca", e.ca, "--token-file", e.adminToken, "--timeout", "2s"}, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "Unavailable") {
			t.Errorf("unreachable controller: exit %d: %s", code, errOut.String())
		}
	})
	t.Run("traces export", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "traces.jsonl")
		code, _, errOut := e.run(t, "traces", "export", "--out", out, "--since", "seq:6")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		f, _ := os.Open(out)
		defer f.Close()
		rd := tracelog.NewReader(f, tracelog.ReadOptions{})
		n := 0
		for rd.Next() {
			tr := rd.Record()
			if tr.Observed.LatencyMs != 90+tr.Observed.DeviceMs-80 || tr.StartUnixNano == 0 || tr.ReceivedUnixNano < tr.StartUnixNano {
				t.Fatalf("latency_ms or the times are lost: %+v", tr)
			}
			if tr.Seq < 6 || tr.Executor != "ex-1" || tr.Observed.DeviceMs <= 80 || tr.Propensity != 1 || tr.Arm.Bits != 32 || tr.ID == "" || tr.Cost <= 80 || tr.ArmIndex != 140 {
				t.Fatalf("trace %+v", tr)
			}
			n++
		}
		if err := rd.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 15 {
			t.Fatalf("%d traces from seq 6, want 15", n)
		}
		code, stdout, _ := e.run(t, "traces", "export", "--out", "-", "--since", "1h", "--limit", "3", "--key", key)
		if code != 0 || strings.Count(stdout, "\n") != 3 {
			t.Fatalf("to stdout: %d %q", code, stdout)
		}
	})
	t.Run("eval of the export says what it supports", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "traces.jsonl")
		if code, _, errOut := e.run(t, "traces", "export", "--out", out); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		// Twenty device-only reports with propensity 1: device-only is
		// seen on every record, cloud-only on none.
		var stdout, stderr bytes.Buffer
		code := dynoctl.Main([]string{"eval", "--traces", out, "--dir", "../../examples/mobilenetv2", "--device", "phone-low", "--cloud", "cloud-t4",
			"--policies", "device,cloud", "--estimators", "ips,snips", "--bootstrap", "0"}, &stdout, &stderr)
		if code != 0 || !strings.Contains(stdout.String(), "the log supports: device (ips, snips); it does not support: cloud") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
		stdout.Reset()
		code = dynoctl.Main([]string{"eval", "--traces", out, "--dir", "../../examples/mobilenetv2", "--device", "phone-low", "--cloud", "cloud-t4",
			"--policies", "device,cloud", "--estimators", "ips", "--bootstrap", "0", "--json"}, &stdout, &stderr)
		var rep struct {
			Support []struct {
				Name       string
				Supported  bool
				Estimators []string
			}
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); code != 0 || err != nil || len(rep.Support) != 2 ||
			!rep.Support[0].Supported || rep.Support[0].Name != "device" || rep.Support[1].Supported || len(rep.Support[1].Estimators) != 0 {
			t.Fatalf("exit %d, %v: support %+v\n%s", code, err, rep.Support, stderr.String())
		}
	})
	t.Run("backup", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.db")
		code, stdout, errOut := e.run(t, "backup", "--out", out)
		if code != 0 || !strings.Contains(stdout, "checked") {
			t.Fatalf("exit %d: %s %s", code, stdout, errOut)
		}
		s, err := store.Open(out, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.View(func(tx *store.Tx) error {
			if r := tx.Traces(); r.Count != 20 {
				t.Errorf("the copy holds %d traces", r.Count)
			}
			if _, ok, _ := tx.Key(key); !ok {
				t.Error("the copy has no key")
			}
			return nil
		})
	})
	t.Run("backup refuses the live store and existing files", func(t *testing.T) {
		liveBefore, _ := os.ReadFile(e.store)
		// The live store by its path, and by a hard link (another name).
		link := filepath.Join(filepath.Dir(e.store), "other-name.db")
		if err := os.Link(e.store, link); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(link)
		for _, target := range []string{e.store, link} {
			for _, force := range []bool{false, true} {
				args := []string{"backup", "--out", target}
				if force {
					args = append(args, "--force")
				}
				code, _, errOut := e.run(t, args...)
				if code != 3 || !strings.Contains(errOut, "live store") {
					t.Fatalf("backup onto %s (force %v): exit %d: %s", target, force, code, errOut)
				}
			}
		}
		liveAfter, _ := os.ReadFile(e.store)
		if len(liveAfter) < len(liveBefore) {
			t.Fatal("the live store shrank")
		}
		// An existing file needs --force.
		out := filepath.Join(t.TempDir(), "old.db")
		os.WriteFile(out, []byte("keep me"), 0o600)
		code, _, errOut := e.run(t, "backup", "--out", out)
		if b, _ := os.ReadFile(out); code != 3 || !strings.Contains(errOut, "--force") || string(b) != "keep me" {
			t.Fatalf("backup onto an existing file: exit %d: %s", code, errOut)
		}
		if code, _, errOut := e.run(t, "backup", "--out", out, "--force"); code != 0 {
			t.Fatalf("with --force: exit %d: %s", code, errOut)
		}
		if err := store.Check(out); err != nil {
			t.Fatal(err)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*"))
		if len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})
	t.Run("audit and executors remove", func(t *testing.T) {
		if code, _, errOut := e.run(t, "pin", key, "--split", "0", "--bits", "32"); code != 0 {
			t.Fatalf("pin: %d %s", code, errOut)
		}
		if code, _, errOut := e.run(t, "unpin", key); code != 0 {
			t.Fatalf("unpin: %d %s", code, errOut)
		}
		code, _, errOut := e.run(t, "unpin", key)
		if code != 3 || !strings.Contains(errOut, "not pinned") {
			t.Fatalf("unpin of an unpinned key: %d %s", code, errOut)
		}
		code, stdout, errOut := e.run(t, "audit", key)
		if code != 0 || !strings.Contains(stdout, "pin") || !strings.Contains(stdout, "unpin") || !strings.Contains(stdout, "ops") {
			t.Fatalf("audit: %d %s %s", code, stdout, errOut)
		}
		if code, _, _ := e.run(t, "audit", "no/such/key"); code != 3 {
			t.Fatalf("audit of an unknown key: exit %d", code)
		}
		code, stdout, errOut = e.run(t, "executors", "remove", "ex-1", "nobody")
		if code != 0 || !strings.Contains(stdout, "removed ex-1") || !strings.Contains(stdout, "nobody") {
			t.Fatalf("executors remove: %d %s %s", code, stdout, errOut)
		}
		code, stdout, _ = e.run(t, "executors")
		if code != 0 || strings.Contains(stdout, "ex-1") {
			t.Fatalf("after removal: %d %s", code, stdout)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := dynoctl.Main([]string{"pin", "--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Exit codes") || !strings.Contains(out.String(), "--for") {
			t.Fatalf("pin --help: %d %s", code, out.String())
		}
	})
}
