package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/internal/cliutil"
	"github.com/dynoml/dyno/store"
)

// Main is the dyno-controller command: `serve`, `gen-cert` and
// `gen-token`. It returns the process exit code (cliutil's: 0 ok, 1
// failure, 2 usage, 3 an invalid input file).
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(compatArgs(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return cliutil.ExitOK
	}
	fmt.Fprintln(stderr, "dyno-controller:", err)
	var u usageErr
	switch {
	case errors.As(err, &u):
		return cliutil.ExitUsage
	case errors.Is(err, ErrInvalid), errors.Is(err, errInputFile):
		return cliutil.ExitBadInput
	}
	return cliutil.ExitFailure
}

type usageErr struct{ error }

func (u usageErr) Unwrap() error { return u.error }

// errInputFile marks a file given on the command line that could not be
// read or parsed (tokens, certificate, key).
var errInputFile = errors.New("invalid input file")

func inputFile(flag string, err error) error {
	return fmt.Errorf("%w: --%s: %w", errInputFile, flag, err)
}

// compatArgs turns the single-dash long flags of earlier releases
// (-listen ADDR, Go's flag syntax) into the double-dash ones the command
// tree reads, so that existing service files and scripts keep working.
func compatArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "dyno-controller",
		Short: "Run dyno's controller: executors report to it, it learns and pushes policies back",
		Long: `dyno-controller is the service operators deploy in the cloud. Executors
register with it and stream their reports; it learns one policy per key
(model, device class, objective), keeps everything in one bbolt file,
publishes policies back to the executors and writes learning curves to
InfluxDB. gen-cert and gen-token make the TLS pair and the bearer tokens it
needs to start (docs/controller.md, docs/deploy.md).

Exit codes: 0 done; 1 failed; 2 bad flags or arguments; 3 an invalid input
file (tokens, certificate, model folder).`,
		Version: cliutil.VersionString(),
	}
	root.SetVersionTemplate("dyno-controller {{.Version}}\n")
	root.AddCommand(newServeCmd(), newGenCertCmd(), newGenTokenCmd())
	cliutil.Strict(root, func(err error) error { return usageErr{err} })
	return root
}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve --tls-cert FILE --tls-key FILE --tokens FILE [--model DIR ...] [flags]",
		Short: "Run the controller",
		Long: `serve runs the controller on --listen until interrupted (SIGINT or SIGTERM
stop it gracefully). It needs a TLS pair (or --insecure for a local
experiment) and a tokens file; --model loads a model folder (model.json,
accuracy.json, profiles/) into the store, at every start.`,
		Example: `  dyno-controller serve --listen 0.0.0.0:7070 --tls-cert controller.crt --tls-key controller.key \
    --tokens tokens.txt --store /var/lib/dyno/dyno.db --model models/mobilenetv2`,
		// mainServe parses the flags itself, and checks that no
		// argument is left.
		DisableFlagParsing: true,
		RunE:               func(cmd *cobra.Command, args []string) error { return mainServe(cmd, args) },
	}
	cmd.Flags().SortFlags = false
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c.Flags().Lookup("listen") == nil {
			// `dyno-controller help serve`: mainServe defines the flags,
			// then comes back here.
			_ = mainServe(c, []string{"--help"})
			return
		}
		help(c, args)
	})
	return cmd
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
func (m *multiFlag) Type() string       { return "value" }

