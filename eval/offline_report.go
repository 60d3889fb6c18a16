package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteOfflineTable prints the estimates of every target as a table, each
// with its verdict; a figure the log cannot give reads "no support".
func WriteOfflineTable(w io.Writer, r *OfflineReport) error {
	fmt.Fprintf(w, "%d records of %s, objective %s; the logger's mean cost was %.3f\n\n", r.Records, r.Model, r.Objective.Kind, r.LoggedMeanCost)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\testimator\tmean cost\t95% CI (analytic)\t95% CI (bootstrap)\tn\tverdict\t")
	for _, t := range r.Targets {
		for _, e := range t.Estimates {
			ci := interval(e.Lo, e.Hi)
			if e.Floored {
				ci += " floored"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", t.Name, e.Estimator, value(e.Value), ci, bootInterval(e.BootLo, e.BootHi), e.N, e.Verdict)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tESS\texpected ESS\tmax weight\tmean weight (SE)\texpected\tmass at p=0\trecords with it\tmass at p<min\t")
	for _, t := range r.Targets {
		d := t.Diagnostics
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%s\t\n", t.Name, d.ESS, d.ExpectedESS, d.MaxWeight,
			meanSE(d.MeanWeight, d.MeanWeightSE), fixed(d.ExpectedMeanWeight, "%.3f"), percent(d.ZeroSupportMass), percent(d.ZeroSupportShare), percent(d.LowSupportMass))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Targets {
		for _, warn := range t.Warnings {
			fmt.Fprintf(w, "warning: %s: %s\n", t.Name, warn)
		}
		for _, e := range t.Estimates {
			if e.Verdict != Supported {
				fmt.Fprintf(w, "%s: %s %s: %s\n", t.Name, e.Estimator, e.Verdict, e.Reason)
			}
		}
	}
	fmt.Fprintln(w)
	_, err := fmt.Fprintln(w, supportLine(r.Support))
	return err
}

// supportLine says which targets the log supports, and with which
// estimators.
func supportLine(ss []TargetSupport) string {
	var yes, no []string
	for _, s := range ss {
		if !s.Supported {
			no = append(no, s.Name)
			continue
		}
		names := make([]string, len(s.Estimators))
		for i, e := range s.Estimators {
			names[i] = string(e)
		}
		yes = append(yes, fmt.Sprintf("%s (%s)", s.Name, strings.Join(names, ", ")))
	}
	line := "the log supports: "
	if len(yes) == 0 {
		line += "none of the targets"
	} else {
		line += strings.Join(yes, "; ")
	}
	if len(no) > 0 {
		line += "; it does not support: " + strings.Join(no, ", ")
	}
	return line
}

// noSupport stands for a figure the log cannot give.
const noSupport = "no support"

func value(v float64) string { return fixed(v, "%.3f") }

func fixed(v float64, format string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return noSupport
	}
	return fmt.Sprintf(format, v)
}

func percent(v float64) string {
	if math.IsNaN(v) {
		return "unknown"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func meanSE(m, se float64) string {
	if math.IsNaN(se) {
		return fixed(m, "%.3f")
	}
	return fmt.Sprintf("%.3f (%.3f)", m, se)
}

// bootInterval is the bootstrap interval, "-" when there is none (the
// bootstrap is off, or no replicate had weight: the reason says which).
func bootInterval(lo, hi float64) string {
	if math.IsNaN(lo) || math.IsNaN(hi) {
		return "-"
	}
	return interval(lo, hi)
}

func interval(lo, hi float64) string {
	if math.IsNaN(lo) || math.IsNaN(hi) {
		return noSupport
	}
	return fmt.Sprintf("[%.3f, %.3f]", lo, hi)
}

// WriteOfflineReport writes a report folder: report.md with the tables and
// three plots, estimates.png (each policy's value per estimator with its
// interval), curve.png (the logged learning curve) and arms.png (the arm
// shares of the logger and of each policy).
func WriteOfflineReport(dir string, r *OfflineReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := plotEstimates(filepath.Join(dir, "estimates.png"), r); err != nil {
		return fmt.Errorf("eval: plot estimates: %w", err)
	}
	if err := plotCurve(filepath.Join(dir, "curve.png"), r); err != nil {
		return fmt.Errorf("eval: plot curve: %w", err)
	}
	if err := plotArms(filepath.Join(dir, "arms.png"), r); err != nil {
		return fmt.Errorf("eval: plot arms: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Offline evaluation of %s\n\n", r.Model)
	fmt.Fprintf(&b, "%d logged records; objective `%s`. Each estimate is the mean cost the policy would have had on these requests (lower is better).\n\n", r.Records, r.Objective.Kind)
	b.WriteString("```\n")
	if err := WriteOfflineTable(&b, r); err != nil {
		return err
	}
	b.WriteString("```\n\n")
	b.WriteString("ESS is the effective sample size of the importance weights; a small ESS, a large maximum weight, a mean weight far from 1 or mass on arms the logger never chose all say the estimate leans on few records or on the reward model.\n\n")
	b.WriteString("![estimates](estimates.png)\n\n![logged learning curve](curve.png)\n\n![arm shares](arms.png)\n")
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

func plotEstimates(path string, r *OfflineReport) error {
	p := plot.New()
	p.Title.Text = "Estimated mean cost per policy (95% analytic intervals)"
	p.Y.Label.Text = "mean cost"
	var names []string
	ests := r.Targets[0].Estimates
	for i, e := range ests {
		pts := make(plotter.XYs, len(r.Targets))
		errs := make(plotter.YErrors, len(r.Targets))
		for t, tr := range r.Targets {
			v := tr.Estimates[i]
			x := float64(t) + (float64(i)-float64(len(ests)-1)/2)*0.12
			pts[t] = plotter.XY{X: x, Y: finite(v.Value)}
			errs[t].Low, errs[t].High = finite(v.Value-v.Lo), finite(v.Hi-v.Value)
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.Color = plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return err
		}
		eb.Color = plotutil.Color(i)
		p.Add(s, eb)
		p.Legend.Add(string(e.Estimator), s)
	}
	for _, t := range r.Targets {
		names = append(names, t.Name)
	}
	p.NominalX(names...)
	p.Legend.Top = true
	return p.Save(vg.Length(120+90*len(r.Targets))*vg.Millimeter/3, 90*vg.Millimeter, path)
}

func plotCurve(path string, r *OfflineReport) error {
	p := plot.New()
	p.Title.Text = "Logged learning curve"
	p.X.Label.Text = "records"
	p.Y.Label.Text = "mean cost per window"
	pts := make(plotter.XYs, len(r.Curve))
	for i, c := range r.Curve {
		pts[i] = plotter.XY{X: float64(c.Records), Y: c.MeanCost}
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = color.RGBA{B: 200, A: 255}
	p.Add(l, plotter.NewGrid())
	return p.Save(160*vg.Millimeter, 90*vg.Millimeter, path)
}

// plotArms shows the arms that any policy or the logger gives at least 1%.
func plotArms(path string, r *OfflineReport) error {
	keep := map[int]bool{}
	for i, s := range r.LoggedShares {
		if s >= 0.01 {
			keep[i] = true
		}
	}
	for _, t := range r.Targets {
		for i, s := range t.ArmShares {
			if s >= 0.01 {
				keep[i] = true
			}
		}
	}
	var idx []int
	for i := range keep {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	if len(idx) == 0 {
		idx = []int{0}
	}
	p := plot.New()
	p.Title.Text = "Arm shares: logger and policies"
	p.Y.Label.Text = "share of requests"
	type serie struct {
		name   string
		shares []float64
	}
	series := []serie{{"logged", r.LoggedShares}}
	for _, t := range r.Targets {
		series = append(series, serie{t.Name, t.ArmShares})
	}
	w := vg.Points(40 / float64(len(series)))
	var labels []string
	for _, i := range idx {
		labels = append(labels, r.Arms[i])
	}
	for k, s := range series {
		vals := make(plotter.Values, len(idx))
		for j, i := range idx {
			vals[j] = s.shares[i]
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bc.Color = plotutil.Color(k)
		bc.Offset = w * vg.Length(float64(k)-float64(len(series)-1)/2)
		p.Add(bc)
		p.Legend.Add(s.name, bc)
	}
	p.NominalX(labels...)
	p.Legend.Top = true
	return p.Save(vg.Length(max(160, 14*len(idx)))*vg.Millimeter, 90*vg.Millimeter, path)
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
