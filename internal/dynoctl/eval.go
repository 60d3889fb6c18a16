package dynoctl

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/eval"
	"github.com/dynoml/dyno/internal/cputime"
	"github.com/dynoml/dyno/tracelog"
)

type evalFlags struct {
	planFlags
	traces     string
	policies   string
	estimators string
	report     string
	skipBad    bool
	bootstrap  int
	level      float64
	seed       uint64
	tau        float64
	minProp    float64
	throughput bool
	rounds     int
	maxLine    int
	noProgress bool
}

// newEvalCmd is `dynoctl eval`: off-policy evaluation on logged traces.
func newEvalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Estimate what policies would have cost on logged traces (off-policy evaluation)",
		Long: `eval answers "what would policy X have done on this traffic?" from trace
records (docs/traces.md), before X is deployed. For every record it asks each
policy for its distribution over arms in the record's conditions and feeds the
estimators: replay, IPS, self-normalised IPS, the direct method, doubly robust
and switch-DR (the last three with a reward model fitted on the traces as they
stream by, each record predicted before it is learned from). Each estimate
comes with a 95% analytic interval and a Poisson-bootstrap interval, and each
policy with diagnostics: effective sample size, largest importance weight, and
the share of its probability on arms the logger never chose.

Policies are the names of bandit policies (dyno, static, ans, neurosurgeon,
egreedy, device, cloud), built fresh from the cost model, NAME=FILE for a
stored policy version (the bytes the controller keeps; see 'dynoctl policy
show KEY --state FILE'), or logger: the records' own distributions, an
on-policy check whose IPS and SNIPS equal the logged mean cost. Every
estimate has a verdict (supported, biased-low, unsupported) and the
diagnostics include the target's mass on arms the logger gave probability 0
in the same record (docs/eval.md). The trace file is read as a stream: memory
does not grow with it.`,
		Example: `  dynoctl eval --traces out/traces/exact-dyno-seed0.jsonl --dir examples/resnet50 --device phone-low --floor 0.745 --policies static,device,cloud,dyno
  dynoctl eval --traces log.jsonl --dir models/mnist --device amd64-2cpu --cloud amd64-2cpu-cloud --policies static --estimators ips,snips --json
  dynoctl eval --traces log.jsonl --dir examples/resnet50 --device phone-low --policies static --report out/eval`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	addCostModelFlags(cmd, &f.planFlags)
	fl.StringVar(&f.traces, "traces", "", "trace records, JSON Lines (- for standard input)")
	fl.StringVar(&f.policies, "policies", "static,dyno", "comma-separated policies to evaluate: names or NAME=STATEFILE")
	fl.StringVar(&f.estimators, "estimators", "replay,ips,snips,dm,dr,switch-dr", "comma-separated estimators")
	fl.StringVar(&f.report, "report", "", "write a report folder (report.md and PNG plots) here")
	fl.BoolVar(&f.skipBad, "skip-bad", false, "count and skip bad lines instead of stopping at the first")
	fl.IntVar(&f.bootstrap, "bootstrap", 200, "bootstrap replicates (0 disables the bootstrap interval)")
	fl.Float64Var(&f.level, "level", 0.95, "interval coverage")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the replay draws, the bootstrap and the policies")
	fl.Float64Var(&f.tau, "tau", eval.DefaultSwitchTau, "switch-DR's importance-weight threshold")
	fl.Float64Var(&f.minProp, "min-propensity", eval.DefaultMinPropensity, "the diagnostics count the target's mass seen through weights above 1/this")
	fl.IntVar(&f.maxLine, "max-line", tracelog.DefaultMaxLine, "longest line accepted, bytes")
	fl.BoolVar(&f.throughput, "throughput", false, "measure records per second on one core, by CPU time and by wall time: decoding alone, then decoding and estimating, and print the ratio")
	fl.IntVar(&f.rounds, "rounds", 5, "with --throughput: rounds of the two passes, alternated; the medians are compared")
	fl.BoolVar(&f.noProgress, "no-progress", false, "no progress bar even on a terminal")
	cmd.AddCommand(newEvalCoverageCmd())
	return cmd
}

