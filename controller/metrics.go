package controller

import (
	"context"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	influxapi "github.com/influxdata/influxdb-client-go/v2/api"

	"github.com/dynoml/dyno/bandit"
)

// Measurements written to InfluxDB (docs/metrics.md lists their tags and
// fields).
const (
	measurementReport = "dyno_report"
	measurementPolicy = "dyno_policy"
)

// reportPoint is one applied report, formatted on the sink's goroutine.
type reportPoint struct {
	key  *keyEntry
	item *item
	cost float64
}

// policyPoint is one published version.
type policyPoint struct {
	key                      *keyEntry
	version, reports, total  uint64
	reason                   string
	at                       time.Time
	posterior                *bandit.Posterior
	chosen                   int
	chosenProb               float64
	expectedCost             float64
	expectedFrom             string
	static                   int
	staticCost               float64
	observedCost             float64
	window                   int
	explored, meanPropensity float64
	regret, cumRegret        float64
}

// sink writes learning-curve points to InfluxDB without ever blocking the
// learning loop: points wait in a bounded buffer, and when it is full (or
// InfluxDB is down and writes fail) they are dropped and counted. It is
// safe for concurrent use.
type sink struct {
	cfg          InfluxConfig
	log          *slog.Logger
	client       influxdb2.Client
	write        influxapi.WriteAPIBlocking
	reports      chan reportPoint
	policies     chan policyPoint
	reportPoints bool

	written, dropped atomic.Uint64
	lastWarn         time.Time
}

func newSink(cfg InfluxConfig, log *slog.Logger) *sink {
	opts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(5).SetPrecision(time.Nanosecond)
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &sink{
		cfg: cfg, log: log, client: client, write: client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		reports: make(chan reportPoint, cfg.Buffer), policies: make(chan policyPoint, 1024), reportPoints: cfg.ReportPoints,
	}
}

func (s *sink) report(p reportPoint) {
	select {
	case s.reports <- p:
	default:
		s.dropped.Add(1)
	}
}

func (s *sink) policy(p policyPoint) {
	select {
	case s.policies <- p:
	default:
		s.dropped.Add(1)
	}
}

// run writes batches until stop is closed, then flushes what is buffered
// (within a few seconds) and closes the client.
func (s *sink) run(stop <-chan struct{}) {
	defer s.client.Close()
	var b strings.Builder
	n := 0
	flush := func() {
		if n == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.write.WriteRecord(ctx, b.String())
		cancel()
		if err != nil {
			s.dropped.Add(uint64(n))
			if time.Since(s.lastWarn) > 10*time.Second {
				s.lastWarn = time.Now()
				s.log.Warn("influxdb write failed: points dropped, learning goes on", "points", n, "err", err)
			}
		} else {
			s.written.Add(uint64(n))
		}
		b.Reset()
		n = 0
	}
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case p := <-s.reports:
			s.formatReport(&b, &p)
			n++
		case p := <-s.policies:
			s.formatPolicy(&b, &p)
			n++
		case <-tick.C:
			flush()
			continue
		case <-stop:
			for {
				select {
				case p := <-s.reports:
					s.formatReport(&b, &p)
					n++
				case p := <-s.policies:
					s.formatPolicy(&b, &p)
					n++
				default:
					flush()
					return
				}
			}
		}
		if n >= s.cfg.BatchSize {
			flush()
		}
	}
}

// posteriorFields writes every number of the bandit's posterior summary
// as a field named after it: float fields as "posterior_<name>", arrays and
// slices of floats as "posterior_<name>_<i>" (so that the curves follow
// whatever the bandit chooses to summarise).
func posteriorFields(l *line, v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := "posterior_" + snake(f.Name)
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.Float64, reflect.Float32:
			l.float(name, fv.Float())
		case reflect.Array, reflect.Slice:
			if k := fv.Type().Elem().Kind(); k != reflect.Float64 && k != reflect.Float32 {
				continue
			}
			for j := 0; j < fv.Len(); j++ {
				l.float(name+"_"+strconv.Itoa(j), fv.Index(j).Float())
			}
		}
	}
}

