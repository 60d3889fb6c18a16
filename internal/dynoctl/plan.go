package dynoctl

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/costmodel"
)

type planFlags struct {
	dir, manifest, deviceProfile, cloudProfile, accuracy string
	device, cloud                                        string
	bandwidths                                           []float64
	rtt, queue, deviceSlowdown, cloudSlowdown            float64
	objective                                            string
	floor, slo, sloPenalty                               float64
	weights                                              string
	top                                                  int
	json                                                 bool
}

// newPlanCmd is `dynoctl plan`: the static DynO ranking of a model's arms.
func newPlanCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Rank every arm of a model with DynO's cost model (the static scheduler)",
		Long: `plan evaluates every arm (split, bits) of a model with DynO's analytic cost
model under the given conditions and objective, and prints the arms ranked by
cost with every predicted stage: device compute, packing, bytes on the link,
network, cloud queue and compute, unpacking, end-to-end latency, pipelined
throughput, cloud GPU time and accuracy. Arms excluded by the accuracy floor
are listed last with the reason. This is the static DynO choice; the bandit
starts from it and learns where reality departs from it.

The inputs are a model folder (--dir) holding model.json, accuracy.json and
profiles/<class>.json, or each file named on its own.`,
		Example: `  dynoctl plan --dir examples/resnet50 --device phone-low --bandwidth 1.3 --bandwidth 20
  dynoctl plan --dir examples/mobilenetv2 --device jetson-xavier-nx --objective min-cloud-cost --slo 100 --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd.OutOrStdout(), f) },
	}
	addCostModelFlags(cmd, &f)
	fl := cmd.Flags()
	fl.Float64SliceVar(&f.bandwidths, "bandwidth", []float64{10}, "measured device-to-cloud bandwidth, Mbit/s (repeat to compare)")
	fl.Float64Var(&f.rtt, "rtt", 40, "round-trip time, ms")
	fl.Float64Var(&f.queue, "cloud-queue", 0, "cloud queueing delay, ms")
	fl.Float64Var(&f.deviceSlowdown, "device-slowdown", 1, "device block times x this factor (throttling)")
	fl.Float64Var(&f.cloudSlowdown, "cloud-slowdown", 1, "cloud block times x this factor (load)")
	fl.IntVar(&f.top, "top", 10, "rows to print per bandwidth (0 for all)")
	return cmd
}

// loadCostModel assembles a cost model from a model folder and overrides.
func loadCostModel(dir, manifest, accuracy, devProfile, cloudProfile, device, cloud string) (*costmodel.Model, error) {
	pick := func(explicit, def string) (string, error) {
		if explicit != "" {
			return explicit, nil
		}
		if dir == "" {
			return "", usageError{fmt.Errorf("give --dir or every input file (missing %s)", def)}
		}
		return filepath.Join(dir, def), nil
	}
	mp, err := pick(manifest, "model.json")
	if err != nil {
		return nil, err
	}
	ap, err := pick(accuracy, "accuracy.json")
	if err != nil {
		return nil, err
	}
	dp, err := pick(devProfile, filepath.Join("profiles", device+".json"))
	if err != nil {
		return nil, err
	}
	cp, err := pick(cloudProfile, filepath.Join("profiles", cloud+".json"))
	if err != nil {
		return nil, err
	}
	cm, err := costmodel.LoadFiles(mp, ap, dp, cp)
	return cm, badInput(err)
}

func parseWeights(s string) (costmodel.Weights, error) {
	var w costmodel.Weights
	if s == "" {
		return w, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		x, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return w, usageError{fmt.Errorf("--weights: %q is not name=number", kv)}
		}
		switch k {
		case "latency":
			w.LatencyMs = x
		case "bottleneck":
			w.BottleneckMs = x
		case "cloud":
			w.CloudGPUMs = x
		case "kb":
			w.KB = x
		default:
			return w, usageError{fmt.Errorf("--weights: unknown weight %q (latency, bottleneck, cloud, kb)", k)}
		}
	}
	return w, nil
}

type planResult struct {
	Model       string               `json:"model"`
	DeviceClass string               `json:"device_class"`
	CloudClass  string               `json:"cloud_class"`
	Objective   costmodel.Objective  `json:"objective"`
	Conditions  costmodel.Conditions `json:"conditions"`
	Choice      costmodel.Choice     `json:"choice"`
}

func runPlan(w io.Writer, f planFlags) error {
	cm, err := loadCostModel(f.dir, f.manifest, f.accuracy, f.deviceProfile, f.cloudProfile, f.device, f.cloud)
	if err != nil {
		return err
	}
	obj, err := f.objectiveOf()
	if err != nil {
		return err
	}
	var results []planResult
	for _, bw := range f.bandwidths {
		c := costmodel.Conditions{BandwidthMbps: bw, RTTMs: f.rtt, CloudQueueMs: f.queue, DeviceSlowdown: f.deviceSlowdown, CloudSlowdown: f.cloudSlowdown}
		if err := c.Validate(); err != nil {
			return usageError{err}
		}
		ch, err := cm.Choose(c, obj, nil)
		if err != nil {
			return err
		}
		results = append(results, planResult{Model: cm.Manifest.Name, DeviceClass: cm.Device.DeviceClass, CloudClass: cm.Cloud.DeviceClass, Objective: obj, Conditions: c, Choice: ch})
	}
	if f.json {
		return costmodel.WriteJSON(w, results)
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printPlan(w, cm, r, f.top)
	}
	return nil
}

func printPlan(w io.Writer, cm *costmodel.Model, r planResult, top int) {
	c := r.Conditions
	fmt.Fprintf(w, "%s on %s + %s, %.1f Mbit/s, RTT %.0f ms, objective %s", r.Model, r.DeviceClass, r.CloudClass, c.BandwidthMbps, c.RTTMs, r.Objective.Kind)
	if r.Objective.AccuracyFloor > 0 {
		fmt.Fprintf(w, ", accuracy floor %.3f", r.Objective.AccuracyFloor)
	}
	if r.Objective.LatencySLOMs > 0 {
		fmt.Fprintf(w, ", SLO %.0f ms", r.Objective.LatencySLOMs)
	}
	fmt.Fprintf(w, "\nstatic DynO choice: split %d (%s) at %d bits\n", r.Choice.Best.Split, splitName(cm, r.Choice.Best.Split), r.Choice.Best.Bits)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rank\tsplit\tafter\tbits\tdevice ms\tpack ms\tKB\txfer ms\tcloud ms\tlatency ms\treq/s\tGPU ms\taccuracy\tcost\t")
	excluded := 0
	for i, a := range r.Choice.Ranked {
		if a.Excluded != "" {
			excluded++
			continue
		}
		if top > 0 && i >= top {
			continue
		}
		acc := fmt.Sprintf("%.4f", a.Accuracy)
		if j, ok := cm.Index(a.Arm); ok && !cm.Bases()[j].Calibrated {
			acc = "n/c" // no calibration entry: not an accuracy of 0
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.2f\t%s\t%.2f\t\n",
			i+1, a.Arm.Split, splitName(cm, a.Arm.Split), a.Arm.Bits, a.DeviceMs, a.PackMs, a.Bytes/1000, a.NetworkMs, a.Cloud(), a.LatencyMs, a.Throughput, a.CloudGPUMs, acc, a.Cost)
	}
	tw.Flush()
	for _, b := range cm.Bases() {
		if !b.Calibrated {
			fmt.Fprintln(w, "n/c: not calibrated (no entry in the accuracy table): ineligible under an accuracy floor")
			break
		}
	}
	if excluded > 0 {
		fmt.Fprintf(w, "%d arms excluded", excluded)
		for _, a := range r.Choice.Ranked {
			if a.Excluded != "" {
				fmt.Fprintf(w, ", e.g. split %d at %d bits: %s", a.Arm.Split, a.Arm.Bits, a.Excluded)
				break
			}
		}
		fmt.Fprintln(w)
	}
}

// splitName is the block after which a split cuts ("input" for 0).
func splitName(cm *costmodel.Model, s int) string {
	if s == 0 {
		return "input"
	}
	return cm.Manifest.Blocks[s-1].Name
}
