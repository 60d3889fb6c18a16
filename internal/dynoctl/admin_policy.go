package dynoctl

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Inspect the published policies of keys"}
	var c conn
	var stateOut string
	var bandwidth, rtt float64
	show := &cobra.Command{
		Use:   "show KEY",
		Short: "Show the latest published policy of a key",
		Long: `policy show prints the latest published version of a key's policy: why it
was published, the objective, the pin, the reports behind it, the bandit and
the size of its state; then what it does at --bandwidth and --rtt: its greedy
arm (lowest expected cost under the posterior) with its probability and cost,
the static DynO choice, the arms it most often chooses, and the posterior means
of the stage coefficients (slope and offset of device, transfer, rtt, queue
and cloud against the cost model). --state writes the bandit's serialised state (what
executors restore to choose locally) to a file.`,
		Example: `  dynoctl policy show mobilenetv2/phone-low/default
  dynoctl policy show mobilenetv2/phone-low/default --json
  dynoctl policy show mobilenetv2/phone-low/default --state policy.bin`,
		Args: keyArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.call(func(ctx context.Context, a api.AdminClient) error {
				p, err := a.GetPolicy(ctx, &api.GetPolicyRequest{Key: args[0], BandwidthMbps: bandwidth, RttMs: rtt})
				if err != nil {
					return err
				}
				if stateOut != "" {
					state, err := p.DecodedBanditState()
					if err != nil {
						return err
					}
					if err := os.WriteFile(stateOut, state, 0o644); err != nil {
						return err
					}
				}
				w := cmd.OutOrStdout()
				if c.json {
					return printProto(w, p)
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
				row("key", "%s", p.Key)
				row("version", "%d (%s), published %s", p.Version, p.Reason, unixTime(p.PublishedUnixNano))
				row("model", "%s on %s, cloud %s", p.Model, p.DeviceClass, p.CloudClass)
				row("objective", "%s: %s", p.ObjectiveName, objectiveString(p.Objective))
				row("pin", "%s", pinString(p.Pin))
				row("reports", "%d since the last reset, %d in all", p.Reports, p.TotalReports)
				row("bandit", "%s, state %s (%s)", p.BanditKind, bytesString(uint64(len(p.BanditState))), orNone(p.BanditStateEncoding))
				row("floors", "%s", floorsString(p))
				if s := p.Summary; s != nil {
					c := s.Conditions
					row("at", "%g Mbit/s, %g ms RTT", c.GetBandwidthMbps(), c.GetRttMs())
					row("greedy arm", "%s, probability %.3g, expected cost %.4g (%s)", armString(s.Greedy), s.GreedyProbability, s.GreedyExpectedCost, s.CostFrom)
					row("static DynO", "%s, cost %.4g (cost model)", armString(s.StaticArm), s.StaticCost)
					for i, a := range s.Top {
						row(fmt.Sprintf("top %d", i+1), "%s, probability %.3g, expected cost %.4g", armString(a.Arm), a.Probability, a.ExpectedCost)
					}
					for _, st := range s.Stages {
						row("posterior "+st.Stage, "%.4g, %.4g (noise sd %.3g)", st.Coefficient, st.Second, st.NoiseSd)
					}
				}
				return tw.Flush()
			})
		},
	}
	addConnFlags(show, &c)
	show.Flags().StringVar(&stateOut, "state", "", "write the bandit state to this file")
	show.Flags().Float64Var(&bandwidth, "bandwidth", 10, "summarise the policy at this bandwidth (Mbit/s)")
	show.Flags().Float64Var(&rtt, "rtt", 40, "and this round-trip time (ms)")
	cmd.AddCommand(show, newPolicyExploreCmd())
	return cmd
}

// printChange prints the outcome of an operator's change.
func printChange(cmd *cobra.Command, c *conn, ch *api.AdminChange) error {
	w := cmd.OutOrStdout()
	if c.json {
		return printProto(w, ch)
	}
	_, err := fmt.Fprintf(w, "%s %s: in effect from version %d (by %s at %s)\n", ch.Action, ch.Key, ch.Version, ch.By, unixTime(ch.AtUnixNano))
	return err
}

