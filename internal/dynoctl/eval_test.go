package dynoctl_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/eval"
	"github.com/dynoml/dyno/internal/dynoctl"
	"github.com/dynoml/dyno/tracelog"
)

// simulatedLog writes n trace records of the offline-evaluation scenario,
// logged by a uniformly exploring policy, and returns the file and the
// world.
func simulatedLog(t *testing.T, n int) (string, *eval.World) {
	t.Helper()
	ss, err := eval.LoadScenarios("../../scenarios/ope/mobilenet-egreedy.json")
	if err != nil {
		t.Fatal(err)
	}
	w, err := ss[0].Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tracelog.NewWriter(f)
	err = w.Log(bandit.NameEGreedy, 0, n, &eval.Tuning{EGreedy: bandit.EGreedyConfig{Epsilon: 1}}, func(rec *tracelog.Record, _ []float64) error {
		return tw.Write(rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path, w
}

func runCtl3(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dynoctl.Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEvalCommand(t *testing.T) {
	log, w := simulatedLog(t, 600)
	model := []string{"--manifest", "../../examples/mobilenetv2/model.json", "--accuracy", "../../examples/mobilenetv2/accuracy.json",
		"--device-profile", "../../examples/mobilenetv2/profiles/phone-low.json", "--cloud-profile", "../../examples/mobilenetv2/profiles/cloud-t4.json"}
	// The scenario restricts the model to 32 and 8 bits; the records' arm
	// indices follow that model, so evaluate against a manifest with the
	// same arms.
	m := *w.Seen.Manifest
	mp := filepath.Join(t.TempDir(), "model.json")
	data, _ := json.Marshal(&m)
	if err := os.WriteFile(mp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	model[1] = mp

	state, err := bandit.New(bandit.NameStatic, w.Seen, bandit.Config{Objective: w.Scenario.Objective})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := state.MarshalBinary()
	statePath := filepath.Join(t.TempDir(), "static.bin")
	os.WriteFile(statePath, blob, 0o644)

	t.Run("json", func(t *testing.T) {
		report := filepath.Join(t.TempDir(), "report")
		code, out, errs := runCtl3(append([]string{"eval", "--traces", log, "--policies", "static,device,stored=" + statePath, "--json", "--report", report, "--bootstrap", "50"}, model...)...)
		if code != dynoctl.ExitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var rep eval.OfflineReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if rep.Records != 600 || len(rep.Targets) != 3 || len(rep.Targets[0].Estimates) != 6 {
			t.Fatalf("records %d, targets %d", rep.Records, len(rep.Targets))
		}
		// A stored static policy and a fresh one are the same policy.
		if a, b := rep.Targets[0].Estimates[1].Value, rep.Targets[2].Estimates[1].Value; a != b {
			t.Errorf("stored static IPS %g, fresh %g", b, a)
		}
		for _, f := range []string{"report.md", "estimates.png", "curve.png", "arms.png"} {
			if st, err := os.Stat(filepath.Join(report, f)); err != nil || st.Size() == 0 {
				t.Errorf("report file %s: %v", f, err)
			}
		}
	})
	t.Run("throughput", func(t *testing.T) {
		code, out, errs := runCtl3(append([]string{"eval", "--throughput", "--rounds", "2", "--traces", log, "--policies", "static", "--estimators", "ips,snips", "--bootstrap", "0"}, model...)...)
		if code != dynoctl.ExitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{"600 records, one core", "median of 2 rounds", "decode only:", "decode and estimate:", "ratio (estimate/decode):"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if code, _, errs := runCtl3(append([]string{"eval", "--throughput", "--rounds", "0", "--traces", log}, model...)...); code != dynoctl.ExitUsage || !strings.Contains(errs, "--rounds") {
			t.Errorf("--rounds 0: exit %d, %q", code, errs)
		}
	})
	t.Run("bad line stops with its number, skip-bad goes on", func(t *testing.T) {
		raw, _ := os.ReadFile(log)
		lines := strings.SplitAfter(string(raw), "\n")
		lines[9] = strings.Replace(lines[9], `"propensity":`, `"propensity":-`, 1)
		bad := filepath.Join(t.TempDir(), "bad.jsonl")
		os.WriteFile(bad, []byte(strings.Join(lines, "")), 0o644)
		code, _, errs := runCtl3(append([]string{"eval", "--traces", bad, "--policies", "static"}, model...)...)
		if code != dynoctl.ExitBadInput || !strings.Contains(errs, "line 10") || !strings.Contains(errs, "propensity") {
			t.Fatalf("exit %d, stderr %q: want exit 3 naming line 10 and the propensity", code, errs)
		}
		code, out, errs := runCtl3(append([]string{"eval", "--traces", bad, "--policies", "static", "--skip-bad"}, model...)...)
		if code != dynoctl.ExitOK || !strings.Contains(errs, "skipped 1 bad lines") || !strings.Contains(out, "599 records") {
			t.Fatalf("skip-bad: exit %d, stderr %q, out %q", code, errs, out)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"eval", "--policies", "static"},
			{"eval", "--traces", log, "--policies", "oracle"},
			{"eval", "--traces", log, "--estimators", "magic"},
		} {
			if code, _, errs := runCtl3(append(args, model...)...); code != dynoctl.ExitUsage {
				t.Errorf("%v: exit %d (%s), want 2", args, code, errs)
			}
		}
		if code, _, errs := runCtl3(append([]string{"eval", "--traces", filepath.Join(t.TempDir(), "none.jsonl")}, model...)...); code != dynoctl.ExitBadInput {
			t.Errorf("missing file: exit %d (%s), want 3", code, errs)
		}
	})
}

// TestEvalReadsLogWithItsManifest evaluates a scenario's 41-arm log against
// the full 141-arm manifest: the records' allowed bits give the arm order.
// With the bootstrap off and a target the log cannot support, --json is
// still valid JSON: the missing figures are null with their reasons, and
// the warnings and verdicts are in it.
func TestEvalReadsLogWithItsManifest(t *testing.T) {
	log, _ := simulatedLog(t, 300)
	code, out, errs := runCtl3("eval", "--traces", log, "--dir", "../../examples/mobilenetv2", "--device", "phone-low", "--cloud", "cloud-t4",
		"--policies", "static,cloud,logger", "--estimators", "ips,snips,dr", "--bootstrap", "0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !json.Valid([]byte(out)) || strings.Contains(out, "NaN") {
		t.Fatalf("not valid JSON:\n%s", out)
	}
	var rep struct {
		Arms    []string
		Targets []struct {
			Name      string
			Warnings  []string
			Estimates []struct {
				Estimator string
				Value     *float64
				BootLo    *float64 `json:"boot_lo"`
				Verdict   string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Arms) != 41 {
		t.Errorf("%d arms, want the log's 41", len(rep.Arms))
	}
	for _, tr := range rep.Targets {
		for _, e := range tr.Estimates {
			if e.BootLo != nil || e.Verdict == "" {
				t.Errorf("%s %s: boot_lo %v with the bootstrap off, verdict %q", tr.Name, e.Estimator, e.BootLo, e.Verdict)
			}
		}
		if tr.Name == "logger" && (tr.Estimates[0].Value == nil || tr.Estimates[0].Verdict != "supported") {
			t.Errorf("logger: %+v, want a supported on-policy value", tr.Estimates[0])
		}
	}
	code, out, errs = runCtl3("eval", "--traces", log, "--dir", "../../examples/mobilenetv2", "--device", "phone-low", "--cloud", "cloud-t4",
		"--policies", "static", "--estimators", "ips,snips", "--bootstrap", "0")
	if code != 0 || strings.Contains(out, "NaN") || !strings.Contains(out, "verdict") {
		t.Fatalf("table: exit %d, %s\n%s", code, errs, out)
	}
}
