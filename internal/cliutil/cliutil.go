// Package cliutil is what the command trees of dyno-controller,
// dyno-executor and dynoctl share: the exit codes the README promises, the
// build's version string, and the wiring that makes cobra report every
// misuse as one. It holds no commands itself.
package cliutil

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of every dyno binary.
const (
	ExitOK       = 0
	ExitFailure  = 1 // the command ran and failed
	ExitUsage    = 2 // bad flags or arguments
	ExitBadInput = 3 // an input file (or what a server was asked about) was invalid
)

// Strict makes the tree under root report each misuse through usage, which
// wraps the error in the binary's own usage-error type: an unknown flag, a
// wrong number of arguments, and an unknown subcommand of root or of any
// command group. Left alone, cobra answers `dynoctl traces bogus` with the
// group's help and success. Call it once the tree is complete.
func Strict(root *cobra.Command, usage func(error) error) {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	walk(root, func(c *cobra.Command) {
		if c.HasAvailableSubCommands() && !c.Runnable() {
			c.Args = func(c *cobra.Command, args []string) error {
				if len(args) == 0 {
					return nil
				}
				msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
				if c.SuggestionsMinimumDistance <= 0 {
					c.SuggestionsMinimumDistance = 2 // cobra's own default
				}
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
				}
				return usage(fmt.Errorf("%s; %s --help lists the commands", msg, c.CommandPath()))
			}
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
			return
		}
		if check := c.Args; check != nil {
			c.Args = func(c *cobra.Command, args []string) error {
				if err := check(c, args); err != nil {
					return usage(fmt.Errorf("%s: %w (usage: %s)", c.Name(), err, c.UseLine()))
				}
				return nil
			}
		}
	})
}

func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}
