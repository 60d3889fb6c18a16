package controller

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

// Config configures a controller. The zero value of every field is
// documented; StorePath and a listener security choice (TLS or Insecure)
// are required.
type Config struct {
	// Listen is the gRPC address; empty means "127.0.0.1:7070". Port 0
	// picks a free port (Server.Addr says which).
	Listen string
	// TLS secures the listener. Nil is allowed only with Insecure.
	TLS *tls.Config
	// Insecure serves plaintext: for tests and local experiments only.
	Insecure bool
	// Tokens are the bearer tokens accepted.
	Tokens []Token
	// An executor id belongs to the identity that registered it first: the
	// subject of its client certificate when TLS verifies client
	// certificates (ClientTLS makes such a config), else its token's name.
	// MaxExecutorsPerIdentity bounds how many one identity may own (a
	// token's MaxExecutors overrides it); zero means 10000, negative no
	// bound.
	MaxExecutorsPerIdentity int
	// ExecutorExpiry removes executors not seen (no registration, report
	// or ACK) for this long; zero keeps them until removed.
	ExecutorExpiry time.Duration
	// DrainDelay is how long Run keeps serving with health NOT_SERVING
	// after it is told to stop (SIGTERM), before the listener closes; zero
	// means two seconds, negative none.
	DrainDelay time.Duration
	// NoReflection turns the gRPC reflection service off.
	NoReflection bool

	// StorePath is the bbolt file.
	StorePath string
	// StoreNoSync skips fsync: benchmarks only, acknowledged reports may be
	// lost in a crash.
	StoreNoSync bool
	// StoreCreate allows making a new store in an existing empty file (0
	// bytes); a missing file is always created.
	StoreCreate bool
	// StoreAllowMetaFallback opens a store whose newer meta page is
	// damaged at the older one, losing its last commit (docs/controller.md);
	// without it such a store is refused.
	StoreAllowMetaFallback bool
	// Retention bounds the trace log (zero: keep everything).
	Retention store.Retention

	// ModelDirs are model folders (model.json, accuracy.json,
	// profiles/*.json) loaded into the store at start. Models already in
	// the store are kept.
	ModelDirs []string
	// CloudClass picks the cloud profile when a model has several; empty
	// takes the only one.
	CloudClass string
	// Objectives are the named objectives new keys start with; nil means
	// {"default": min-latency, no floor}.
	Objectives map[string]costmodel.Objective
	// Bandit is the policy kind of new keys (bandit.Names()); empty means
	// "dyno".
	Bandit string

	// PublishEvery publishes a key's policy after this many reports; zero
	// means 1000.
	PublishEvery int
	// PublishInterval publishes a key's policy this long after its last
	// publication when it has learned since; zero means one second.
	PublishInterval time.Duration

	// MaxGroupReports bounds one commit; zero means 65536.
	MaxGroupReports int
	// MaxBatchReports bounds one batch; zero means 4096.
	MaxBatchReports int
	// MaxMessageBytes bounds one received message; zero means 4 MiB.
	MaxMessageBytes int
	// ReportRate is the sustained reports per second per executor, and
	// ReportBurst the burst above it; zero means 20000 and twice the rate.
	ReportRate  float64
	ReportBurst int

	// Influx configures the learning-curve sink; a zero URL disables it.
	Influx InfluxConfig

	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported by Status.
	Version string
}

// InfluxConfig points the sink at InfluxDB 2.x, or 1.8+ with its v2
// compatibility API (Bucket "db/retention", empty Org, Token
// "user:password" or empty).
type InfluxConfig struct {
	URL    string
	Token  string
	Org    string
	Bucket string
	// Buffer bounds the points waiting to be written; when full, new
	// points are dropped and counted. Zero means 65536.
	Buffer int
	// BatchSize is the most points in one write; zero means 5000.
	BatchSize int
	// FlushInterval writes a partial batch after this long; zero means one
	// second.
	FlushInterval time.Duration
	// ReportPoints writes one point per report (the learning curves of
	// latency and cost); the per-policy points are always written.
	ReportPoints bool
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Listen == "" {
		d.Listen = "127.0.0.1:7070"
	}
	if d.DrainDelay == 0 {
		d.DrainDelay = 2 * time.Second
	}
	if d.MaxExecutorsPerIdentity == 0 {
		d.MaxExecutorsPerIdentity = 10000
	}
	if d.Objectives == nil {
		d.Objectives = map[string]costmodel.Objective{"default": {Kind: costmodel.MinLatency}}
	}
	if d.Bandit == "" {
		d.Bandit = "dyno"
	}
	if d.PublishEvery == 0 {
		d.PublishEvery = 1000
	}
	if d.PublishInterval == 0 {
		d.PublishInterval = time.Second
	}
	if d.MaxGroupReports == 0 {
		d.MaxGroupReports = 65536
	}
	if d.MaxBatchReports == 0 {
		d.MaxBatchReports = 4096
	}
	if d.MaxMessageBytes == 0 {
		d.MaxMessageBytes = 4 << 20
	}
	if d.ReportRate == 0 {
		d.ReportRate = 20000
	}
	if d.ReportBurst == 0 {
		d.ReportBurst = int(2 * d.ReportRate)
	}
	if d.Influx.Buffer == 0 {
		d.Influx.Buffer = 65536
	}
	if d.Influx.BatchSize == 0 {
		d.Influx.BatchSize = 5000
	}
	if d.Influx.FlushInterval == 0 {
		d.Influx.FlushInterval = time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}