func mainServe(cmd *cobra.Command, args []string) error {
	stderr := cmd.ErrOrStderr()
	fs := pflag.NewFlagSet("dyno-controller serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // cobra prints the help
	fs.SortFlags = false
	var (
		cfg                       Config
		certFile, keyFile, tokens string
		models, objectives        multiFlag
		retainCount               uint64
		retainAge                 time.Duration
		logLevel                  string
		influxURL, influxToken    string
		influxOrg, influxBucket   string
		influxReports             bool
		clientCA                  string
	)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	fs.StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM); dyno-controller gen-cert makes a self-signed one")
	fs.StringVar(&keyFile, "tls-key", "", "TLS private key (PEM)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plaintext (local experiments only)")
	fs.StringVar(&tokens, "tokens", "", "token file: lines of NAME SCOPE[,SCOPE] SECRET|sha256:HEX (scopes: executor, admin)")
	fs.StringVar(&cfg.StorePath, "store", "dyno.db", "the bbolt store file")
	fs.Var(&models, "model", "model folder with model.json, accuracy.json, profiles/ (repeat)")
	fs.StringVar(&cfg.CloudClass, "cloud-class", "", "cloud profile to use when a model has several (every model must have it)")
	fs.Var(&objectives, "objective", "named objective for new keys: NAME=KIND[,floor=F][,slo=MS][,latency=W,bottleneck=W,cloud=W,kb=W] (repeat; default: default=min-latency)")
	fs.StringVar(&cfg.Bandit, "bandit", "dyno", "policy kind of new keys")
	fs.IntVar(&cfg.PublishEvery, "publish-every", 1000, "publish a key's policy after this many reports")
	fs.DurationVar(&cfg.PublishInterval, "publish-interval", time.Second, "or this long after its last version, whichever comes first")
	fs.Uint64Var(&retainCount, "retain-traces", 0, "keep at most this many traces (0: all)")
	fs.DurationVar(&retainAge, "retain-age", 0, "delete traces older than this (0: never)")
	fs.IntVar(&cfg.MaxBatchReports, "max-batch", 4096, "most reports in one batch")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", 4<<20, "largest message accepted")
	fs.Float64Var(&cfg.ReportRate, "report-rate", 20000, "reports per second per executor")
	fs.IntVar(&cfg.ReportBurst, "report-burst", 0, "burst above the rate (0: twice the rate)")
	fs.StringVar(&influxURL, "influx-url", "", "InfluxDB URL for the learning curves (empty: off)")
	fs.StringVar(&influxToken, "influx-token", os.Getenv("DYNO_INFLUX_TOKEN"), "InfluxDB token (1.8: user:password or empty); default $DYNO_INFLUX_TOKEN")
	fs.StringVar(&influxOrg, "influx-org", "", "InfluxDB organisation (empty for 1.8)")
	fs.StringVar(&influxBucket, "influx-bucket", "dyno/autogen", "InfluxDB bucket (1.8: database/retention-policy)")
	fs.BoolVar(&influxReports, "influx-report-points", true, "write one point per report, not only per policy version")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&clientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM): an executor id then belongs to its certificate's subject")
	fs.BoolVar(&cfg.StoreCreate, "store-create", false, "make a new store in an existing empty (0-byte) --store file")
	fs.BoolVar(&cfg.StoreAllowMetaFallback, "store-allow-meta-fallback", false, "open a store whose newer meta page is damaged at the older one, losing its last commit")
	fs.IntVar(&cfg.MaxExecutorsPerIdentity, "max-executors-per-token", 10000, "most executors one token (or client certificate) may own; a token's max-executors overrides it")
	fs.DurationVar(&cfg.ExecutorExpiry, "executor-expiry", 0, "remove executors not seen for this long (0: never)")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 2*time.Second, "on SIGTERM, serve this long with health NOT_SERVING before closing the listener")
	fs.BoolVar(&cfg.NoReflection, "no-reflection", false, "turn the gRPC reflection service off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			cmd.Flags().AddFlagSet(fs)
			return cmd.Help()
		}
		return usageErr{err}
	}
	if fs.NArg() > 0 {
		return usageErr{fmt.Errorf("unexpected arguments %v (usage: %s)", fs.Args(), cmd.UseLine())}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usageErr{fmt.Errorf("--log-level: %v", err)}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	switch {
	case certFile != "" && keyFile != "" && clientCA != "":
		t, err := ServerMutualTLS(certFile, keyFile, clientCA)
		if err != nil {
			return err
		}
		cfg.TLS = t
	case clientCA != "":
		return usageErr{errors.New("--tls-client-ca needs --tls-cert and --tls-key")}
	case certFile != "" && keyFile != "":
		t, err := ServerTLS(certFile, keyFile)
		if err != nil {
			return inputFile("tls-cert/--tls-key", err)
		}
		cfg.TLS = t
	case certFile != "" || keyFile != "":
		return usageErr{errors.New("give both --tls-cert and --tls-key")}
	case !cfg.Insecure:
		return usageErr{errors.New("TLS is required: give --tls-cert and --tls-key (dyno-controller gen-cert makes a self-signed pair), or --insecure for a local experiment")}
	}
	if tokens == "" {
		return usageErr{errors.New("--tokens is required: every call needs a bearer token (dyno-controller gen-token makes one)")}
	}
	ts, err := LoadTokens(tokens)
	if err != nil {
		return inputFile("tokens", err)
	}
	cfg.Tokens = ts
	cfg.ModelDirs = models
	cfg.Retention = store.Retention{MaxCount: retainCount, MaxAge: retainAge}
	if len(objectives) > 0 {
		cfg.Objectives = map[string]costmodel.Objective{}
		for _, o := range objectives {
			name, o, err := ParseObjective(o)
			if err != nil {
				return usageErr{fmt.Errorf("--objective: %v", err)}
			}
			cfg.Objectives[name] = o
		}
	}
	if influxURL != "" {
		cfg.Influx = InfluxConfig{URL: influxURL, Token: influxToken, Org: influxOrg, Bucket: influxBucket, ReportPoints: influxReports}
	}
	cfg.Version = cliutil.VersionString()
	TuneRuntime()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cfg)
}

// ParseObjective reads NAME=KIND[,floor=F][,slo=MS][,penalty=P][,latency=W,
// bottleneck=W,cloud=W,kb=W].
func ParseObjective(s string) (string, costmodel.Objective, error) {
	var o costmodel.Objective
	name, spec, ok := strings.Cut(s, "=")
	if !ok {
		return "", o, fmt.Errorf("%q: want NAME=KIND[,option=value...]", s)
	}
	parts := strings.Split(spec, ",")
	o.Kind = costmodel.ObjectiveKind(parts[0])
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		x, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return "", o, fmt.Errorf("%q: %q is not option=number", s, p)
		}
		switch k {
		case "floor":
			o.AccuracyFloor = x
		case "slo":
			o.LatencySLOMs = x
		case "penalty":
			o.SLOPenalty = x
		case "latency":
			o.Weights.LatencyMs = x
		case "bottleneck":
			o.Weights.BottleneckMs = x
		case "cloud":
			o.Weights.CloudGPUMs = x
		case "kb":
			o.Weights.KB = x
		default:
			return "", o, fmt.Errorf("%q: unknown option %q (floor, slo, penalty, latency, bottleneck, cloud, kb)", s, k)
		}
	}
	if err := checkName("objective name", name); err != nil {
		return "", o, err
	}
	return name, o, o.Validate()
}

