package dynoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
)

// printProto writes a message in protobuf's JSON mapping with the .proto
// field names (64-bit integers are strings in that mapping).
func printProto(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// show asks the controller with get and prints the answer: JSON with
// --json, else the table that table writes.
func show[T proto.Message](cmd *cobra.Command, c *conn, get func(context.Context, api.AdminClient) (T, error), table func(*tabwriter.Writer, T)) error {
	return c.call(func(ctx context.Context, a api.AdminClient) error {
		r, err := get(ctx, a)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if c.json {
			return printProto(w, r)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		table(tw, r)
		return tw.Flush()
	})
}

func newStatusCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the controller's state: store, trace log, ingest counters, memory",
		Long: `status asks the controller how it is doing: its store file and schema, the
trace log's range, the reports accepted, resent (duplicates) and rejected, the
commits, keys, executors and watchers, the InfluxDB points written and
dropped, and its memory.`,
		Example: `  dynoctl status --ca controller.crt --token-file admin.token
  dynoctl status --json | jq .traces`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			get := func(ctx context.Context, a api.AdminClient) (*api.StatusResponse, error) {
				return a.Status(ctx, &api.StatusRequest{})
			}
			return show(cmd, &c, get, func(tw *tabwriter.Writer, s *api.StatusResponse) {
				row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
				row("version", "%s", s.Version)
				row("up since", "%s (%s)", unixTime(s.StartedUnixNano), ago(s.StartedUnixNano))
				row("store", "%s, %s, schema %d", s.StorePath, bytesString(uint64(s.StoreBytes)), s.SchemaVersion)
				row("traces", "%d (seq %d..%d)", s.Traces, s.FirstTraceSeq, s.LastTraceSeq)
				row("reports", "%d accepted, %d duplicates, %d rejected", s.ReportsAccepted, s.ReportsDuplicate, s.ReportsRejected)
				row("commits", "%d", s.Commits)
				row("policies", "%d published (bandit %s)", s.PoliciesPublished, s.Bandit)
				row("keys", "%d", s.Keys)
				row("executors", "%d", s.Executors)
				row("watchers", "%d", s.Watchers)
				if s.InfluxEnabled {
					row("influxdb", "%d points written, %d dropped", s.InfluxPointsWritten, s.InfluxPointsDropped)
				} else {
					row("influxdb", "off")
				}
				row("memory", "heap %s (Go runtime %s), rss %s = %s anonymous + %s of the store's memory map, peak rss %s",
					bytesString(s.HeapBytes), bytesString(s.GoSysBytes), bytesString(s.RssBytes), bytesString(s.AnonRssBytes), bytesString(s.FileRssBytes), bytesString(s.PeakRssBytes))
			})
		},
	}
	addConnFlags(cmd, &c)
	return cmd
}

func newKeysCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List the keys (model/device-class/objective) the controller learns",
		Long: `keys lists every key: the version of its policy, the reports it learned since
its last reset and in all, its executors and watchers, its pin and objective,
and when its policy was last published.`,
		Example: `  dynoctl keys
  dynoctl keys --json | jq -r '.keys[].key'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			get := func(ctx context.Context, a api.AdminClient) (*api.ListKeysResponse, error) {
				return a.ListKeys(ctx, &api.ListKeysRequest{})
			}
			return show(cmd, &c, get, func(tw *tabwriter.Writer, r *api.ListKeysResponse) {
				fmt.Fprintln(tw, "KEY\tVERSION\tREPORTS\tTOTAL\tPENDING\tEXECUTORS\tWATCHERS\tPIN\tOBJECTIVE\tPUBLISHED")
				for _, k := range r.Keys {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", k.Key, k.Version, k.Reports, k.TotalReports, k.PendingReports, k.Executors, k.Watchers,
						pinString(k.Pin), objectiveString(k.Objective), ago(k.PublishedUnixNano))
				}
			})
		},
	}
	addConnFlags(cmd, &c)
	return cmd
}

func newExecutorsCmd() *cobra.Command {
	var c conn
	var req api.ListExecutorsRequest
	var notSeen time.Duration
	cmd := &cobra.Command{
		Use:   "executors",
		Short: "List the registered executors (remove takes them out)",
		Long: `executors lists the executors that registered: its key, whether it is
