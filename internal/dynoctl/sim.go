package dynoctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/eval"
)

// newSimCmd is `dynoctl sim`: run policies through a simulated scenario.
func newSimCmd() *cobra.Command {
	var (
		scenarios []string
		policies  string
		asJSON    bool
		seeds     int
		requests  int
		parallel  int
		curves    string
		traces    string
		floor     float64
		baseFloor float64
	)
	cmd := &cobra.Command{
		Use:   "sim --scenario FILE|DIR [--scenario ...]",
		Short: "Run policies through a simulated scenario and compare their regret",
		Long: `sim runs each policy through each scenario (a JSON file, or every *.json of a
directory; see docs/simulator.md) for several seeds and reports, per policy, the
mean cost, the cumulative regret against a per-request oracle that knows the
true costs, the share of requests that met the SLO and the accuracy floor, the
kilobytes sent, the arms chosen and the recovery time after each abrupt change.
With more than one scenario it ends with the regret table, policies x
scenarios. Every figure is simulated.

Policies: ` + strings.Join(bandit.Names(), ", ") + `.`,
		Example: `  dynoctl sim --scenario scenarios/device-2x.json
  dynoctl sim --scenario scenarios --seeds 5 --curves out/curves
  dynoctl sim --scenario scenarios/exact.json --policies dyno,static --requests 2000 --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(scenarios) == 0 {
				return usageError{errors.New("--scenario is required")}
			}
			var names []string
			for _, p := range strings.Split(policies, ",") {
				if p = strings.TrimSpace(p); p != "" {
					names = append(names, p)
				}
			}
			opt := eval.Options{Policies: names, Seeds: seeds, Requests: requests, Parallel: parallel, Traces: traces,
				Dyno: bandit.DynoConfig{ExploreFloor: floor, BaselineFloor: baseFloor}}
			ss, err := eval.LoadScenarios(scenarios...)
			if err != nil {
				return badInput(err)
			}
			rs, err := eval.Run(cmd.Context(), ss, opt)
			if err != nil {
				if errors.Is(err, eval.ErrInvalidOptions) {
					return usageError{err}
				}
				if errors.Is(err, eval.ErrInvalidScenario) || errors.Is(err, eval.ErrInvalidTrace) {
					return badInput(err)
				}
				return err
			}
			out := cmd.OutOrStdout()
			if curves != "" {
				if err := eval.WriteCurves(curves, rs); err != nil {
					return fmt.Errorf("write curves: %w", err)
				}
			}
			if asJSON {
				return eval.WriteJSON(out, rs)
			}
			for _, r := range rs {
				if err := eval.WriteScenario(out, r); err != nil {
					return err
				}
			}
			if len(rs) > 1 {
				return eval.WriteRegretTable(out, rs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&scenarios, "scenario", nil, "scenario file or directory of *.json scenarios (repeatable)")
	f.StringVar(&policies, "policies", strings.Join(bandit.Names(), ","), "comma-separated policies to run")
	f.BoolVar(&asJSON, "json", false, "print a machine-readable JSON summary instead of tables")
	f.IntVar(&seeds, "seeds", 5, "seeds per scenario")
	f.IntVar(&requests, "requests", 0, "override the scenario's request count")
	f.IntVar(&parallel, "parallel", 0, "simulations run at once (0: GOMAXPROCS)")
	f.StringVar(&curves, "curves", "", "write learning curves as CSV (one file per scenario) into this directory")
	f.Float64Var(&floor, "explore-floor", 0, fmt.Sprintf("dyno's exploration floor: the share of probability spread over every eligible arm (0: the default %g; negative: off)", bandit.DefaultExploreFloor))
	f.Float64Var(&baseFloor, "baseline-floor", 0, fmt.Sprintf("dyno's floor on each baseline's arm (static, device, cloud), capped to a tenth of the best cost (0: the default %g; negative: off)", bandit.DefaultBaselineFloor))
	f.StringVar(&traces, "traces", "", "write every simulated request as trace records (docs/traces.md) into this directory, one JSON Lines file per scenario, policy and seed")
	return cmd
}
