package cli_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/cli"
	"github.com/dynoml/dyno/model"
)

func TestProfileAndCalibrateCommands(t *testing.T) {
	dir := t.TempDir()
	z, err := model.ZooByName("tinynet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.WriteZoo(z, 1, dir); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("profile", dir, "--runs", "2", "--warmup", "0", "--threads", "1", "--class", "ci"); code != 0 {
		t.Fatalf("profile: exit %d: %s", code, out)
	}
	p, err := costmodel.LoadProfile(filepath.Join(dir, "profiles", "ci.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceClass != "ci" || len(p.Blocks) != 10 {
		t.Errorf("profile %+v", p)
	}
	if code, out := run("calibrate", dir, "--samples", "2", "--bits", "32,4", "--threads", "1"); code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, out)
	}
	tab, err := costmodel.LoadAccuracyTable(filepath.Join(dir, "accuracy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Entries) != 20 {
		t.Errorf("%d entries", len(tab.Entries))
	}
	if code, out := run("calibrate", dir, "-o", "-", "--samples", "1", "--bits", "8", "--threads", "1"); code != 0 || !strings.Contains(out, `"metric": "top1-agreement"`) {
		t.Errorf("calibrate to stdout: exit %d: %s", code, out)
	}
	if code, _ := run("profile", dir, "--no-such-flag"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code, out := run("profile", filepath.Join(dir, "missing")); code != 3 || !strings.Contains(out, "missing") {
		t.Errorf("missing model: exit %d, want 3: %s", code, out)
	}
}