// addCostModelFlags registers the flags that name a cost model and an
// objective, shared by plan-like commands.
func addCostModelFlags(cmd *cobra.Command, f *planFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "model folder with model.json, accuracy.json and profiles/")
	fl.StringVar(&f.manifest, "manifest", "", "model.json (default DIR/model.json)")
	fl.StringVar(&f.accuracy, "accuracy", "", "accuracy table (default DIR/accuracy.json)")
	fl.StringVar(&f.device, "device", "jetson-xavier-nx", "device class: reads DIR/profiles/CLASS.json")
	fl.StringVar(&f.cloud, "cloud", "cloud-t4", "cloud class: reads DIR/profiles/CLASS.json")
	fl.StringVar(&f.deviceProfile, "device-profile", "", "device profile file (overrides --device)")
	fl.StringVar(&f.cloudProfile, "cloud-profile", "", "cloud profile file (overrides --cloud)")
	fl.StringVar(&f.objective, "objective", string(costmodel.MinLatency), "max-throughput, min-latency, min-cloud-cost or weighted")
	fl.Float64Var(&f.floor, "floor", 0, "accuracy floor in [0, 1]")
	fl.Float64Var(&f.slo, "slo", 0, "latency SLO, ms (0 for none; min-cloud-cost needs one)")
	fl.Float64Var(&f.sloPenalty, "slo-penalty", 0, "cost per ms over the SLO (0 = default 10)")
	fl.StringVar(&f.weights, "weights", "", "weighted objective: latency=W,bottleneck=W,cloud=W,kb=W")
	fl.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

func (f *planFlags) objectiveOf() (costmodel.Objective, error) {
	weights, err := parseWeights(f.weights)
	if err != nil {
		return costmodel.Objective{}, err
	}
	obj := costmodel.Objective{Kind: costmodel.ObjectiveKind(f.objective), AccuracyFloor: f.floor, LatencySLOMs: f.slo, SLOPenalty: f.sloPenalty, Weights: weights}
	if err := obj.Validate(); err != nil {
		return obj, usageError{err}
	}
	return obj, nil
}

func buildTargets(cm *costmodel.Model, obj costmodel.Objective, list string, seed uint64) ([]eval.Target, error) {
	var out []eval.Target
	for i, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, file, stored := strings.Cut(item, "=")
		if !stored && name == eval.LoggerName {
			out = append(out, eval.LoggerTarget(name))
			continue
		}
		var p bandit.Policy
		var err error
		if stored {
			data, rerr := os.ReadFile(file)
			if rerr != nil {
				return nil, badInput(fmt.Errorf("policy %s: %w", name, rerr))
			}
			p, err = bandit.Restore(cm, data)
			if err != nil {
				return nil, badInput(fmt.Errorf("policy %s from %s: %w", name, file, err))
			}
			p.Reseed(seed + uint64(i))
		} else {
			p, err = bandit.New(name, cm, bandit.Config{Objective: obj, Seed: seed + uint64(i)})
			if err != nil {
				return nil, usageError{fmt.Errorf("--policies: %w", err)}
			}
		}
		out = append(out, eval.Target{Name: name, Policy: p})
	}
	if len(out) == 0 {
		return nil, usageError{fmt.Errorf("--policies: empty")}
	}
	return out, nil
}

func parseEstimators(list string) ([]eval.Estimator, error) {
	var out []eval.Estimator
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		e, err := eval.ParseEstimator(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("--estimators: %w", err)}
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, usageError{fmt.Errorf("--estimators: empty")}
	}
	return out, nil
}

// countingReader counts bytes for the progress bar.
type countingReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.bar != nil {
		_ = c.bar.Add(n)
	}
	return n, err
}

