// Package cli is the command tree of the dyno-executor binary: each command
// group is wired here from the executor package that does the work.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/executor/profile"
)

// Main runs dyno-executor with args and returns the process exit code: 0 on
// success, 1 on failure, 2 for bad flags or arguments.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "dyno-executor:", err)
	if cmd != nil && isUsage(err) {
		return 2
	}
	return 1
}

type usageError struct{ error }

func isUsage(err error) bool {
	_, ok := err.(usageError)
	return ok
}

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "dyno-executor",
		Short: "Run, profile and calibrate split CNN blocks on a device or cloud machine",
		Long: `dyno-executor runs the blocks of a split CNN through ONNX Runtime on the
device or the cloud side. cloud serves the blocks after a device's split;
device decides each request's split and precision with the policy the
controller publishes, runs the blocks before it, sends the tensor and
reports. profile and calibrate measure a model on this machine for DynO's
cost model.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newCloudCmd(), newDeviceCmd(), newLoadCmd(), profile.NewProfileCmd(), profile.NewCalibrateCmd())
	return root
}
