package dynoctl

import "github.com/spf13/cobra"

// newPlanCmd is `dynoctl plan`: the static DynO ranking of a model's arms.
func newPlanCmd() *cobra.Command {
	return &cobra.Command{Use: "plan", Short: "Rank every arm of a model with DynO's cost model"}
}
