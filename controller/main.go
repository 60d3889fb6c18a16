package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

// Exit codes of dyno-controller.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Main is the dyno-controller command: `serve` (the default), `gen-cert`
// and `gen-token`. It returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = mainServe(args, stderr)
	case "gen-cert":
		err = mainGenCert(args, stdout, stderr)
	case "gen-token":
		err = mainGenToken(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, mainUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "dyno-controller: unknown command %q\n%s", cmd, mainUsage)
		return exitUsage
	}
	var u usageErr
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintln(stderr, "dyno-controller:", err)
		return exitUsage
	}
	fmt.Fprintln(stderr, "dyno-controller:", err)
	return exitFailure
}

const mainUsage = `usage: dyno-controller [serve] [flags]      run the controller (serve -h lists the flags)
       dyno-controller gen-cert [flags]     write a self-signed TLS certificate and key
       dyno-controller gen-token [flags]    make a bearer token and its tokens-file line
`

type usageErr struct{ error }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func mainServe(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("dyno-controller serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	fs.StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM); `dyno-controller gen-cert` makes a self-signed one")
	fs.StringVar(&keyFile, "tls-key", "", "TLS private key (PEM)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plaintext (local experiments only)")
	fs.StringVar(&tokens, "tokens", "", "token file: lines of NAME SCOPE[,SCOPE] SECRET|sha256:HEX (scopes: executor, admin)")
	fs.StringVar(&cfg.StorePath, "store", "dyno.db", "the bbolt store file")
	fs.Var(&models, "model", "model folder with model.json, accuracy.json, profiles/ (repeat)")
	fs.StringVar(&cfg.CloudClass, "cloud-class", "", "cloud profile to use when a model has several")
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
	fs.BoolVar(&cfg.StoreCreate, "store-create", false, "make a new store in an existing empty (0-byte) -store file")
	fs.BoolVar(&cfg.StoreAllowMetaFallback, "store-allow-meta-fallback", false, "open a store whose newer meta page is damaged at the older one, losing its last commit")
	fs.IntVar(&cfg.MaxExecutorsPerIdentity, "max-executors-per-token", 10000, "most executors one token (or client certificate) may own; a token's max-executors overrides it")
	fs.DurationVar(&cfg.ExecutorExpiry, "executor-expiry", 0, "remove executors not seen for this long (0: never)")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 2*time.Second, "on SIGTERM, serve this long with health NOT_SERVING before closing the listener")
	fs.BoolVar(&cfg.NoReflection, "no-reflection", false, "turn the gRPC reflection service off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr{err}
	}
	if fs.NArg() > 0 {
		return usageErr{fmt.Errorf("unexpected arguments %v", fs.Args())}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usageErr{fmt.Errorf("-log-level: %v", err)}
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
		return usageErr{errors.New("-tls-client-ca needs -tls-cert and -tls-key")}
	case certFile != "" && keyFile != "":
		t, err := ServerTLS(certFile, keyFile)
		if err != nil {
			return err
		}
		cfg.TLS = t
	case certFile != "" || keyFile != "":
		return usageErr{errors.New("give both -tls-cert and -tls-key")}
	case !cfg.Insecure:
		return usageErr{errors.New("TLS is required: give -tls-cert and -tls-key (`dyno-controller gen-cert` makes a self-signed pair), or -insecure for a local experiment")}
	}
	if tokens == "" {
		return usageErr{errors.New("-tokens is required: every call needs a bearer token (`dyno-controller gen-token` makes one)")}
	}
	ts, err := LoadTokens(tokens)
	if err != nil {
		return err
	}
	cfg.Tokens = ts
	cfg.ModelDirs = models
	cfg.Retention = store.Retention{MaxCount: retainCount, MaxAge: retainAge}
	if len(objectives) > 0 {
		cfg.Objectives = map[string]costmodel.Objective{}
		for _, o := range objectives {
			name, o, err := ParseObjective(o)
			if err != nil {
				return usageErr{fmt.Errorf("-objective: %v", err)}
			}
			cfg.Objectives[name] = o
		}
	}
	if influxURL != "" {
		cfg.Influx = InfluxConfig{URL: influxURL, Token: influxToken, Org: influxOrg, Bucket: influxBucket, ReportPoints: influxReports}
	}
	cfg.Version = buildVersion()
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

func mainGenCert(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dyno-controller gen-cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cert := fs.String("cert", "controller.crt", "certificate file to write (clients trust it with dynoctl --ca)")
	key := fs.String("key", "controller.key", "private key file to write (mode 0600)")
	hosts := fs.String("hosts", "localhost,127.0.0.1,::1", "comma-separated host names and IP addresses the certificate is valid for")
	valid := fs.Duration("valid", 365*24*time.Hour, "validity")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr{err}
	}
	c, k, err := GenerateCert(strings.Split(*hosts, ","), *valid)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*cert, c, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(*key, k, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (self-signed, for %s, valid %s)\n", *cert, *key, *hosts, *valid)
	return nil
}

func mainGenToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dyno-controller gen-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the token's name (shown in logs and audit records)")
	scopes := fs.String("scopes", "executor", "executor, admin, or both comma-separated")
	hashed := fs.Bool("hashed", true, "print the tokens-file line with the SHA-256 only")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr{err}
	}
	if err := checkName("-name", *name); err != nil {
		return usageErr{err}
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	secret := "dyno_" + hex.EncodeToString(b)
	line := secret
	if *hashed {
		h := sha256.Sum256([]byte(secret))
		line = "sha256:" + hex.EncodeToString(h[:])
	}
	fmt.Fprintf(stdout, "token:       %s\ntokens line: %s %s %s\n", secret, *name, *scopes, line)
	return nil
}

// buildVersion names the build: the module version and VCS revision Go
// recorded in the binary.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
