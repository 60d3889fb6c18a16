package dynoctl_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/internal/dynoctl"
	"github.com/dynoml/dyno/model"
)

func runCtl(args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := dynoctl.Main(args, &out, &errb)
	return code, out.String() + errb.String()
}

func TestModelCommands(t *testing.T) {
	dir := t.TempDir()
	if code, out := runCtl("model", "zoo", "--name", "tinynet", "--out", dir); code != 0 || !strings.Contains(out, "10 blocks") {
		t.Fatalf("zoo: exit %d: %s", code, out)
	}
	src := filepath.Join(dir, "tinynet", "model.onnx")
	code, out := runCtl("model", "split", src, "--list")
	if code != 0 || !strings.Contains(out, "res.relu") || strings.Contains(out, "res.conv1") {
		t.Fatalf("split --list: exit %d: %s", code, out)
	}
	split := filepath.Join(dir, "split")
	if code, out := runCtl("model", "split", src, "-o", split, "--max", "3", "--bits", "32,8"); code != 0 || !strings.Contains(out, "into 4 blocks") {
		t.Fatalf("split --max 3: exit %d: %s", code, out)
	}
	m, err := model.LoadManifest(filepath.Join(split, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "tinynet" || len(m.AllowedBits) != 2 {
		t.Errorf("manifest %s, bits %v", m.Name, m.AllowedBits)
	}
	if code, out := runCtl("model", "show", split); code != 0 || !strings.Contains(out, "block04.onnx") {
		t.Errorf("show: exit %d: %s", code, out)
	}
	if code, out := runCtl("model", "zoo", "--list"); code != 0 || !strings.Contains(out, "resnet50") {
		t.Errorf("zoo --list: exit %d: %s", code, out)
	}

	// Bad input and bad usage have their own exit codes and say what and
	// where.
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.onnx")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		fragments []string
	}{
		{"truncated file", []string{"model", "split", cut, "-o", split}, dynoctl.ExitBadInput, []string{cut, "at byte"}},
		{"missing file", []string{"model", "split", filepath.Join(dir, "none.onnx"), "-o", split}, dynoctl.ExitBadInput, []string{"none.onnx"}},
		{"not a cut", []string{"model", "split", src, "-o", split, "--at", "res.conv1"}, dynoctl.ExitBadInput, []string{"res.conv1", "bypasses"}},
		{"two selections", []string{"model", "split", src, "-o", split, "--at", "res.relu", "--max", "2"}, dynoctl.ExitUsage, []string{"exclude"}},
		{"no output", []string{"model", "split", src}, dynoctl.ExitUsage, []string{"--out"}},
		{"bad shape", []string{"model", "split", src, "--list", "--input-shape", "1,x"}, dynoctl.ExitUsage, []string{"--input-shape"}},
		{"unknown zoo model", []string{"model", "zoo", "--name", "vgg", "--out", dir}, dynoctl.ExitUsage, []string{"vgg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCtl(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, out)
			}
			for _, f := range tc.fragments {
				if !strings.Contains(out, f) {
					t.Errorf("output does not mention %q: %s", f, out)
				}
			}
		})
	}
}

