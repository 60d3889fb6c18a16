package dynoctl_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/internal/dynoctl"
)

func TestSim(t *testing.T) {
	scenarios := filepath.Join("..", "..", "scenarios")
	curves := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		out  []string // substrings of stdout
		err  string   // substring of stderr
	}{
		{"one scenario", []string{"sim", "--scenario", filepath.Join(scenarios, "link-drop.json"), "--policies", "dyno,static", "--seeds", "1", "--requests", "8500"},
			dynoctl.ExitOK, []string{"scenario link-drop", "dyno", "static", "recovery after the change at request 8000"}, ""},
		{"suite", []string{"sim", "--scenario", filepath.Join(scenarios, "exact.json"), "--scenario", filepath.Join(scenarios, "device-2x.json"),
			"--policies", "dyno,static,ans", "--seeds", "1", "--requests", "300", "--curves", curves},
			dynoctl.ExitOK, []string{"cumulative regret", "dyno/static", "dyno/ans", "exact", "device-2x"}, ""},
		{"json", []string{"sim", "--scenario", filepath.Join(scenarios, "exact.json"), "--policies", "dyno", "--seeds", "1", "--requests", "200", "--json"},
			dynoctl.ExitOK, []string{`"simulated": true`, `"regret"`}, ""},
		{"no scenario", []string{"sim"}, dynoctl.ExitUsage, nil, "--scenario is required"},
		{"unknown policy", []string{"sim", "--scenario", filepath.Join(scenarios, "exact.json"), "--policies", "oracle"}, dynoctl.ExitUsage, nil, "unknown policy"},
		{"missing file", []string{"sim", "--scenario", "nowhere.json"}, dynoctl.ExitBadInput, nil, "nowhere.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := dynoctl.Main(tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			for _, want := range tc.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errb.String(), tc.err) {
				t.Errorf("stderr %q lacks %q", errb.String(), tc.err)
			}
			if tc.name == "json" {
				var v map[string]any
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Errorf("--json output does not parse: %v", err)
				}
			}
		})
	}
	for _, f := range []string{"exact.csv", "device-2x.csv"} {
		if _, err := os.Stat(filepath.Join(curves, f)); err != nil {
			t.Errorf("curves: %v", err)
		}
	}
}