connected now, when it was last seen, how many of its reports were applied and
up to which sequence number they are acknowledged, the policy version it last
ACKed, its last NACK, and its owner: the identity that registered it first
("token:NAME", or "cert:SUBJECT" under mutual TLS), the only one that may act
as it. The controller answers
in pages (--page-size); every page is read. --key, --token, --prefix,
--connected and --not-seen filter.`,
		Example: `  dynoctl executors
  dynoctl executors --token fleet --not-seen 24h
  dynoctl executors --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.NotSeenForMs = notSeen.Milliseconds()
			get := func(ctx context.Context, a api.AdminClient) (*api.ListExecutorsResponse, error) {
				all := &api.ListExecutorsResponse{}
				r := proto.Clone(&req).(*api.ListExecutorsRequest)
				for {
					page, err := a.ListExecutors(ctx, r)
					if err != nil {
						return nil, err
					}
					all.Executors = append(all.Executors, page.Executors...)
					all.Total = page.Total
					if page.NextPageToken == "" {
						return all, nil
					}
					r.PageToken = page.NextPageToken
				}
			}
			return show(cmd, &c, get, func(tw *tabwriter.Writer, r *api.ListExecutorsResponse) {
				fmt.Fprintln(tw, "EXECUTOR\tKEY\tCONNECTED\tLAST SEEN\tREPORTS\tACKED SEQ\tACKED VERSION\tPOLICY USED\tTOP ARM\tLAST NACK\tOWNER\tLABELS")
				for _, e := range r.Executors {
					var labels []string
					for k, v := range e.Labels {
						labels = append(labels, k+"="+v)
					}
					sort.Strings(labels)
					nack := e.LastNack
					if nack == "" {
						nack = "-"
					}
					used, top := "-", "-"
					if e.ReportedPolicyVersion > 0 {
						used = fmt.Sprintf("v%d", e.ReportedPolicyVersion)
					}
					if a := e.TopArm; a != nil {
						top = fmt.Sprintf("s%d/b%d (%.0f%%)", a.Split, a.Bits, 100*e.TopArmShare)
					}
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", e.ExecutorId, e.Key, e.Connected, ago(e.LastSeenUnixNano),
						e.Reports, e.AckedThroughSeq, e.AckedVersion, used, top, nack, orNone(e.Owner), strings.Join(labels, ","))
				}
			})
		},
	}
	addConnFlags(cmd, &c)
	fl := cmd.Flags()
	fl.Uint32Var(&req.PageSize, "page-size", 1000, "executors per call (at most 10000)")
	fl.StringVar(&req.Key, "key", "", "only the executors of this key")
	fl.StringVar(&req.TokenName, "token", "", "only those registered with this token")
	fl.StringVar(&req.IdPrefix, "prefix", "", "only ids starting with this")
	fl.BoolVar(&req.ConnectedOnly, "connected", false, "only those connected now")
	fl.DurationVar(&notSeen, "not-seen", 0, "only those not seen for this long")
	cmd.AddCommand(newExecutorsRemoveCmd())
	return cmd
}

func newExecutorsRemoveCmd() *cobra.Command {
	var c conn
	var notSeen time.Duration
	cmd := &cobra.Command{
		Use:   "remove [ID...] [--not-seen DUR]",
		Short: "Take executors out of the fleet",
		Long: `executors remove deletes executors' records, report windows and counts; their
streams end and each id is free to register again (for any token). --not-seen
also removes every executor not seen for that long. Ids that are not
registered are named, not refused.`,
		Example: `  dynoctl executors remove cam-7 cam-8
  dynoctl executors remove --not-seen 720h`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && notSeen <= 0 {
				return usageError{errors.New("name executor ids, or give --not-seen DURATION")}
			}
			get := func(ctx context.Context, a api.AdminClient) (*api.RemoveExecutorsResponse, error) {
				return a.RemoveExecutors(ctx, &api.RemoveExecutorsRequest{ExecutorIds: args, NotSeenForMs: notSeen.Milliseconds()})
			}
			return show(cmd, &c, get, func(tw *tabwriter.Writer, r *api.RemoveExecutorsResponse) {
				for _, id := range r.Removed {
					fmt.Fprintf(tw, "removed %s\n", id)
				}
				for _, id := range r.Unknown {
					fmt.Fprintf(tw, "not registered: %s\n", id)
				}
				fmt.Fprintf(tw, "%d removed\n", len(r.Removed))
			})
		},
	}
	addConnFlags(cmd, &c)
	cmd.Flags().DurationVar(&notSeen, "not-seen", 0, "also remove every executor not seen for this long")
	return cmd
}

func newAuditCmd() *cobra.Command {
	var c conn
	var since uint64
	var limit uint32
	cmd := &cobra.Command{
		Use:   "audit [KEY]",
		Short: "Show the audit log of operators' changes",
		Long: `audit prints the operators' changes (pin, unpin, reset, objective, and pins
lifted when their time ran out), oldest first: when, by whom, to which key,
and the policy version that carried it, with the detail as JSON. KEY limits it
to one key.`,
		Example: `  dynoctl audit
  dynoctl audit mobilenetv2/phone-low/default --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return keyArg(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &api.ListAuditRequest{SinceSeq: since, Limit: limit}
			if len(args) == 1 {
				req.Key = args[0]
			}
			get := func(ctx context.Context, a api.AdminClient) (*api.ListAuditResponse, error) {
				return a.ListAudit(ctx, req)
			}
			return show(cmd, &c, get, func(tw *tabwriter.Writer, r *api.ListAuditResponse) {
				fmt.Fprintln(tw, "SEQ\tAT\tBY\tACTION\tKEY\tVERSION\tDETAIL")
				for _, e := range r.Events {
					d := e.DetailJson
					if d == "" {
						d = "-"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Seq, unixTime(e.AtUnixNano), e.By, e.Action, e.Key, e.Version, d)
				}
			})
		},
	}
	addConnFlags(cmd, &c)
	cmd.Flags().Uint64Var(&since, "since-seq", 0, "from this event on")
	cmd.Flags().Uint32Var(&limit, "limit", 0, "at most this many events (0: 1000)")
	return cmd
}
