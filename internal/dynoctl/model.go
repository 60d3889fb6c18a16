package dynoctl

import "github.com/spf13/cobra"

// newModelCmd is `dynoctl model`: split ONNX models into blocks, build the zoo.
func newModelCmd() *cobra.Command {
	return &cobra.Command{Use: "model", Short: "Split ONNX models into blocks and build the model zoo"}
}
