package profile

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/packing"
)

// DefaultProfilePath is where `dyno-executor profile` writes by default:
// <model folder>/profiles/<class>.json for a device profile and
// <class>-cloud.json for a cloud profile (a class already ending in -cloud
// is kept), the layout of examples/ and models/.
func DefaultProfilePath(modelPath, class string, role costmodel.Role) string {
	if role == costmodel.RoleCloud && !strings.HasSuffix(class, "-cloud") {
		class += "-cloud"
	}
	return filepath.Join(filepath.Dir(ort.ManifestPath(modelPath)), "profiles", class+".json")
}

// DefaultAccuracyPath is where `dyno-executor calibrate` writes by default:
// <model folder>/accuracy.json.
func DefaultAccuracyPath(modelPath string) string {
	return filepath.Join(filepath.Dir(ort.ManifestPath(modelPath)), "accuracy.json")
}

// NewProfileCmd is `dyno-executor profile MODEL`.
func NewProfileCmd() *cobra.Command {
	var (
		cfg      Config
		role     string
		out      string
		provider string
	)
	cmd := &cobra.Command{
		Use:   "profile MODEL_DIR|model.json",
		Short: "Time every block of a split model through ONNX Runtime (median and p95)",
		Long: `profile loads every block of a split model into ONNX Runtime, runs each on
the activation a random input produces at its input (warm-up runs first),
and writes the median and 95th percentile per block, and the time to pack
(device) or unpack (cloud) one element, as a costmodel.Profile JSON file.
By default it writes <model folder>/profiles/<class>.json, or
<class>-cloud.json with --role cloud, so the device and cloud profiles of one
machine sit side by side.

--slowdown F times the blocks as dyno-executor device --slowdown F runs them:
each run goes through the whole chain in order, timing every block where it
falls, then idles F-1 times as long. Blocks run that way take longer than
repeated alone (cold caches), and the emulation multiplies what they take.`,
		Example: `  dyno-executor profile models/resnet50 --runs 10
  dyno-executor profile models/mnist --role cloud --class amd64-2cpu-cloud -o -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Model = args[0]
			cfg.Role = costmodel.Role(role)
			var err error
			if cfg.Provider, err = ort.ParseProvider(provider); err != nil {
				return fmt.Errorf("%w: --provider: %w", ErrConfig, err)
			}
			if cfg.DeviceClass == "" {
				cfg.DeviceClass = DefaultClass()
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			cfg.Progress = cmd.ErrOrStderr()
			p, err := Profile(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if out == "" {
				out = DefaultProfilePath(cfg.Model, cfg.DeviceClass, cfg.Role)
			}
			if err := writeJSON(cmd.OutOrStdout(), out, p); err != nil {
				return err
			}
			return printProfile(cmd.ErrOrStderr(), p, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", string(costmodel.RoleDevice), "device or cloud")
	f.StringVar(&cfg.DeviceClass, "class", "", "device class label (default <arch>-<cores>cpu)")
	f.StringVar(&cfg.Host, "host", "", "host name (default: this machine's)")
	f.IntVar(&cfg.Warmup, "warmup", 3, "warm-up runs per block")
	f.IntVar(&cfg.Runs, "runs", 20, "timed runs per block")
	f.IntVar(&cfg.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: its default)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the random input")
	f.IntVar(&cfg.PackBits, "pack-bits", 8, "precision at which packing is timed")
	f.Float64Var(&cfg.Slowdown, "slowdown", 0, "time the blocks as a device executor with --slowdown F runs them: whole chain in order, an idle of F-1 times each run between runs (0: each block alone, back to back)")
	f.StringVar(&provider, "provider", "cpu", "ONNX Runtime execution provider: cpu, cuda or tensorrt (recorded in the profile)")
	f.StringVarP(&out, "out", "o", "", "output file, - for stdout")
	return cmd
}

// NewCalibrateCmd is `dyno-executor calibrate MODEL`.
func NewCalibrateCmd() *cobra.Command {
	var (
		cfg                  CalibrateConfig
		bits, scheme, metric string
		out                  string
	)
	cmd := &cobra.Command{
		Use:   "calibrate MODEL_DIR|model.json",
		Short: "Measure the accuracy of every arm (split, bits) through the executor's packing",
		Long: `calibrate runs the model on a calibration set and, for every split s = 0..K-1
and every allowed precision, packs the activation crossing the split with
executor/packing (Encode, then Decode), runs the rest of the chain and
scores the output with a metric: against the labels where the data has them,
and against the full-precision output (agreement) always.

--data is mnist (labelled), random (agreement only), a folder of .npy inputs
(labels in its labels.txt, one line per input), a .npy file of stacked inputs
(with --labels FILE), or file:PATH (raw little-endian float32 inputs).

--metric is picked from the output shape unless given, and printed: top1
(argmax along the class axis, per row: per time step for [1,T,C], per pixel
for [1,C,H,W]), topK (e.g. top5), cosine[:MIN] (default 0.99) or
relerr[:MAX] (default 0.05) for dense outputs such as detection maps and
embeddings. Each entry records the samples it rests on ("n"); the
compression ratio of the packed stream (zstd) is recorded per arm. By
default it writes <model folder>/accuracy.json.`,
		Example: `  dyno-executor calibrate models/mnist --data mnist --samples 2000
  dyno-executor calibrate models/my --data calib/ --metric top5
  dyno-executor calibrate models/det --data images.npy --metric cosine:0.995`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Model = args[0]
			if err := CheckDataFile(cfg.Model, cfg.Data); err != nil {
				return err
			}
			if bits != "" {
				for _, f := range strings.Split(bits, ",") {
					b, err := strconv.Atoi(strings.TrimSpace(f))
					if err != nil {
						return fmt.Errorf("--bits: %q is not an integer", f)
					}
					cfg.Bits = append(cfg.Bits, b)
				}
			}
			switch scheme {
			case "auto", "":
			case "tensor":
				cfg.Pack.Scheme = packing.SchemeAffineTensor
			case "channel":
				cfg.Pack.Scheme = packing.SchemeAffineChannel
			default:
				return fmt.Errorf("--scheme %q is none of auto, tensor, channel", scheme)
			}
			if cfg.Pack.Scheme != packing.SchemeAuto && slicesContainsAbove8(cfg.Bits) {
				return errors.New("--scheme tensor/channel applies to 8 bits and fewer: pass --bits as well")
			}
			m, err := ParseMetric(metric)
			if err != nil {
				return err
			}
			cfg.Metric = m
			cfg.Progress = cmd.ErrOrStderr()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			t, err := Calibrate(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if out == "" {
				out = DefaultAccuracyPath(cfg.Model)
			}
			if err := writeJSON(cmd.OutOrStdout(), out, t); err != nil {
				return err
			}
			return PrintAccuracy(cmd.ErrOrStderr(), t, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", DataRandom, "calibration inputs: mnist, random, a folder of .npy files, a .npy file, or file:PATH")
	f.StringVar(&cfg.Labels, "labels", "", "labels file for .npy data (default: labels.txt in the data folder)")
	f.StringVar(&metric, "metric", "auto", "top1[:AXIS], topK, cosine[:MIN], relerr[:MAX], or auto (picked from the output shape)")
	f.IntVar(&cfg.Samples, "samples", 0, "inputs to use (default 2000 for mnist, 16 random, all of a file or folder)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of random inputs")
	f.StringVar(&bits, "bits", "", "precisions to calibrate, e.g. 16,8,4 (default: the model's allowed bits)")
	f.IntVar(&cfg.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: its default)")
	f.StringVar(&scheme, "scheme", "auto", "quantisation scheme: auto, tensor or channel")
	f.Float64Var(&cfg.Pack.ClipPercentile, "clip", 0, "clip the quantisation range to this percentile (0: min/max)")
	f.BoolVar(&cfg.NoCompression, "no-compression", false, "pack without zstd")
	f.StringVarP(&out, "out", "o", "", "output file, - for stdout")
	return cmd
}

func slicesContainsAbove8(bits []int) bool {
	if bits == nil {
		return true
	}
	for _, b := range bits {
		if b > 8 {
			return true
		}
	}
	return false
}

// writeJSON writes v to path ("-" for w), creating folders.
func writeJSON(w io.Writer, path string, v any) error {
	if path == "-" {
		return costmodel.WriteJSON(w, v)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	if err := costmodel.WriteJSON(f, v); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func printProfile(w io.Writer, p *costmodel.Profile, path string) error {
	fmt.Fprintf(w, "profile of %s on %s (%s, host %s), pack %.2f ns/element -> %s\n", p.Model, p.DeviceClass, p.Role, p.Host, p.PackNsPerElement, path)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "block\tmedian ms\tp95 ms")
	var total float64
	for i, b := range p.Blocks {
		fmt.Fprintf(tw, "%d\t%.3f\t%.3f\n", i+1, b.MedianMs, b.P95Ms)
		total += b.MedianMs
	}
	fmt.Fprintf(tw, "sum\t%.3f\t\n", total)
	return tw.Flush()
}

// PrintAccuracy prints an accuracy table as split x bits.
func PrintAccuracy(w io.Writer, t *costmodel.AccuracyTable, path string) error {
	fmt.Fprintf(w, "accuracy of %s (%s, baseline %.4f, %d samples) -> %s\n", t.Model, t.Metric, t.Baseline, t.Samples, path)
	fmt.Fprintln(w, "(a precision without a column is not calibrated: its arms are ineligible under an accuracy floor)")
	var bits []int
	splits := 0
	for _, e := range t.Entries {
		if !slices.Contains(bits, e.Bits) {
			bits = append(bits, e.Bits)
		}
		splits = max(splits, e.Split+1)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "split")
	for _, b := range bits {
		fmt.Fprintf(tw, "\t%d bits", b)
	}
	fmt.Fprintln(tw, "\t")
	for s := 0; s < splits; s++ {
		fmt.Fprintf(tw, "%d", s)
		for _, b := range bits {
			for _, e := range t.Entries {
				if e.Split == s && e.Bits == b {
					fmt.Fprintf(tw, "\t%.4f (rho %.2f)", e.Accuracy, e.CompressionRatio)
				}
			}
		}
		fmt.Fprintln(tw, "\t")
	}
	return tw.Flush()
}
