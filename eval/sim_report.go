package eval

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteScenario prints one scenario's result as a table.
func WriteScenario(w io.Writer, r *ScenarioResult) error {
	prof := truthLabel(r)
	fmt.Fprintf(w, "scenario %s (%s, %d arms, %s; %d requests x %d seeds; %s) [simulated]\n",
		r.Scenario, r.Model, r.Arms, r.Objective, r.Requests, r.Seeds, prof)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tmean cost\tregret\t±sd\tSLO met\tfloor met\tKB/req\ttop arms\t")
	fmt.Fprintf(tw, "oracle\t%.2f\t0\t\t\t\t\t\t\n", r.OracleMeanCost)
	fmt.Fprintf(tw, "best fixed arm\t%.2f\t%.0f\t%.0f\t\t\t\t%s\t\n",
		r.OracleMeanCost+r.BestFixed.Regret/float64(max(r.Requests, 1)), r.BestFixed.Regret, r.BestFixed.RegretSD, r.BestFixed.Arm)
	for _, p := range r.Policies {
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.0f\t%.1f%%\t%.2f%%\t%.1f\t%s\t\n",
			p.Policy, p.MeanCost, p.Regret, p.RegretSD, 100*p.SLOShare, 100*p.FloorShare, p.MeanKB, topArms(p.Arms, 3))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for ci, at := range r.Changes {
		var parts []string
		for _, p := range r.Policies {
			if ci < len(p.Recovery) {
				parts = append(parts, fmt.Sprintf("%s %s", p.Policy, recoveryText(p.Recovery[ci].Requests)))
			}
		}
		fmt.Fprintf(w, "recovery after the change at request %d (conditions %s; rolling mean within 5%% of the oracle): %s\n", at, betterText(r.ChangeBetter[ci]), strings.Join(parts, ", "))
	}
	if len(r.Executors) > 0 {
		for _, p := range r.Policies {
			var parts []string
			for e, v := range p.ExecutorRegret {
				parts = append(parts, fmt.Sprintf("%s %.0f", r.Executors[e], v))
			}
			fmt.Fprintf(w, "regret per executor, %s: %s\n", p.Policy, strings.Join(parts, ", "))
		}
		if f := r.FleetRatios(); f != nil {
			fmt.Fprintf(w, "fleet: dyno / dyno-separate per executor at most %.3f; dyno-shared / dyno per executor at least %.2f\n", f.WorstVsSeparate, f.LeastSharedOver)
		}
	}
	for _, p := range r.Policies {
		if p.Errors > 0 {
			fmt.Fprintf(w, "note: %s failed on %d requests (ran device-only): %s\n", p.Policy, p.Errors, p.Error)
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// truthLabel says how the truth departs from what the policies see.
func truthLabel(r *ScenarioResult) string {
	switch {
	case r.Exact && r.CalibrationExact:
		return "profiles exact"
	case r.Exact:
		return "calibration wrong"
	case r.CalibrationExact:
		return "profiles wrong"
	}
	return "profiles and calibration wrong"
}

func betterText(better bool) string {
	if better {
		return "better"
	}
	return "worse"
}

func recoveryText(n int) string {
	if n < 0 {
		return "never"
	}
	return fmt.Sprintf("%d requests", n)
}

func topArms(a []ArmCount, k int) string {
	var total int
	for _, c := range a {
		total += c.Count
	}
	var parts []string
	for i, c := range a {
		if i == k {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", c.Arm, 100*float64(c.Count)/float64(total)))
	}
	return strings.Join(parts, " ")
}

// WriteRegretTable prints cumulative regret, policies x scenarios, with
// dyno's ratios to static and ANS where both ran.
func WriteRegretTable(w io.Writer, rs []*ScenarioResult) error {
	if len(rs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "cumulative regret vs the per-request oracle (mean over seeds) [simulated]\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "policy\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t", r.Scenario)
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "(truth)\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t", truthLabel(r))
	}
	fmt.Fprintln(tw)
	for _, p := range rs[0].Policies {
		fmt.Fprintf(tw, "%s\t", p.Policy)
		for _, r := range rs {
			if q := r.Policy(p.Policy); q != nil {
				fmt.Fprintf(tw, "%.0f\t", q.Regret)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	ratio := func(label, other string) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, r := range rs {
			d, o := r.Policy("dyno"), r.Policy(other)
			if d == nil || o == nil || o.Regret == 0 {
				fmt.Fprint(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%.3f\t", d.Regret/o.Regret)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "best fixed arm\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%.0f\t", r.BestFixed.Regret)
	}
	fmt.Fprintln(tw)
	ratio("dyno/static", "static")
	ratio("dyno/ans", "ans")
	fmt.Fprint(tw, "dyno/best fixed\t")
	for _, r := range rs {
		if d := r.Policy("dyno"); d != nil && r.BestFixed.Regret != 0 {
			fmt.Fprintf(tw, "%.3f\t", d.Regret/r.BestFixed.Regret)
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "dyno regret/oracle\t")
	for _, r := range rs {
		if d := r.Policy("dyno"); d != nil && r.OracleMeanCost > 0 {
			fmt.Fprintf(tw, "%.2f%%\t", 100*d.Regret/(r.OracleMeanCost*float64(r.Requests)))
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "dyno floor broken\t")
	for _, r := range rs {
		if d := r.Policy("dyno"); d != nil {
			fmt.Fprintf(tw, "%.2f%%\t", 100*(1-d.FloorShare))
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "dyno recovery (b better, w worse)\t")
	for _, r := range rs {
		d := r.Policy("dyno")
		if d == nil || len(d.Recovery) == 0 {
			fmt.Fprint(tw, "-\t")
			continue
		}
		var parts []string
		for _, rc := range d.Recovery {
			dir := "w"
			if rc.Better {
				dir = "b"
			}
			if rc.Requests < 0 {
				parts = append(parts, dir+":never")
			} else {
				parts = append(parts, dir+":"+strconv.Itoa(rc.Requests))
			}
		}
		fmt.Fprintf(tw, "%s\t", strings.Join(parts, "/"))
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

// WriteJSON writes the results as one JSON document.
func WriteJSON(w io.Writer, rs []*ScenarioResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Simulated bool              `json:"simulated"`
		Scenarios []*ScenarioResult `json:"scenarios"`
	}{true, rs})
}

// WriteCurves writes one CSV of learning curves per scenario into dir,
// named after the scenario: request, policy, cum_regret, rolling_cost,
// oracle_rolling_cost.
func WriteCurves(dir string, rs []*ScenarioResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, r := range rs {
		f, err := os.Create(filepath.Join(dir, r.Scenario+".csv"))
		if err != nil {
			return err
		}
		cw := csv.NewWriter(f)
		_ = cw.Write([]string{"request", "policy", "cum_regret", "rolling_cost", "oracle_rolling_cost"})
		for _, c := range r.Curves {
			_ = cw.Write([]string{strconv.Itoa(c.Request), c.Policy,
				strconv.FormatFloat(c.CumRegret, 'g', 8, 64),
				strconv.FormatFloat(c.RollingCost, 'g', 8, 64),
				strconv.FormatFloat(c.OracleRollingCost, 'g', 8, 64)})
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