// The walkthrough of docs/models.md on a model with operators dyno's own
// inference does not know: list, split (default cap), check, refuse to
// re-split over results of the earlier split, --force.
func TestModelSplitCheckAnyModel(t *testing.T) {
	dir := t.TempDir()
	if code, out := runCtl("model", "zoo", "--name", "unet", "--out", dir); code != 0 {
		t.Fatalf("zoo unet: exit %d: %s", code, out)
	}
	src := filepath.Join(dir, "unet", "model.onnx")
	code, out := runCtl("model", "split", src, "--list", "--at", "skip1")
	if code != 0 || !strings.Contains(out, "Resize:1") || !strings.Contains(out, "without a single-tensor cut") ||
		!strings.Contains(out, "the 1 cut point(s) named -> 2 blocks") {
		t.Fatalf("split --list --at: exit %d: %s", code, out)
	}
	if code, out := runCtl("model", "split", src, "--list", "--own-inference"); code != dynoctl.ExitBadInput || !strings.Contains(out, "no shape inference") {
		t.Errorf("split --own-inference of a U-Net: exit %d: %s", code, out)
	}
	split := filepath.Join(dir, "split")
	if code, out := runCtl("model", "split", src, "-o", split, "--raw"); code != 0 || !strings.Contains(out, "into 7 blocks") || !strings.Contains(out, "+?") {
		t.Fatalf("split: exit %d: %s", code, out)
	}
	code, out = runCtl("model", "check", split, "--inputs", "3")
	if code != 0 || !strings.Contains(out, "mask") || !strings.Contains(out, "ok") {
		t.Fatalf("check: exit %d: %s", code, out)
	}
	// A different model with the same input and output is not what the
	// blocks compute: check fails.
	if code, out := runCtl("model", "zoo", "--name", "unet", "--seed", "2", "--out", filepath.Join(dir, "other")); code != 0 {
		t.Fatalf("zoo unet seed 2: exit %d: %s", code, out)
	}
	code, out = runCtl("model", "check", split, "--onnx", filepath.Join(dir, "other", "unet", "model.onnx"))
	if code != dynoctl.ExitFailure || !strings.Contains(out, "DIFFERS") {
		t.Errorf("check against another model: exit %d: %s", code, out)
	}
	if err := os.MkdirAll(filepath.Join(split, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(split, "profiles", "host.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runCtl("model", "split", src, "-o", split, "--max", "2")
	if code != dynoctl.ExitBadInput || !strings.Contains(out, "host.json") || !strings.Contains(out, "--force") {
		t.Errorf("re-split over a profile: exit %d: %s", code, out)
	}
	code, out = runCtl("model", "split", src, "-o", split, "--max", "2", "--force")
	if code != 0 || !strings.Contains(out, "cleared") {
		t.Errorf("re-split --force: exit %d: %s", code, out)
	}
	if code, out := runCtl("model", "check", filepath.Join(dir, "nothing")); code != dynoctl.ExitBadInput {
		t.Errorf("check of a missing folder: exit %d: %s", code, out)
	}
}

// Arms of precisions the table does not calibrate show as not calibrated
// in a plan, not as accuracy 0.
func TestPlanShowsUncalibratedArms(t *testing.T) {
	dir := t.TempDir()
	if code, out := runCtl("model", "zoo", "--name", "tinynet", "--out", dir); code != 0 {
		t.Fatalf("zoo: exit %d: %s", code, out)
	}
	md := filepath.Join(dir, "tinynet")
	m, err := model.LoadManifest(filepath.Join(md, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(md, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	blocks := strings.Repeat(`{"median_ms": 1, "p95_ms": 1, "runs": 1},`, m.K())
	for _, role := range []string{"device", "cloud"} {
		p := fmt.Sprintf(`{"version": 1, "model": "tinynet", "device_class": "%s", "role": "%s", "host": "h", "blocks": [%s]}`, role, role, strings.TrimSuffix(blocks, ","))
		if err := os.WriteFile(filepath.Join(md, "profiles", role+".json"), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	acc := `{"version": 1, "model": "tinynet", "metric": "top1-agreement", "baseline": 1, "entries": [{"split": 0, "bits": 8, "accuracy": 0.9, "agreement": 0.9, "n": 4}]}`
	if err := os.WriteFile(filepath.Join(md, "accuracy.json"), []byte(acc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCtl("plan", "--dir", md, "--device", "device", "--cloud", "cloud", "--top", "0")
	if code != 0 || !strings.Contains(out, "n/c") || !strings.Contains(out, "not calibrated") || !strings.Contains(out, "0.9000") {
		t.Errorf("plan: exit %d: %s", code, out)
	}
}