func openTraces(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, badInput(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func runEval(stdout, stderr io.Writer, f evalFlags) error {
	if f.traces == "" {
		return usageError{fmt.Errorf("--traces is required")}
	}
	cm, err := loadCostModel(f.dir, f.manifest, f.accuracy, f.deviceProfile, f.cloudProfile, f.device, f.cloud)
	if err != nil {
		return err
	}
	obj, err := f.objectiveOf()
	if err != nil {
		return err
	}
	// The records name the precisions their arm indices refer to: read
	// the log with the model it was made with.
	if bits, err := firstAllowedBits(f.traces, f.maxLine); err != nil {
		return err
	} else if cm, err = eval.WithBits(cm, bits); err != nil {
		return badInput(err)
	}
	ests, err := parseEstimators(f.estimators)
	if err != nil {
		return err
	}
	bootstrap := f.bootstrap
	if bootstrap == 0 {
		bootstrap = -1
	}
	opt := eval.OfflineOptions{
		EstimateOptions: eval.EstimateOptions{Bootstrap: bootstrap, Level: f.level, Seed: f.seed, Tau: f.tau, MinPropensity: f.minProp},
		Estimators:      ests, Objective: obj,
	}
	if f.throughput {
		return runEvalThroughput(stdout, cm, f, opt)
	}
	targets, err := buildTargets(cm, obj, f.policies, f.seed)
	if err != nil {
		return err
	}
	off, err := eval.NewOffline(cm, targets, opt)
	if err != nil {
		return usageError{err}
	}
	in, size, err := openTraces(f.traces)
	if err != nil {
		return err
	}
	defer in.Close()
	var src io.Reader = in
	if file, ok := stderr.(*os.File); ok && !f.noProgress && term.IsTerminal(int(file.Fd())) {
		bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("reading traces"), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
		src = &countingReader{r: in, bar: bar}
		defer bar.Finish()
	}
	rd := tracelog.NewReader(src, tracelog.ReadOptions{SkipBad: f.skipBad, MaxLine: f.maxLine})
	for rd.Next() {
		if err := off.Add(rd.Record()); err != nil {
			return badInput(fmt.Errorf("%s: line %d: %w", f.traces, rd.Read()+rd.Skipped(), err))
		}
	}
	if err := rd.Err(); err != nil {
		return badInput(fmt.Errorf("%s: %w", f.traces, err))
	}
	if rd.Skipped() > 0 {
		fmt.Fprintf(stderr, "dynoctl: skipped %d bad lines (first: %v)\n", rd.Skipped(), rd.FirstBad())
	}
	rep, err := off.Report()
	if err != nil {
		return badInput(fmt.Errorf("%s: %w", f.traces, err))
	}
	if f.report != "" {
		if err := eval.WriteOfflineReport(f.report, rep); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "dynoctl: report written to %s/report.md\n", f.report)
	}
	if f.json {
		return costmodel.WriteJSON(stdout, rep)
	}
	return eval.WriteOfflineTable(stdout, rep)
}

// firstAllowedBits returns the allowed bits the first record of the trace
// file states (nil for standard input, which cannot be read twice, and for
// records that state none).
func firstAllowedBits(path string, maxLine int) ([]int, error) {
	if path == "-" || path == "" {
		return nil, nil
	}
	in, _, err := openTraces(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	rd := tracelog.NewReader(in, tracelog.ReadOptions{SkipBad: true, MaxLine: maxLine})
	if rd.Next() {
		return slices.Clone(rd.Record().AllowedBits), nil
	}
	return nil, nil
}

// runEvalThroughput reads the trace file twice on one core: decoding only,
// then decoding and estimating, and prints records per second and the
// ratio of the two.
func runEvalThroughput(w io.Writer, cm *costmodel.Model, f evalFlags, opt eval.OfflineOptions) error {
	if f.traces == "-" {
		return usageError{fmt.Errorf("--throughput reads the file several times: give a file, not standard input")}
	}
	if f.rounds < 1 {
		return usageError{fmt.Errorf("--rounds %d: want at least 1", f.rounds)}
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	// A pass reports its records and how long it took, in process CPU time
	// (what the one core spent, the collector's work included, and not the
	// time the machine gave to others) and in wall time.
	type timing struct {
		n         int64
		cpu, wall time.Duration
	}
	pass := func(estimate bool) (timing, error) {
		in, _, err := openTraces(f.traces)
		if err != nil {
			return timing{}, err
		}
		defer in.Close()
		var off *eval.Offline
		if estimate {
			targets, err := buildTargets(cm, opt.Objective, f.policies, f.seed)
			if err != nil {
				return timing{}, err
			}
			if off, err = eval.NewOffline(cm, targets, opt); err != nil {
				return timing{}, usageError{err}
			}
		}
		start := time.Now()
		cpu0, _ := cputime.Process()
		rd := tracelog.NewReader(in, tracelog.ReadOptions{SkipBad: f.skipBad, MaxLine: f.maxLine})
		for rd.Next() {
			if off != nil {
				if err := off.Add(rd.Record()); err != nil {
					return timing{}, badInput(err)
				}
			}
		}
		if err := rd.Err(); err != nil {
			return timing{}, badInput(err)
		}
		if off != nil {
			if _, err := off.Report(); err != nil {
				return timing{}, badInput(err)
			}
		}
		cpu1, _ := cputime.Process()
		return timing{n: rd.Read(), cpu: time.Duration(cpu1 - cpu0), wall: time.Since(start)}, nil
	}
	// Warm the file cache, then alternate the two passes so that both see
	// the same spells of a noisy machine, and compare medians.
	if _, err := pass(false); err != nil {
		return err
	}
	_, haveCPU := cputime.Process()
	var n int64
	rate := func(t timing, cpu bool) float64 {
		if cpu {
			return float64(t.n) / t.cpu.Seconds()
		}
		return float64(t.n) / t.wall.Seconds()
	}
	var decode, full []timing
	for range f.rounds {
		d, err := pass(false)
		if err != nil {
			return err
		}
		e, err := pass(true)
		if err != nil {
			return err
		}
		n = d.n
		decode, full = append(decode, d), append(full, e)
	}
	med := func(ts []timing, cpu bool) (float64, string) {
		v := make([]float64, len(ts))
		for i, t := range ts {
			v[i] = rate(t, cpu)
		}
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2], rates(v)
	}
	fmt.Fprintf(w, "%d records, one core (GOMAXPROCS=1), policies %s, estimators %s, bootstrap %d, median of %d rounds\n",
		n, f.policies, f.estimators, f.bootstrap, f.rounds)
	for _, cpu := range []bool{true, false} {
		if cpu && !haveCPU {
			continue
		}
		clock := "wall time"
		if cpu {
			clock = "CPU time of the process"
		}
		dm, dr := med(decode, cpu)
		fm, fr := med(full, cpu)
		fmt.Fprintf(w, "by %s:\n", clock)
		fmt.Fprintf(w, "  decode only:             %10.0f records/s   (rounds: %s)\n", dm, dr)
		fmt.Fprintf(w, "  decode and estimate:     %10.0f records/s   (rounds: %s)\n", fm, fr)
		fmt.Fprintf(w, "  ratio (estimate/decode): %10.2f\n", fm/dm)
	}
	return nil
}

func rates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}

// newEvalCoverageCmd is `dynoctl eval coverage`: the check of the
// estimators against the simulator's ground truth.
func newEvalCoverageCmd() *cobra.Command {
	var (
		scenario string
		seeds    int
		requests int
		epsilon  float64
		asJSON   bool
		policies string
		logger   string
		floor    float64
		base     float64
	)
	cmd := &cobra.Command{
		Use:   "coverage --scenario FILE",
		Short: "Check the estimators' 95% intervals against the simulator's ground truth",
		Long: `coverage makes SEEDS logs of a scenario with an exploring policy (epsilon-greedy
at --epsilon), evaluates each candidate policy offline on each log, and counts
how often the 95% intervals of IPS, SNIPS and DR hold the candidate's true
value, which the simulator knows: the candidate's expected cost on the logged
requests. It also prints each estimator's mean squared error. The target is
coverage of at least 90% and DR's error no worse than IPS's; where an
interval misses, the evaluation must have said so (a warning or a verdict
other than supported): "missed unwarned" counts the misses it did not.`,
		Example: `  dynoctl eval coverage --scenario scenarios/ope/mobilenet-egreedy.json --seeds 100`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := eval.LoadScenarios(scenario)
			if err != nil {
				return badInput(err)
			}
			w, err := ss[0].Build()
			if err != nil {
				return badInput(err)
			}
			var cands []string
			for _, p := range strings.Split(policies, ",") {
				if p = strings.TrimSpace(p); p != "" {
					cands = append(cands, p)
				}
			}
			res, err := eval.CheckCoverage(w, eval.CoverageOptions{Logger: logger, Seeds: seeds, Requests: requests, Candidates: cands,
				Tuning: eval.Tuning{EGreedy: bandit.EGreedyConfig{Epsilon: epsilon}, Dyno: bandit.DynoConfig{ExploreFloor: floor, BaselineFloor: base}}})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return costmodel.WriteJSON(out, res)
			}
			how := fmt.Sprintf("epsilon %.2f", epsilon)
			if res.Logger == bandit.NameDyno {
				how = fmt.Sprintf("exploration floor %g", res.ExploreFloor)
			}
			fmt.Fprintf(out, "%s: %d logs of %d requests by %s (%s); 95%% intervals\n", res.Scenario, res.Seeds, res.Requests, res.Logger, how)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "policy\ttrue value\testimator\tcovered (analytic)\tcovered (bootstrap)\tmissed unwarned\tMSE\t")
			for _, c := range res.Candidates {
				for _, e := range []eval.Estimator{eval.IPS, eval.SNIPS, eval.DR} {
					fmt.Fprintf(tw, "%s\t%.2f\t%s\t%.0f%%\t%.0f%%\t%d\t%.3f\t\n", c.Name, c.MeanTruth, e,
						100*float64(c.Covered[e])/float64(res.Seeds), 100*float64(c.BootCovered[e])/float64(res.Seeds), c.Silent[e], c.MSE[e])
				}
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&scenario, "scenario", "scenarios/ope/mobilenet-egreedy.json", "scenario file")
	fl.IntVar(&seeds, "seeds", 100, "independent logs")
	fl.IntVar(&requests, "requests", 0, "requests per log (0: the scenario's)")
	fl.Float64Var(&epsilon, "epsilon", 1, "the logger's exploration share (epsilon-greedy)")
	fl.StringVar(&policies, "policies", "static,device,cloud,dyno", "candidate policies")
	fl.StringVar(&logger, "logger", bandit.NameEGreedy, "the policy that makes the logs: egreedy (at --epsilon) or dyno (with --explore-floor)")
	fl.Float64Var(&base, "baseline-floor", 0, fmt.Sprintf("with --logger dyno: its floor on each baseline's arm (0: the default %g; negative: off)", bandit.DefaultBaselineFloor))
	fl.Float64Var(&floor, "explore-floor", 0, fmt.Sprintf("with --logger dyno: its exploration floor (0: the default %g; negative: off)", bandit.DefaultExploreFloor))
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
