// Package influxtest gives tests a real InfluxDB 1.8 (influxd) with Flux
// enabled: the one `make influxd` started (DYNO_INFLUXD_URL), or one it
// starts from a binary (DYNO_INFLUXD, or .cache/bin/influxd in the
// repository) in a temporary folder. Each test gets its own database.
//
// When there is none, a test fails if DYNO_REQUIRE_INFLUXD=1 (make test sets
// it) and is skipped otherwise, with a message saying how to get influxd.
package influxtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// DB is one database of a running influxd.
type DB struct {
	URL string
	// Name is the database; Bucket is the v2-compatibility bucket
	// ("name/autogen") the controller writes to.
	Name, Bucket string
}

const howTo = "run `make influxd` (builds influxd 1.8.3 from the Go module proxy into .cache/bin and starts it), or set DYNO_INFLUXD to an influxd binary"

// New returns a fresh database, dropped when the test ends.
func New(t testing.TB) DB {
	t.Helper()
	base := os.Getenv("DYNO_INFLUXD_URL")
	if base != "" {
		if err := ping(base, 2*time.Second); err != nil {
			missing(t, fmt.Sprintf("DYNO_INFLUXD_URL=%s does not answer (%v)", base, err))
		}
	} else {
		bin := os.Getenv("DYNO_INFLUXD")
		if bin == "" {
			bin = repoBinary()
		}
		if _, err := os.Stat(bin); bin == "" || err != nil {
			missing(t, "no influxd binary (DYNO_INFLUXD, .cache/bin/influxd)")
		}
		base = startOwn(t, bin)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "dyno_test_" + hex.EncodeToString(b)
	if err := query(base, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("influxd at %s: create database: %v", base, err)
	}
	t.Cleanup(func() { query(base, "DROP DATABASE "+name) })
	return DB{URL: base, Name: name, Bucket: name + "/autogen"}
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("DYNO_REQUIRE_INFLUXD") == "1" {
		t.Fatalf("influxd is required here (DYNO_REQUIRE_INFLUXD=1) and missing: %s; %s", why, howTo)
	}
	t.Skipf("skipped: needs influxd: %s; %s", why, howTo)
}

// repoBinary finds .cache/bin/influxd above the working directory.
func repoBinary() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "bin", "influxd")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startOwn runs influxd from bin in a temporary folder until the test ends.
func startOwn(t testing.TB, bin string) string {
	t.Helper()
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	rpc, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%s/meta"
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
`, rpc, dir, dir, dir, port)
	confPath := filepath.Join(dir, "influxd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "-config", confPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := ping(base, 90*time.Second); err != nil {
		t.Fatalf("influxd did not start: %v\n%s", err, log.String())
	}
	return base
}

func ping(base string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ping", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// query runs an InfluxQL statement (database management).
func query(base, q string) error {
	resp, err := http.PostForm(base+"/query", url.Values{"q": {q}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", q, resp.Status)
	}
	return nil
}
