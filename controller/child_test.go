package controller_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dynoml/dyno/controller"
)

// A test that needs a controller it can kill -9 runs this test binary again
// as the controller: TestMain sees childEnv and runs runChild instead of
// the tests.
const childEnv = "DYNO_TEST_CONTROLLER_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

// childConfig is what the child reads.
type childConfig struct {
	Store, Cert, Key, ModelDir string
	PublishEvery               int
	PublishIntervalMs          int
	// DrainMs is how long the child drains on SIGTERM before it stops.
	DrainMs int
}

func runChild(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cc childConfig
	if err := json.Unmarshal(b, &cc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tlsCfg, err := controller.ServerTLS(cc.Cert, cc.Key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := controller.Config{
		Listen: "127.0.0.1:0", TLS: tlsCfg, StorePath: cc.Store, ModelDirs: []string{cc.ModelDir},
		Tokens: []controller.Token{
			controller.NewToken("ops", adminSecret, controller.ScopeAdmin),
			controller.NewToken("fleet", executorSecret, controller.ScopeExecutor),
		},
		PublishEvery: cc.PublishEvery, PublishInterval: time.Duration(cc.PublishIntervalMs) * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	s, err := controller.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Println(s.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	s.Drain(time.Duration(cc.DrainMs) * time.Millisecond)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// childProc is a controller in its own process.
type childProc struct {
	cmd  *exec.Cmd
	addr string
}

// startChild runs a controller process on the env's store.
func (e *env) startChild(t testing.TB) *childProc {
	t.Helper()
	cert, key, cfgPath := filepath.Join(e.dir, "cert.pem"), filepath.Join(e.dir, "key.pem"), filepath.Join(e.dir, "child.json")
	if err := os.WriteFile(cert, e.certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, e.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(childConfig{Store: e.cfg.StorePath, Cert: cert, Key: key, ModelDir: testModelDir,
		PublishEvery: e.cfg.PublishEvery, PublishIntervalMs: int(e.cfg.PublishInterval / time.Millisecond), DrainMs: int(e.cfg.DrainDelay / time.Millisecond)})
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("controller process did not start: %v", err)
	}
	c := &childProc{cmd: cmd, addr: line[:len(line)-1]}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// kill9 kills the controller process without warning.
func (c *childProc) kill9(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}
