package eval_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/eval"
)

// validScenario is a minimal scenario whose paths resolve from a file in
// dir (a temporary directory) to the repository's examples and the shared
// traces.
func validScenario(t *testing.T, dir string) map[string]any {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(dir, a)
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	return map[string]any{
		"version":   1,
		"name":      "t",
		"model":     map[string]any{"arch": "mobilenetv2"},
		"device":    map[string]any{"derive": map[string]any{"device_class": "phone", "gflops": map[string]any{"default": 10}}},
		"cloud":     map[string]any{"file": abs("../examples/mobilenetv2/profiles/cloud-t4.json")},
		"accuracy":  map[string]any{"derive": map[string]any{"baseline": 0.72, "drop_by_bits": map[string]any{"16": 0, "8": 0.001, "6": 0.004, "4": 0.02, "3": 0.06, "2": 0.2}}},
		"objective": map[string]any{"kind": "min-latency", "accuracy_floor": 0.68},
		"truth":     map[string]any{},
		"link":      map[string]any{"trace": abs("../../shared/traces/fcc/trace_7289_http---www.yahoo.com"), "rtt_ms": 40},
		"requests":  100,
		"seed":      1,
	}
}

func writeScenario(t *testing.T, dir string, s map[string]any) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "s.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScenarioErrorsNameTheField(t *testing.T) {
	if _, err := os.Stat("../../shared/traces"); err != nil {
		t.Skip("shared/traces not present beside the repository")
	}
	set := func(path string, v any) func(map[string]any) {
		return func(s map[string]any) {
			keys := strings.Split(path, ".")
			m := s
			for _, k := range keys[:len(keys)-1] {
				m = m[k].(map[string]any)
			}
			m[keys[len(keys)-1]] = v
		}
	}
	cases := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"version", set("version", 2), "version"},
		{"no name", set("name", ""), "name"},
		{"unknown arch", set("model.arch", "vgg"), "model.arch"},
		{"unknown field", set("model.layers", 3), "unknown field"},
		{"wrong type", set("requests", "many"), "requests"},
		{"no requests", set("requests", 0), "requests"},
		{"bad objective", set("objective.kind", "fastest"), "objective"},
		{"negative rtt", set("link.rtt_ms", -1), "link.rtt_ms"},
		{"ewma above one", set("measurement", map[string]any{"bandwidth_ewma": 2}), "measurement.bandwidth_ewma"},
		{"zero gflops", set("device.derive.gflops", map[string]any{"conv": 0}), "device.derive.gflops.conv"},
		{"missing layer type", set("device.derive.gflops", map[string]any{"conv": 5}), "device.derive.gflops"},
		{"bad precision", set("accuracy.derive.drop_by_bits", map[string]any{"5": 0.1}), "accuracy.derive.drop_by_bits.5"},
		{"block out of range", set("truth.device_blocks", []any{map[string]any{"block": 99, "factor": 2}}), "truth.device_blocks[0].block"},
		{"changes out of order", set("truth.changes", []any{map[string]any{"at": 5, "device_slowdown": 2}, map[string]any{"at": 3, "device_slowdown": 1}}), "truth.changes[1].at"},
		{"empty change", set("truth.changes", []any{map[string]any{"at": 5}}), "truth.changes[0]"},
		{"unknown wave", set("truth.waves", []any{map[string]any{"factor": "gravity", "start": 0, "length": 10, "peak": 2}}), "truth.waves[0].factor"},
		{"floor out of reach", set("objective.accuracy_floor", 0.9), "objective.accuracy_floor"},
		{"missing trace", set("link.trace", "../../shared/traces/nowhere.log"), "relative to the scenario file"},
		{"missing profile", set("cloud.file", "nowhere.json"), "cloud.file"},
		{"two profiles", set("device.file", "x.json"), "device"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := validScenario(t, dir)
			tc.edit(s)
			p := writeScenario(t, dir, s)
			sc, err := eval.LoadScenario(p)
			if err == nil {
				_, err = sc.Build()
			}
			if !errors.Is(err, eval.ErrInvalidScenario) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want %v naming %q", err, eval.ErrInvalidScenario, tc.field)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		dir := t.TempDir()
		sc, err := eval.LoadScenario(writeScenario(t, dir, validScenario(t, dir)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Build(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLoadScenariosDirectory(t *testing.T) {
	ss, err := eval.LoadScenarios("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 8 {
		t.Fatalf("%d scenarios in the repository, want at least 8", len(ss))
	}
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s.Name] {
			t.Errorf("scenario name %s twice", s.Name)
		}
		seen[s.Name] = true
		if want := strings.TrimSuffix(filepath.Base(s.Path), ".json"); s.Name != want {
			t.Errorf("%s: name %q, file %s", s.Path, s.Name, want)
		}
	}
	if _, err := eval.LoadScenarios(t.TempDir()); !errors.Is(err, eval.ErrInvalidScenario) {
		t.Errorf("empty directory: got %v", err)
	}
}

func FuzzReadScenario(f *testing.F) {
	b, _ := os.ReadFile("../scenarios/exact.json")
	f.Add(b)
	f.Add([]byte(`{"version":1,"name":"x"}`))
	f.Add([]byte(`{"version":1,"name":"x","truth":{"changes":[{"at":-1}]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := eval.ReadScenario("fuzz.json", strings.NewReader(string(in)))
		if err != nil {
			return
		}
		_ = s.Exact()
	})
}
