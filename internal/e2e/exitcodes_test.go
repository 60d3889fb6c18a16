package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dynoml/dyno/controller"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/cli"
	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/internal/dynoctl"
)

// binaries runs each binary's Main as its main does, minus os.Exit.
var binaries = map[string]func(args []string, stdout, stderr *bytes.Buffer) int{
	"dyno-controller": func(a []string, o, e *bytes.Buffer) int { return controller.Main(a, o, e) },
	"dyno-executor":   func(a []string, o, e *bytes.Buffer) int { return cli.Main(context.Background(), a, o, e) },
	"dynoctl":         func(a []string, o, e *bytes.Buffer) int { return dynoctl.Main(a, o, e) },
}

// TestExitCodes runs the error cases of every binary and checks the exit
// code the README promises (0 ok, 1 failure, 2 bad flags or arguments, 3 an
// invalid input file) and that the message names what was wrong.
func TestExitCodes(t *testing.T) {
	tiny := orttest.Model(t, "tinynet")
	work := t.TempDir()
	certPEM, keyPEM, err := controller.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A second pair for the same host: a client trusting it must refuse
	// the controller's certificate.
	otherPEM, _, err := controller.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	short := make([]byte, 10)
	files := map[string][]byte{
		"tls.crt": certPEM, "tls.key": keyPEM, "other.crt": otherPEM,
		"admin.token": []byte(adminSecret + "\n"), "executor.token": []byte(executorSecret + "\n"), "cloud.token": []byte(cloudSecret + "\n"),
		"tokens":     []byte("ops admin " + adminSecret + "\n"),
		"bad-tokens": []byte("ops root " + adminSecret + "\n"),
		"short.bin":  short,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(work, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := func(name string) string { return filepath.Join(work, name) }

	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := controller.New(controller.Config{
		Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, StorePath: f("dyno.db"),
		Tokens: []controller.Token{
			controller.NewToken("ops", adminSecret, controller.ScopeAdmin),
			controller.NewToken("fleet", executorSecret, controller.ScopeExecutor),
		},
		ModelDirs: []string{orttest.Model(t, "mnist")}, CloudClass: "amd64-2cpu-cloud",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	defer ctl.Stop(context.Background())
	admin := []string{"--addr", ctl.Addr(), "--ca", f("tls.crt"), "--token-file", f("admin.token")}

	cloudAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var cloudOut syncBuffer
	cloudDone := make(chan int, 1)
	go func() {
		cloudDone <- cli.Main(ctx, []string{"cloud", "--model", orttest.Model(t, "mnist"), "--listen", cloudAddr, "--token-file", f("cloud.token"),
			"--tls-cert", f("tls.crt"), "--tls-key", f("tls.key"), "--threads", "1"}, &cloudOut, &cloudOut)
	}()
	defer func() {
		cancel()
		if code := <-cloudDone; code != 0 {
			t.Errorf("cloud executor exited %d: %s", code, cloudOut.String())
		}
	}()
	for i := 0; i < 200 && !strings.Contains(cloudOut.String(), "serving"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	device := func(ca, cloudCA string) []string {
		return []string{"device", "--model", orttest.Model(t, "mnist"), "--device-class", "amd64-2cpu",
			"--controller", ctl.Addr(), "--ca", f(ca), "--token-file", f("executor.token"), "--cloud", cloudAddr, "--cloud-ca", f(cloudCA),
			"--cloud-token-file", f("cloud.token"), "--register-wait", "1m", "--requests", "1"}
	}

	cases := []struct {
		name string
		bin  string
		args []string
		code int
		want []string // in stdout or stderr
	}{
		// dyno-controller
		{"controller help lists its commands", "dyno-controller", []string{"--help"}, 0, []string{"serve", "gen-cert", "gen-token"}},
		{"controller version", "dyno-controller", []string{"--version"}, 0, []string{"dyno-controller", "commit"}},
		{"controller unknown command", "dyno-controller", []string{"bogus"}, 2, []string{`unknown command "bogus"`}},
		{"serve unknown flag", "dyno-controller", []string{"serve", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"serve argument", "dyno-controller", []string{"serve", "extra"}, 2, []string{"unexpected arguments [extra]"}},
		{"serve without TLS", "dyno-controller", []string{"serve", "--tokens", f("tokens")}, 2, []string{"TLS is required"}},
		{"serve without tokens", "dyno-controller", []string{"serve", "--insecure"}, 2, []string{"--tokens is required"}},
		{"serve, missing tokens file", "dyno-controller", []string{"serve", "--insecure", "--tokens", f("missing")}, 3, []string{"--tokens", "no such file"}},
		{"serve, bad scope in the tokens file", "dyno-controller", []string{"serve", "--insecure", "--tokens", f("bad-tokens")}, 3, []string{`unknown scope "root"`}},
		{"serve, unreadable certificate", "dyno-controller", []string{"serve", "--tls-cert", f("short.bin"), "--tls-key", f("tls.key"), "--tokens", f("tokens")}, 3, []string{"--tls-cert"}},
		{"serve, cloud class no model has", "dyno-controller", []string{"serve", "--insecure", "--tokens", f("tokens"), "--listen", "127.0.0.1:0",
			"--store", f("cc.db"), "--model", tiny, "--cloud-class", "no-such-cloud"}, 3, []string{`cloud class "no-such-cloud"`, "amd64-2cpu-cloud"}},
		{"serve, old single-dash flags still read", "dyno-controller", []string{"serve", "-insecure", "-tokens", f("bad-tokens")}, 3, []string{`unknown scope "root"`}},
		{"gen-token, scope serve refuses", "dyno-controller", []string{"gen-token", "--name", "ops", "--scopes", "admin,root"}, 2, []string{`unknown scope "root"`}},
		{"gen-token, bad name", "dyno-controller", []string{"gen-token", "--name", "o p"}, 2, []string{"--name"}},
		{"gen-token", "dyno-controller", []string{"gen-token", "--name", "ops", "--scopes", "executor,admin"}, 0, []string{"tokens line: ops executor,admin sha256:"}},
		{"gen-token, append to a tokens file", "dyno-controller", []string{"gen-token", "--name", "fleet", "--scopes", "executor", "--token-out", f("fleet.token"), "--append", f("tokens")}, 0,
			[]string{"written to " + f("fleet.token"), "added to " + f("tokens")}},
		{"gen-token, name the tokens file has", "dyno-controller", []string{"gen-token", "--name", "ops", "--append", f("tokens")}, 3, []string{`duplicate name "ops"`}},
		{"gen-token, append to a bad tokens file", "dyno-controller", []string{"gen-token", "--name", "new", "--append", f("bad-tokens")}, 3, []string{`unknown scope "root"`}},
		{"gen-token, token file exists", "dyno-controller", []string{"gen-token", "--name", "other", "--token-out", f("admin.token")}, 1, []string{"exists"}},

		// dyno-executor
		{"executor version", "dyno-executor", []string{"--version"}, 0, []string{"dyno-executor", "commit"}},
		{"executor unknown command", "dyno-executor", []string{"bogus"}, 2, []string{`unknown command "bogus"`}},
		{"profile without a model", "dyno-executor", []string{"profile"}, 2, []string{"accepts 1 arg(s), received 0", "MODEL_DIR"}},
		{"profile, missing model", "dyno-executor", []string{"profile", f("missing")}, 3, []string{"missing"}},
		{"profile, unsplit ONNX file", "dyno-executor", []string{"profile", filepath.Join(tiny, "model.onnx")}, 3, []string{"split it first", "dynoctl model split"}},
		{"profile, unknown provider", "dyno-executor", []string{"profile", tiny, "--provider", "rocm"}, 2, []string{`"rocm"`, "cpu, cuda, tensorrt"}},
		{"calibrate, missing data file", "dyno-executor", []string{"calibrate", tiny, "--data", "file:" + f("missing"), "-o", "-"}, 3, []string{"--data file:", "no such file"}},
		{"calibrate, short data file", "dyno-executor", []string{"calibrate", tiny, "--data", "file:" + f("short.bin"), "-o", "-"}, 3, []string{"10 bytes is not a whole number"}},
		{"cloud without a model", "dyno-executor", []string{"cloud", "--insecure", "--token-file", f("cloud.token")}, 2, []string{"--model"}},
		{"cloud, unsplit ONNX file", "dyno-executor", []string{"cloud", "--insecure", "--token-file", f("cloud.token"), "--listen", "127.0.0.1:0",
			"--model", filepath.Join(tiny, "model.onnx")}, 3, []string{"split it first"}},
		{"cloud, unknown provider", "dyno-executor", []string{"cloud", "--insecure", "--token-file", f("cloud.token"), "--model", tiny, "--provider", "npu"}, 2, []string{`"npu"`}},
		// A certificate that does not match fails at once, not after
		// --register-wait of retries as if the controller were down.
		{"device, cloud certificate mismatch", "dyno-executor", device("tls.crt", "other.crt"), 1, []string{"the cloud executor", "authentication handshake failed", "certificate"}},
		{"device, cloud class the model has no profile for", "dyno-executor", append(device("tls.crt", "tls.crt"), "--cloud-class", "no-such-cloud"), 3, []string{"no-such-cloud.json"}},
		{"device, controller certificate mismatch", "dyno-executor", device("other.crt", "tls.crt"), 1, []string{"register", "authentication handshake failed", "certificate"}},

		// dynoctl
		{"dynoctl version", "dynoctl", []string{"--version"}, 0, []string{"dynoctl", "commit"}},
		{"dynoctl unknown command", "dynoctl", []string{"bogus"}, 2, []string{`unknown command "bogus" for "dynoctl"`}},
		{"dynoctl unknown subcommand", "dynoctl", []string{"traces", "bogus"}, 2, []string{`unknown command "bogus" for "dynoctl traces"`}},
		{"dynoctl unknown flag", "dynoctl", []string{"keys", "--bogus"}, 2, []string{"unknown flag"}},
		{"traces export of an unknown key", "dynoctl", append([]string{"traces", "export", "--out", "-", "--key", "no/such/key"}, admin...), 3, []string{"NotFound", "no/such/key"}},
		{"executors", "dynoctl", append([]string{"executors"}, admin...), 0, []string{"POLICY USED", "TOP ARM"}},
		{"dynoctl, certificate mismatch", "dynoctl", []string{"keys", "--addr", ctl.Addr(), "--ca", f("other.crt"), "--token-file", f("admin.token")}, 1, []string{"certificate"}},
	}
	// Checks after a case passed.
	after := map[string]func(t *testing.T){
		"gen-token, append to a tokens file": func(t *testing.T) {
			// The tokens file gen-token appended to is still one serve reads.
			ts, err := controller.LoadTokens(f("tokens"))
			if err != nil || len(ts) != 2 || ts[1].Name != "fleet" {
				t.Errorf("tokens after gen-token --append: %v %v", ts, err)
			}
			if tok, _ := os.ReadFile(f("fleet.token")); !strings.HasPrefix(string(tok), "dyno_") {
				t.Errorf("fleet.token holds %q", tok)
			}
		},
	}
	// What must not be printed: a retry would mean the mismatch was taken
	// for an unreachable server.
	absent := map[string][]string{
		"device, cloud certificate mismatch":      {"retrying"},
		"device, controller certificate mismatch": {"retrying"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := binaries[tc.bin](tc.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code {
				t.Errorf("%s %s: exit %d, want %d:\n%s", tc.bin, strings.Join(tc.args, " "), code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("%s %s: output lacks %q:\n%s", tc.bin, strings.Join(tc.args, " "), w, all)
				}
			}
			for _, w := range absent[tc.name] {
				if strings.Contains(all, w) {
					t.Errorf("%s %s: output has %q:\n%s", tc.bin, strings.Join(tc.args, " "), w, all)
				}
			}
			if check := after[tc.name]; check != nil {
				check(t)
			}
		})
	}
}

// TestCloudProvider asks ONNX Runtime for each execution provider through
// `dyno-executor profile --provider`: the CPU always works and the profile
// records it; CUDA and TensorRT either work (a GPU build on a GPU machine:
// the profile records them) or fail naming the provider, the library that
// lacks it and what a GPU build needs.
func TestCloudProvider(t *testing.T) {
	tiny := orttest.Model(t, "tinynet")
	for _, p := range []string{"cpu", "cuda", "tensorrt"} {
		t.Run(p, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p.json")
			var stdout, stderr bytes.Buffer
			code := cli.Main(context.Background(), []string{"profile", tiny, "--provider", p, "--runs", "2", "--warmup", "1", "--threads", "1", "--class", "ci", "-o", out}, &stdout, &stderr)
			if code == 0 {
				prof, err := costmodel.LoadProfile(out)
				if err != nil {
					t.Fatal(err)
				}
				if prof.Provider != p || len(prof.Blocks) == 0 {
					t.Fatalf("profile records provider %q, %d blocks; want %q", prof.Provider, len(prof.Blocks), p)
				}
				t.Logf("%s: profiled %d blocks (%s)", p, len(prof.Blocks), prof.Source)
				return
			}
			if p == "cpu" {
				t.Fatalf("cpu: exit %d: %s", code, stderr.String())
			}
			msg := stderr.String()
			for _, w := range []string{"execution provider not available", p, "libonnxruntime", "GPU build of ONNX Runtime", "libonnxruntime_providers_"} {
				if !strings.Contains(msg, w) {
					t.Errorf("exit %d; the error lacks %q:\n%s", code, w, msg)
				}
			}
			if code != 1 {
				t.Errorf("exit %d, want 1: %s", code, msg)
			}
			t.Logf("%s: %s", p, msg)
		})
	}
}
