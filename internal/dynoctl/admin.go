package dynoctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/api"
)

// adminCommands are the commands that call a running controller.
func adminCommands() []*cobra.Command {
	return []*cobra.Command{
		newStatusCmd(), newKeysCmd(), newPolicyCmd(), newPinCmd(), newUnpinCmd(), newResetCmd(),
		newObjectiveCmd(), newTracesCmd(), newExecutorsCmd(), newBackupCmd(), newAuditCmd(),
	}
}

// adminHelp is the part of every admin command's help that says how it
// reaches the controller and what its exit codes mean.
const adminHelp = `
The controller is reached at --addr (default $DYNO_ADDR, else 127.0.0.1:7070)
over TLS, trusting --ca (default $DYNO_CA; the controller's self-signed
certificate from ` + "`dyno-controller gen-cert`" + `, or the system roots), with the
bearer token of --token-file or $DYNO_TOKEN. Admin calls need a token with the
admin scope.

Exit codes: 0 done; 1 failed (controller unreachable, token refused, internal
error); 2 bad flags or arguments; 3 the controller rejected the input (invalid
argument, or no such key).`

// conn holds the flags of the connection to the controller.
type conn struct {
	addr, tokenFile, ca, serverName string
	insecure, json                  bool
	timeout                         time.Duration
}

func addConnFlags(cmd *cobra.Command, c *conn) {
	fl := cmd.Flags()
	fl.StringVar(&c.addr, "addr", envOr("DYNO_ADDR", "127.0.0.1:7070"), "controller address (env DYNO_ADDR)")
	fl.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token (default: env DYNO_TOKEN)")
	fl.StringVar(&c.ca, "ca", os.Getenv("DYNO_CA"), "PEM certificate(s) to trust: the controller's self-signed certificate or its CA (env DYNO_CA; default: system roots)")
	fl.StringVar(&c.serverName, "server-name", "", "name to verify in the controller's certificate (default: the host of --addr)")
	fl.BoolVar(&c.insecure, "insecure", false, "plaintext, for a controller started with --insecure")
	fl.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of the call")
	fl.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	cmd.Long += "\n" + adminHelp
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c *conn) token() (string, error) {
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", usageError{fmt.Errorf("--token-file: %v", err)}
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := os.Getenv("DYNO_TOKEN"); t != "" {
		return t, nil
	}
	return "", usageError{errors.New("no token: give --token-file or set DYNO_TOKEN")}
}

func (c *conn) dial() (*grpc.ClientConn, error) {
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	o := api.DialOptions{Token: tok, Insecure: c.insecure}
	if !c.insecure {
		if o.TLS, err = api.ClientTLS(c.ca, c.serverName); err != nil {
			return nil, usageError{fmt.Errorf("--ca: %v", err)}
		}
	}
	cc, err := api.Dial(c.addr, o)
	if err != nil {
		return nil, usageError{err}
	}
	return cc, nil
}

// call dials, runs fn with an admin client and a deadline, and maps the
// controller's refusals to exit codes.
func (c *conn) call(fn func(ctx context.Context, a api.AdminClient) error) error {
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return rpcError(fn(ctx, api.NewAdminClient(cc)))
}

// rpcError maps a gRPC status to dynoctl's exit codes; the message keeps
// the code's name so that scripts reading stderr can tell more apart.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := fmt.Errorf("%s: %s", st.Code(), st.Message())
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		return badInputError{e}
	}
	return e
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// keyArg validates the KEY argument.
func keyArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("%s takes one KEY (model/device-class/objective; `dynoctl keys` lists them), got %d arguments", cmd.CommandPath(), len(args))}
	}
	if strings.Count(args[0], "/") != 2 {
		return usageError{fmt.Errorf("KEY %q is not model/device-class/objective", args[0])}
	}
	return nil
}

func unixTime(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339)
}

func ago(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Since(time.Unix(0, ns)).Round(time.Second).String() + " ago"
}

func armString(a *api.Arm) string {
	if a == nil {
		return "-"
	}
	return fmt.Sprintf("s%d/b%d", a.Split, a.Bits)
}

func pinString(p *api.Pin) string {
	if p == nil {
		return "-"
	}
	s := armString(p.Arm) + " by " + p.By
	if p.UntilUnixNano != 0 {
		s += " until " + unixTime(p.UntilUnixNano)
	}
	return s
}

func objectiveString(o *api.Objective) string {
	if o == nil {
		return "-"
	}
	s := o.Kind
	if o.AccuracyFloor > 0 {
		s += fmt.Sprintf(" floor %.3g", o.AccuracyFloor)
	}
	if o.LatencySloMs > 0 {
		s += fmt.Sprintf(" slo %gms", o.LatencySloMs)
	}
	if w := o.Weights; o.Kind == "weighted" && w != nil {
		s += fmt.Sprintf(" w(latency=%g,bottleneck=%g,cloud=%g,kb=%g)", w.LatencyMs, w.BottleneckMs, w.CloudGpuMs, w.Kb)
	}
	return s
}

func bytesString(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