func newPinCmd() *cobra.Command {
	var c conn
	var split, bits int
	var dur time.Duration
	var reason string
	cmd := &cobra.Command{
		Use:   "pin KEY --split S --bits B [--for DUR]",
		Short: "Force every executor of a key onto one arm",
		Long: `pin makes every executor of the key choose one arm (split S, bits B) with
probability one, until unpinned or, with --for, for a while. The bandit keeps
learning from the reports meanwhile. The pin takes effect in the version it
publishes, which is printed, and is recorded with who and when.`,
		Example: `  dynoctl pin mobilenetv2/phone-low/default --split 5 --bits 8
  dynoctl pin mobilenetv2/phone-low/default --split 0 --bits 32 --for 10m --reason "cloud-only while the phone fleet updates"`,
		Args: keyArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("split") || !cmd.Flags().Changed("bits") {
				return usageError{fmt.Errorf("pin needs --split and --bits")}
			}
			if split < 0 || bits <= 0 || dur < 0 {
				return usageError{fmt.Errorf("--split %d --bits %d --for %s: need split >= 0, bits > 0, duration >= 0", split, bits, dur)}
			}
			return c.call(func(ctx context.Context, a api.AdminClient) error {
				ch, err := a.Pin(ctx, &api.PinRequest{Key: args[0], Arm: &api.Arm{Split: uint32(split), Bits: uint32(bits)}, DurationMs: dur.Milliseconds(), Reason: reason})
				if err != nil {
					return err
				}
				return printChange(cmd, &c, ch)
			})
		},
	}
	addConnFlags(cmd, &c)
	cmd.Flags().IntVar(&split, "split", 0, "blocks run on the device (0 = cloud-only, K = device-only)")
	cmd.Flags().IntVar(&bits, "bits", 32, "precision of the activations sent: 32, 16, 8, 6, 4, 3 or 2")
	cmd.Flags().DurationVar(&dur, "for", 0, "lift the pin after this long (default: until unpinned)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	return cmd
}

func newUnpinCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:     "unpin KEY",
		Short:   "Lift a key's pin: the bandit chooses again",
		Long:    `unpin lifts the key's pin in the version it publishes, which is printed.`,
		Example: `  dynoctl unpin mobilenetv2/phone-low/default`,
		Args:    keyArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.call(func(ctx context.Context, a api.AdminClient) error {
				ch, err := a.Unpin(ctx, &api.UnpinRequest{Key: args[0]})
				if err != nil {
					return err
				}
				return printChange(cmd, &c, ch)
			})
		},
	}
	addConnFlags(cmd, &c)
	return cmd
}

func newResetCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:   "reset KEY",
		Short: "Return a key's policy to the cost model's prior",
		Long: `reset forgets what the key's bandit learned and starts again from the cost
model's prior, in the version it publishes. The trace log is kept: offline
evaluation still sees every report.`,
		Example: `  dynoctl reset mobilenetv2/phone-low/default`,
		Args:    keyArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.call(func(ctx context.Context, a api.AdminClient) error {
				ch, err := a.Reset(ctx, &api.ResetRequest{Key: args[0]})
				if err != nil {
					return err
				}
				return printChange(cmd, &c, ch)
			})
		},
	}
	addConnFlags(cmd, &c)
	return cmd
}

func newObjectiveCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "objective", Short: "Change what a key's policy minimises"}
	var c conn
	var kind, weights string
	var floor, slo, penalty float64
	set := &cobra.Command{
		Use:   "set KEY --kind KIND [--floor F] [--slo MS] [--weights ...]",
		Short: "Set a key's objective",
		Long: `objective set replaces the key's objective, in the version it publishes:
max-throughput, min-latency, min-cloud-cost (needs --slo) or weighted (needs
--weights), with an accuracy floor and an optional latency SLO.`,
		Example: `  dynoctl objective set mobilenetv2/phone-low/default --kind min-cloud-cost --slo 150 --floor 0.7
  dynoctl objective set mobilenetv2/phone-low/default --kind weighted --weights latency=1,kb=0.01`,
		Args: keyArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := parseWeights(weights)
			if err != nil {
				return err
			}
			o := costmodel.Objective{Kind: costmodel.ObjectiveKind(kind), AccuracyFloor: floor, LatencySLOMs: slo, SLOPenalty: penalty, Weights: w}
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			return c.call(func(ctx context.Context, a api.AdminClient) error {
				ch, err := a.SetObjective(ctx, &api.SetObjectiveRequest{Key: args[0], Objective: &api.Objective{
					Kind: kind, AccuracyFloor: floor, LatencySloMs: slo, SloPenalty: penalty,
					Weights: &api.Weights{LatencyMs: w.LatencyMs, BottleneckMs: w.BottleneckMs, CloudGpuMs: w.CloudGPUMs, Kb: w.KB}}})
				if err != nil {
					return err
				}
				return printChange(cmd, &c, ch)
			})
		},
	}
	addConnFlags(set, &c)
	fl := set.Flags()
	fl.StringVar(&kind, "kind", "", "max-throughput, min-latency, min-cloud-cost or weighted")
	fl.Float64Var(&floor, "floor", 0, "accuracy floor in [0, 1]")
	fl.Float64Var(&slo, "slo", 0, "latency SLO, ms (0 for none)")
	fl.Float64Var(&penalty, "slo-penalty", 0, "cost per ms over the SLO (0 = default 10)")
	fl.StringVar(&weights, "weights", "", "weighted objective: latency=W,bottleneck=W,cloud=W,kb=W")
	cmd.AddCommand(set)
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "uncompressed"
	}
	return s
}