func newGenCertCmd() *cobra.Command {
	var (
		cert, key, hosts string
		valid            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gen-cert [--cert FILE --key FILE --hosts NAMES]",
		Short: "Write a self-signed TLS certificate and key",
		Long: `gen-cert writes a self-signed ECDSA P-256 certificate, its own CA, for the
host names and IP addresses in --hosts, and its private key (mode 0600).
Clients trust it with dynoctl --ca and dyno-executor device --ca. Name every
address clients use to reach the controller: a client that dials a name the
certificate lacks is refused.`,
		Example: `  dyno-controller gen-cert --cert controller.crt --key controller.key --hosts ctl.example,10.0.0.5`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, k, err := GenerateCert(strings.Split(hosts, ","), valid)
			if err != nil {
				return usageErr{fmt.Errorf("--hosts: %w", err)}
			}
			if err := os.WriteFile(cert, c, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(key, k, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (self-signed, for %s, valid %s)\n", cert, key, hosts, valid)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cert, "cert", "controller.crt", "certificate file to write (clients trust it with dynoctl --ca)")
	f.StringVar(&key, "key", "controller.key", "private key file to write (mode 0600)")
	f.StringVar(&hosts, "hosts", "localhost,127.0.0.1,::1", "comma-separated host names and IP addresses the certificate is valid for")
	f.DurationVar(&valid, "valid", 365*24*time.Hour, "validity")
	return cmd
}

func newGenTokenCmd() *cobra.Command {
	var (
		name, scopes      string
		hashed            bool
		tokenOut, appendf string
	)
	cmd := &cobra.Command{
		Use:   "gen-token --name NAME [--scopes executor|admin|executor,admin]",
		Short: "Make a bearer token and its tokens-file line",
		Long: `gen-token prints a new random token and the line that admits it in the
tokens file of serve --tokens (with the token's SHA-256 only, unless
--hashed=false). The line is checked as serve reads it: a name or scope
serve would refuse is refused here, and so is a name the file given to
--append already has. --token-out writes the token to a file (mode 0600)
instead of printing it; --append adds the line to a tokens file.`,
		Example: `  dyno-controller gen-token --name ops --scopes admin
  dyno-controller gen-token --name fleet --scopes executor --token-out fleet.token --append tokens`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkName("--name", name); err != nil {
				return usageErr{err}
			}
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			secret := "dyno_" + hex.EncodeToString(b)
			line := secret
			if hashed {
				h := sha256.Sum256([]byte(secret))
				line = "sha256:" + hex.EncodeToString(h[:])
			}
			line = name + " " + scopes + " " + line
			// The line must read back as serve reads the tokens file.
			if _, err := ReadTokens(strings.NewReader(line)); err != nil {
				return usageErr{fmt.Errorf("--scopes %q: %w", scopes, err)}
			}
			var existing []byte
			if appendf != "" {
				b, err := os.ReadFile(appendf)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return inputFile("append", err)
				}
				if len(b) > 0 && b[len(b)-1] != '\n' {
					b = append(b, '\n')
				}
				// The file with the new line must still read as serve reads it.
				if _, err := ReadTokens(strings.NewReader(string(b) + line + "\n")); err != nil {
					return inputFile("append", fmt.Errorf("%s with the new line: %w", appendf, err))
				}
				existing = b
			}
			w := cmd.OutOrStdout()
			if tokenOut != "" {
				if err := writeNew(tokenOut, []byte(secret+"\n"), 0o600); err != nil {
					return err
				}
				fmt.Fprintf(w, "token:       written to %s\n", tokenOut)
			} else {
				fmt.Fprintf(w, "token:       %s\n", secret)
			}
			if appendf != "" {
				if err := os.WriteFile(appendf, append(existing, line+"\n"...), 0o600); err != nil {
					return err
				}
				fmt.Fprintf(w, "tokens line: added to %s: %s\n", appendf, line)
				return nil
			}
			fmt.Fprintf(w, "tokens line: %s\n", line)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the token's name (shown in logs and audit records)")
	f.StringVar(&scopes, "scopes", "executor", "executor, admin, or both comma-separated")
	f.BoolVar(&hashed, "hashed", true, "print the tokens-file line with the SHA-256 only")
	f.StringVar(&tokenOut, "token-out", "", "write the token to this new file (mode 0600) instead of printing it")
	f.StringVar(&appendf, "append", "", "add the tokens-file line to this file (created if missing)")
	return cmd
}

// writeNew writes a file that must not exist yet: a token file is never
// silently replaced.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
