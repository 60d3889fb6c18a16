// Package cli is the command tree of the dyno-executor binary: each command
// group is wired here from the executor package that does the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/profile"
	"github.com/dynoml/dyno/internal/cliutil"
	"github.com/dynoml/dyno/model"
)

// Main runs dyno-executor with args and returns the process exit code: 0 on
// success, 1 on failure, 2 for bad flags or arguments, 3 for an invalid
// input file (a missing or damaged model folder, an unsplit .onnx, a
// calibration file of the wrong size).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.Version = cliutil.VersionString()
	root.SetVersionTemplate("dyno-executor {{.Version}}\n")
	cliutil.Strict(root, func(err error) error { return usageError{err} })
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	_, err := root.ExecuteContextC(ctx)
	if err == nil {
		return cliutil.ExitOK
	}
	fmt.Fprintln(stderr, "dyno-executor:", err)
	return exitCode(err)
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// exitCode sorts an error into the README's exit codes.
func exitCode(err error) int {
	switch {
	case isUsage(err), errors.Is(err, profile.ErrConfig):
		return cliutil.ExitUsage
	case errors.Is(err, ort.ErrNoLibrary):
		return cliutil.ExitFailure
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ort.ErrNotSplit), errors.Is(err, profile.ErrInput),
		errors.Is(err, model.ErrInvalidManifest), errors.Is(err, model.ErrCorrupt), errors.Is(err, model.ErrUnsupported):
		return cliutil.ExitBadInput
	}
	return cliutil.ExitFailure
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
