// Package dynoctl is the command tree of the dynoctl binary. Each command
// group lives in its own file; the domain work lives in the packages they
// call.
package dynoctl

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/internal/cliutil"
)

// Exit codes scripts can rely on (the same for every dyno binary).
const (
	ExitOK       = cliutil.ExitOK
	ExitFailure  = cliutil.ExitFailure  // the command ran and failed
	ExitUsage    = cliutil.ExitUsage    // bad flags or arguments
	ExitBadInput = cliutil.ExitBadInput // an input file or value was invalid
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

// badInputError marks errors in what the command was given to read.
type badInputError struct{ error }

func badInput(err error) error {
	if err == nil {
		return nil
	}
	return badInputError{err}
}

// Main runs dynoctl with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "dynoctl:", err)
	var u usageError
	var b badInputError
	switch {
	case errors.As(err, &u):
		return ExitUsage
	case errors.As(err, &b):
		return ExitBadInput
	}
	return ExitFailure
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "dynoctl",
		Short: "Plan, simulate, evaluate and operate dyno's split-inference policies",
		Long: `dynoctl is the command-line tool of dyno, which decides for every CNN
inference request where to split the network between a device and a cloud GPU
and at what precision to send the activations across the split.`,
		Version: cliutil.VersionString(),
	}
	root.SetVersionTemplate("dynoctl {{.Version}}\n")
	root.AddCommand(append([]*cobra.Command{newPlanCmd(), newModelCmd(), newSimCmd(), newEvalCmd()}, adminCommands()...)...)
	cliutil.Strict(root, func(err error) error { return usageError{err} })
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
