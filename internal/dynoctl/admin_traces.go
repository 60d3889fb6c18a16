package dynoctl

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/tracelog"
)

// traceRecord converts an exported trace to the trace log's record
// (tracelog.Record, docs/traces.md).
func traceRecord(t *api.Trace) *tracelog.Record {
	r := t.Report
	rec := &tracelog.Record{
		Schema: tracelog.SchemaVersion, ID: r.GetRequestId(), Key: r.GetKey(), Executor: t.ExecutorId, Seq: t.Seq,
		Policy: r.GetPolicyKind(), PolicyVersion: r.GetPolicyVersion(), ArmIndex: int(t.ArmIndex),
		Explore: r.GetExplore(), Propensity: r.GetPropensity(), Probs: r.GetProbs(), Accuracy: r.Accuracy, Cost: t.Cost,
	}
	if rec.ID == "" {
		// The executor's own number of the report identifies it too.
		rec.ID = "seq-" + strconv.FormatUint(r.GetSeq(), 10)
	}
	rec.StartUnixNano, rec.ReceivedUnixNano = r.GetStartUnixNano(), t.ReceivedUnixNano
	at := r.GetStartUnixNano()
	if at == 0 {
		at = t.ReceivedUnixNano
	}
	rec.Time = time.Unix(0, at).UTC()
	if a := r.GetArm(); a != nil {
		rec.Arm = costmodel.Arm{Split: int(a.Split), Bits: int(a.Bits)}
	}
	if c := r.GetConditions(); c != nil {
		rec.Conditions = costmodel.Conditions{BandwidthMbps: c.BandwidthMbps, RTTMs: c.RttMs, CloudQueueMs: c.CloudQueueMs, CloudSlowdown: c.CloudSlowdown, DeviceSlowdown: c.DeviceSlowdown}
	}
	if s := r.GetStages(); s != nil {
		rec.Observed = tracelog.Observed{DeviceMs: s.DeviceMs, PackMs: s.PackMs, Bytes: r.GetBytes(), NetworkMs: s.NetworkMs, RTTMs: s.RttMs,
			CloudQueueMs: s.CloudQueueMs, CloudMs: s.CloudMs, UnpackMs: s.UnpackMs, LatencyMs: s.LatencyMs}
	}
	for _, b := range r.GetAllowedBits() {
		rec.AllowedBits = append(rec.AllowedBits, int(b))
	}
	if len(r.GetEligible()) > 0 {
		rec.EligibleMask = hex.EncodeToString(r.GetEligible())
	}
	for i, b := range r.GetEligible() {
		for j := 0; j < 8; j++ {
			if b&(1<<j) != 0 {
				rec.Eligible = append(rec.Eligible, 8*i+j)
			}
		}
	}
	return rec
}

// parseSince reads --since: "seq:N", an RFC 3339 time, or a duration back
// from now.
func parseSince(s string, now time.Time) (seq uint64, unixNano int64, err error) {
	switch {
	case s == "":
		return 0, 0, nil
	case strings.HasPrefix(s, "seq:"):
		n, err := strconv.ParseUint(strings.TrimPrefix(s, "seq:"), 10, 64)
		if err != nil {
			return 0, 0, usageError{fmt.Errorf("--since %q: seq:N needs a number", s)}
		}
		return n, 0, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return 0, t.UnixNano(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return 0, now.Add(-d).UnixNano(), nil
	}
	return 0, 0, usageError{fmt.Errorf("--since %q: want a duration (1h), an RFC 3339 time or seq:N", s)}
}

func newTracesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "traces", Short: "Export the trace log for offline evaluation"}
	var c conn
	var out, since, key string
	var limit uint64
	export := &cobra.Command{
		Use:   "export --out FILE [--since ...]",
		Short: "Write the trace log to a file, one JSON record a line",
		Long: `traces export writes the controller's trace log, oldest first, to FILE (or "-"
for standard output) in the trace log's JSON Lines format (docs/traces.md,
package tracelog), which offline evaluation reads: one record a request with
its trace sequence number, executor, request id, conditions, eligible arms,
chosen arm and index, propensity (and distribution when the executor sent it),
policy version, stage times, bytes, accuracy signal and cost. --since selects
the records received in the last DURATION, since an RFC 3339 time, or from a
trace sequence number (seq:N). A file is written to FILE.tmp and renamed once
complete.`,
		Example: `  dynoctl traces export --out traces.jsonl
  dynoctl traces export --out last-hour.jsonl --since 1h --key mobilenetv2/phone-low/default
  dynoctl traces export --out - --since seq:1000000 --limit 10`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{errors.New("--out FILE is required (\"-\" for standard output)")}
			}
			seq, ns, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			var w io.Writer = cmd.OutOrStdout()
			var f *os.File
			tmp := out + ".tmp"
			if out != "-" {
				if f, err = os.Create(tmp); err != nil {
					return err
				}
				defer func() {
					f.Close()
					os.Remove(tmp)
				}()
				w = f
			}
			tw := tracelog.NewWriter(w)
			n := 0
			c.timeout = max(c.timeout, time.Hour)
			err = c.call(func(ctx context.Context, a api.AdminClient) error {
				s, err := a.ExportTraces(ctx, &api.ExportTracesRequest{SinceSeq: seq, SinceUnixNano: ns, Key: key, Limit: limit})
				if err != nil {
					return err
				}
				for {
					b, err := s.Recv()
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return err
					}
					for _, t := range b.Traces {
						if err := tw.Write(traceRecord(t)); err != nil {
							return fmt.Errorf("trace %d: %w", t.Seq, err)
						}
						n++
					}
				}
			})
			if err != nil {
				return err
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if f != nil {
				if err := f.Sync(); err != nil {
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp, out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d traces to %s\n", n, filepath.Clean(out))
			}
			return nil
		},
	}
	addConnFlags(export, &c)
	fl := export.Flags()
	fl.StringVar(&out, "out", "", "file to write (\"-\" for standard output)")
	fl.StringVar(&since, "since", "", "only traces received in the last DURATION, since an RFC 3339 time, or from seq:N")
	fl.StringVar(&key, "key", "", "only this key")
	fl.Uint64Var(&limit, "limit", 0, "at most this many traces (0: all)")
	cmd.AddCommand(export)
	return cmd
}
