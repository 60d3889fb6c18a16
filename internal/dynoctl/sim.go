package dynoctl

import "github.com/spf13/cobra"

// newSimCmd is `dynoctl sim`: run policies through a simulated scenario.
func newSimCmd() *cobra.Command {
	return &cobra.Command{Use: "sim", Short: "Run policies through a simulated scenario and compare their regret"}
}
