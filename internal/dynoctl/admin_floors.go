package dynoctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
)

func newPolicyExploreCmd() *cobra.Command {
	var c conn
	var explore, baseline float64
	cmd := &cobra.Command{
		Use:   "explore KEY [--explore-floor X] [--baseline-floor Y]",
		Short: "Set the exploration floors of a key's dyno policy",
		Long: fmt.Sprintf(`policy explore sets the floors of probability that keep a key's trace log
evaluable offline, in the version it publishes, which is printed: the
exploration floor is the share spread over every eligible arm, in (0, 0.5];
the baseline floor is the least probability of each arm that static DynO,
device-only or cloud-only would choose, in (0, 0.05]. 0 returns a floor to
its default (%g and %g), a negative value turns it off; a floor not given
keeps its value. The controller keeps them in its store and records who set
them and when; dynoctl policy show prints the floors in force. Only keys
that learn with dyno have floors.`, bandit.DefaultExploreFloor, bandit.DefaultBaselineFloor),
		Example: `  dynoctl policy explore mobilenetv2/phone-low/default --explore-floor 0.1
  dynoctl policy explore mobilenetv2/phone-low/default --baseline-floor -1
  dynoctl policy explore mobilenetv2/phone-low/default --explore-floor 0 --baseline-floor 0`,
		Args: keyArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &api.SetFloorsRequest{Key: args[0]}
			if cmd.Flags().Changed("explore-floor") {
				req.ExploreFloor = &explore
			}
			if cmd.Flags().Changed("baseline-floor") {
				req.BaselineFloor = &baseline
			}
			if req.ExploreFloor == nil && req.BaselineFloor == nil {
				return usageError{fmt.Errorf("policy explore needs --explore-floor or --baseline-floor")}
			}
			if err := bandit.CheckFloors(explore, baseline); err != nil {
				return usageError{err}
			}
			return c.call(func(ctx context.Context, a api.AdminClient) error {
				ch, err := a.SetFloors(ctx, req)
				if err != nil {
					return err
				}
				return printChange(cmd, &c, ch)
			})
		},
	}
	addConnFlags(cmd, &c)
	cmd.Flags().Float64Var(&explore, "explore-floor", 0, "share of probability spread over every eligible arm (0: the default; negative: off)")
	cmd.Flags().Float64Var(&baseline, "baseline-floor", 0, "least probability of each baseline's arm (0: the default; negative: off)")
	return cmd
}

// floorsString says which exploration floors a published policy has.
func floorsString(p *api.Policy) string {
	if p.BanditKind != bandit.NameDyno {
		return "none (" + p.BanditKind + ")"
	}
	if p.ExploreFloor == 0 && p.BaselineFloor == 0 {
		return "not stated in this version (see the bandit state)"
	}
	f := func(v float64) string {
		if v < 0 {
			return "off"
		}
		return fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("explore %s, baseline %s", f(p.ExploreFloor), f(p.BaselineFloor))
}