// snake turns a Go name into snake_case ("NoiseSD" -> "noise_sd").
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 && (rs[i-1] < 'A' || rs[i-1] > 'Z' || (i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z')) {
			b.WriteByte('_')
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// line builds one line of InfluxDB's line protocol.
type line struct {
	b      *strings.Builder
	fields int
	buf    []byte
}

var tagEscaper = strings.NewReplacer(",", `\,`, " ", `\ `, "=", `\=`)

func startLine(b *strings.Builder, measurement string) *line {
	b.WriteString(measurement)
	return &line{b: b}
}

func (l *line) tag(k, v string) *line {
	if v == "" {
		return l
	}
	l.b.WriteByte(',')
	l.b.WriteString(k)
	l.b.WriteByte('=')
	l.b.WriteString(tagEscaper.Replace(v))
	return l
}

func (l *line) sep(k string) {
	if l.fields == 0 {
		l.b.WriteByte(' ')
	} else {
		l.b.WriteByte(',')
	}
	l.fields++
	l.b.WriteString(k)
	l.b.WriteByte('=')
}

func (l *line) float(k string, v float64) *line {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return l
	}
	l.sep(k)
	l.buf = strconv.AppendFloat(l.buf[:0], v, 'g', -1, 64)
	l.b.Write(l.buf)
	return l
}

func (l *line) int(k string, v int64) *line {
	l.sep(k)
	l.buf = strconv.AppendInt(l.buf[:0], v, 10)
	l.buf = append(l.buf, 'i')
	l.b.Write(l.buf)
	return l
}

func (l *line) end(t time.Time) {
	l.b.WriteByte(' ')
	l.buf = strconv.AppendInt(l.buf[:0], t.UnixNano(), 10)
	l.b.Write(l.buf)
	l.b.WriteByte('\n')
}

func (s *sink) formatReport(b *strings.Builder, p *reportPoint) {
	it, k := p.item, p.key
	r := &it.report
	o := &r.Observed
	l := startLine(b, measurementReport).tag("key", k.name).tag("model", k.model).tag("device_class", k.deviceClass).
		tag("executor", it.executor).tag("arm", r.Arm.String()).tag("explore", strconv.FormatBool(it.explore))
	l.int("split", int64(r.Arm.Split)).int("bits", int64(r.Arm.Bits)).
		float("latency_ms", it.latency).float("device_ms", o.DeviceMs).float("pack_ms", o.PackMs).float("network_ms", o.NetworkMs).
		float("rtt_ms", o.RTTMs).float("cloud_queue_ms", o.CloudQueueMs).float("cloud_ms", o.CloudMs).float("unpack_ms", o.UnpackMs).
		float("bytes", o.Bytes).float("cost", p.cost).float("propensity", r.Propensity).float("bandwidth_mbps", r.Conditions.BandwidthMbps).
		int("policy_version", int64(r.PolicyVersion)).int("trace_seq", int64(it.seq))
	if r.HasAccuracy {
		l.float("accuracy", r.Accuracy)
	}
	// A point is identified by its series and time: the request's start on
	// the device tells requests apart; without it, the trace sequence
	// number spreads a batch received at once over distinct nanoseconds.
	at := it.start
	if at <= 0 {
		at = it.received + int64(it.seq%1_000_000)
	}
	l.end(time.Unix(0, at))
}

func (s *sink) formatPolicy(b *strings.Builder, p *policyPoint) {
	k := p.key
	l := startLine(b, measurementPolicy).tag("key", k.name).tag("model", k.model).tag("device_class", k.deviceClass).tag("reason", p.reason)
	l.int("version", int64(p.version)).int("reports", int64(p.reports)).int("total_reports", int64(p.total))
	if post := p.posterior; post != nil {
		posteriorFields(l, reflect.ValueOf(*post))
	}
	arms := k.cm.Arms()
	if p.chosen >= 0 {
		l.int("chosen_split", int64(arms[p.chosen].Split)).int("chosen_bits", int64(arms[p.chosen].Bits)).float("chosen_prob", p.chosenProb).
			float("expected_cost", p.expectedCost)
	}
	if p.static >= 0 {
		l.int("static_split", int64(arms[p.static].Split)).int("static_bits", int64(arms[p.static].Bits)).float("static_cost", p.staticCost)
	}
	if p.window > 0 {
		l.int("window_reports", int64(p.window)).float("observed_cost", p.observedCost).float("explored", p.explored).
			float("mean_propensity", p.meanPropensity).float("regret", p.regret)
	}
	l.float("cumulative_regret", p.cumRegret)
	if p.expectedFrom != "" {
		// Say where expected_cost comes from; a field, not a tag, so that
		// it does not split the series.
		l.int("expected_cost_source", map[string]int64{"posterior": 0, "observed": 1, "costmodel": 2}[p.expectedFrom])
	}
	l.end(p.at)
}
